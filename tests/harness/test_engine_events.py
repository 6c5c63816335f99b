"""One engine, one event stream: a new kind of event reaches the progress display, the reports and the pytest
plugin without any change to them, and a run whose faults could not be carried out does not pass.

The new kind is emitted by a check registered with one call (the way later checks plug in); nothing of the
CLI, the report writer or the plugin knows it.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
from sagaproof.harness import checks
from sagaproof.harness.checks import CheckContext, register_check
from sagaproof.harness.checks.results import CheckOutcome
from sagaproof.harness.events import Event

from tests.conftest import MINI, SAGAPROOF


@dataclass(frozen=True)
class QueueDepthNoticed(Event):
    """A kind of event none of the consumers has ever heard of."""

    kind: ClassVar[str] = "queue_depth"
    consumer: str
    depth: int

    def summary(self) -> str | None:
        return f"consumer {self.consumer} is {self.depth} messages behind"


def queue_depth_check(ctx: CheckContext):
    ctx.emit(QueueDepthNoticed("alpha-durable", 42))
    yield CheckOutcome("queue depth", True, "looked at one consumer")


@pytest.fixture
def registered():
    register_check(queue_depth_check)
    yield
    checks.CHECKS.remove(queue_depth_check)


def test_a_new_event_kind_reaches_the_progress_display_and_the_reports(tmp_path: Path, registered,
                                                                       capsys: pytest.CaptureFixture[str]):
    import signal

    from sagaproof.harness.front.cli import main

    sigterm = signal.getsignal(signal.SIGTERM)
    try:
        code = main(["run", str(MINI), "--sagas", "5", "--no-chaos", "--report-dir", str(tmp_path)])
    finally:
        signal.signal(signal.SIGTERM, sigterm)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "consumer alpha-durable is 42 messages behind" in out  # the progress display
    report = json.loads((tmp_path / "report.json").read_text())
    assert [e["summary"] for e in report["notable_events"] if e["kind"] == "queue_depth"] == [
        "consumer alpha-durable is 42 messages behind"]
    assert report["event_counts"]["queue_depth"] == 1
    assert next(c for c in report["checks"] if c["name"] == "queue depth")["ok"]
    assert "consumer alpha-durable is 42 messages behind" in (tmp_path / "report.html").read_text()
    records = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [r for r in records if r["kind"] == "queue_depth"][0]["depth"] == 42


def test_a_new_event_kind_reaches_a_failing_pytest_test(pytester: pytest.Pytester):
    pytester.makeconftest(
        """
        from dataclasses import dataclass
        from typing import ClassVar
        from sagaproof.harness.checks import register_check
        from sagaproof.harness.events import Event
        from sagaproof.harness.checks.results import CheckOutcome

        @dataclass(frozen=True)
        class QueueDepthNoticed(Event):
            kind: ClassVar[str] = "queue_depth"
            consumer: str
            depth: int

            def summary(self):
                return f"consumer {self.consumer} is {self.depth} messages behind"

        @register_check
        def queue_depth(ctx):
            ctx.emit(QueueDepthNoticed("alpha-durable", 42))
            yield CheckOutcome("queue depth", False, "a consumer fell behind")
        """
    )
    pytester.makepyfile(
        """
        def test_check(sagaproof_system):
            since = sagaproof_system.mark()
            sagaproof_system.start_sagas(3)
            sagaproof_system.check_sagas(since).assert_ok()
        """
    )
    result = pytester.runpytest_subprocess("--sagaproof-system", str(MINI), "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*- queue depth: a consumer fell behind*", "notable events of this test:",
                                 "*consumer alpha-durable is 42 messages behind"])


def test_a_run_whose_faults_could_not_be_injected_does_not_pass(tmp_path: Path):
    # gamma exits on its own shortly after start: every kill or pause planned on it afterwards is refused
    system = tmp_path / "mini"
    import shutil

    shutil.copytree(MINI, system)
    toml = (system / "sagaproof.toml").read_text().replace(
        'env = { PORT = "{port}", NATS_URL = "{nats_url}", DATA_DIR = "{data_dir}", SVC_NAME = "{name}" }\n'
        'ready = { log = ', 'env = { PORT = "{port}", NATS_URL = "{nats_url}", DATA_DIR = "{data_dir}", '
                           'SVC_NAME = "{name}", EXIT_AFTER = "0.2" }\nready = { log = ')
    assert "EXIT_AFTER" in toml
    # With gamma gone for good the system is never quiescent (a service is not connected to NATS), so the run
    # waits out the convergence timeout after the last saga ends: 15 s here rather than the default 90 s
    # (3 x the 30 s saga deadline). What the test looks at comes from the fault schedule, not from that wait.
    toml += '\n[quiescence]\ntimeout = "15s"\n'
    (system / "sagaproof.toml").write_text(toml)
    report_dir = tmp_path / "report"
    proc = subprocess.run([*SAGAPROOF, "run", str(system), "--seed", "5", "--sagas", "400", "--faults", "kill,pause",
                           "--report-dir", str(report_dir)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-2000:]
    report = json.loads((report_dir / "report.json").read_text())
    assert report["first_failure"] == "fault schedule carried out"
    refused = [f for f in report["faults"] if f["status"] == "failed"]
    assert refused and {f["target"] for f in refused} == {"gamma"}
    assert all("gamma" in f["error"] and "not running" in f["error"] for f in refused)
    check = next(c for c in report["checks"] if c["name"] == "fault schedule carried out")
    assert all(any(f["id"] in d for d in check["details"]) for f in refused)
    assert any(e["kind"] == "process" and "gamma exited on its own with code 3" in e["summary"]
               for e in report["notable_events"])
    html = (report_dir / "report.html").read_text()
    assert "Faults not carried out" in html and refused[0]["id"] in html
