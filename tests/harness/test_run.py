"""`sagaproof run` end to end on the example shop: real NATS, real services, real fault proxies.

The clean shop must pass at the default settings; each seeded bug must fail with the right check named
first (the acceptance of the checking issue). Seeds are fixed so a failure here is reproducible.
"""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.conftest import SAGAPROOF, SHOP


def _shop_bugs():  # the shop's own table of seeded bugs and the check that must catch each
    import importlib.util

    spec = importlib.util.spec_from_file_location("shop_bugs", SHOP / "bugs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


EXPECTED_FIRST = _shop_bugs().EXPECTED_FIRST


def _run(report: Path, *extra: str, timeout: float = 240, seed: int = 1) -> tuple[subprocess.CompletedProcess[str], dict]:
    proc = subprocess.run([*SAGAPROOF, "run", str(SHOP), "--seed", str(seed), "--report-dir", str(report), *extra],
                          capture_output=True, text=True, timeout=timeout)
    data = json.loads((report / "report.json").read_text()) if (report / "report.json").exists() else {}
    return proc, data


def test_clean_shop_passes_under_faults_and_writes_reports(tmp_path: Path):
    proc, report = _run(tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert report["verdict"] == "pass" and report["first_failure"] is None
    assert report["faults"], "the default run must inject faults"
    assert report["messages_recorded"] >= 5 * 200 * 0.9
    assert report["check_result"]["sagas_checked"] == 200
    junit = ET.parse(tmp_path / "junit.xml").getroot()
    cases = junit.findall(".//testcase")
    assert {c.get("name") for c in cases} >= {"termination", "no_double_effect", "compensation_completeness"}
    assert not junit.findall(".//failure")
    assert (tmp_path / "report.html").stat().st_size > 10_000
    history = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    starts = [r for r in history if r["kind"] == "fault_start"]
    ends = [r for r in history if r["kind"] == "fault_end"]
    assert len(starts) == len(ends) == len(report["faults"])
    assert "seed=1" in proc.stdout.replace(" ", "") or "seed 1" in proc.stdout
    assert report["schema_version"] == 2
    schedule = next(c for c in report["checks"] if c["name"] == "fault schedule carried out")
    assert schedule["ok"] and not schedule["skipped"]
    assert {f["status"] for f in report["faults"]} <= {"carried out", "late"}
    assert all(isinstance(f["started_at"], float) and f["started_at"] > 0 for f in report["faults"])
    _follows_the_schema(report, history)


def _follows_the_schema(report: dict, history: list[dict]) -> None:
    """report.json and every record of events.jsonl against docs/report.schema.json."""
    import jsonschema_rs

    schema = json.loads((Path(__file__).resolve().parents[2] / "docs" / "report.schema.json").read_text())
    assert [e.message for e in jsonschema_rs.validator_for(schema).iter_errors(report)] == []

    def part(ref: str):
        return jsonschema_rs.validator_for({"$schema": schema["$schema"], "$defs": schema["$defs"], "$ref": ref})

    validators = {kind: part(f"#/$defs/records/{kind}") for kind in schema["$defs"]["records"]}
    record = part("#/$defs/record")
    for rec in history:
        assert record.is_valid(rec), rec
        if rec["kind"] in validators:
            assert validators[rec["kind"]].is_valid(rec), (rec, [e.message for e in validators[rec["kind"]].iter_errors(rec)])


@pytest.mark.parametrize("bug", sorted(EXPECTED_FIRST))
def test_each_seeded_bug_fails_with_the_right_check_first(tmp_path: Path, bug: str):
    # Seed 1, and the next seeds only while the bug goes uncaught: whether a fault meets a message in flight
    # (a duplicate of an order on its way to payment, say) depends on timing, which a busy machine shifts.
    # A bug must be caught within three seeds, with the right check first.
    for seed in (1, 2, 3):
        proc, report = _run(tmp_path / f"seed-{seed}", "--env", f"SHOP_BUG={bug}", seed=seed)
        if proc.returncode != 0:
            break
    tmp_path = tmp_path / f"seed-{seed}"
    assert proc.returncode == 1, (f"{bug}: the last run (seed {seed}) exited {proc.returncode}, where 1 is a check that "
                                  f"failed and 0 a pass:\n{proc.stdout[-3000:]}{proc.stderr[-2000:]}")
    assert report["first_failure"] == EXPECTED_FIRST[bug], proc.stdout[-3000:]
    assert f"--env SHOP_BUG={bug}" in report["run_command"] and f"--seed {seed}" in report["run_command"]
    assert f"Reproduce: sagaproof replay {tmp_path}\n" in proc.stdout, "the reproduce line is whole, on one line"
    failures = ET.parse(tmp_path / "junit.xml").getroot().findall(".//failure")
    assert failures, "the failing check must show in the JUnit test view"


def test_run_with_no_faults_and_bad_env_option(tmp_path: Path):
    proc = subprocess.run([*SAGAPROOF, "run", str(SHOP), "--env", "NOEQUALS"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2
    assert "--env 'NOEQUALS' must look like KEY=VALUE" in proc.stderr


def test_shrink_finds_a_smaller_failing_schedule_and_its_replay_command(tmp_path: Path):
    # Duplicates alone: with kills in the menu the entry service is down for much of a 4 s window (each restart
    # waits for readiness), so whether a duplicate meets an order in flight is a matter of luck.
    # The random phase alone: the targeted phase's redeliveries catch double_charge with no random fault at all.
    proc, report = _run(tmp_path, "--env", "SHOP_BUG=double_charge", "--faults", "duplicate", "--phases", "random",
                        "--shrink", "--shrink-runs", "3", timeout=600)
    assert proc.returncode == 1, proc.stdout[-3000:]
    shrink = report["shrink"]
    assert shrink is not None, proc.stdout[-3000:]
    assert shrink["check"] == "no_double_effect"
    assert 1 <= len(shrink["minimal"]) < shrink["original"]
    # only a duplicate on payment's link can make payment see orders.created twice
    assert any(f["target"] == "payment" for f in shrink["minimal"]), shrink["minimal"]
    assert shrink["runs"][0] == {"faults": [], "failed": False}, "the empty schedule is tried first"
    assert shrink["command"] == f"sagaproof replay {tmp_path} --schedule {tmp_path / 'minimal-schedule.json'}"
    replay = json.loads((tmp_path / "minimal-schedule.json").read_text())
    assert [f["id"] for f in replay] == [f["id"] for f in shrink["minimal"]]
    # three re-runs cannot finish delta debugging here: the result must not claim to be minimal
    assert shrink["complete"] is False and shrink["reruns"] == 3
    assert "Smallest failing schedule found in 3 re-runs, not proven minimal" in proc.stdout
    assert "Smallest found in 3 re-runs, not proven minimal" in (tmp_path / "report.html").read_text()


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_interrupting_a_run_mid_chaos_leaves_nothing_running(tmp_path: Path, sig: str):
    import signal
    import time

    from tests.conftest import pid_alive

    proc = subprocess.Popen([*SAGAPROOF, "run", str(SHOP), "--seed", "3", "--report-dir", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "system.json").exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        time.sleep(1.0)  # the workload and the nemesis are running now
        manifest = json.loads((tmp_path / "system.json").read_text())
        pids = [s["pid"] for s in manifest["services"]] + [n["pid"] for n in manifest["nats"]]
        proc.send_signal(getattr(signal, sig))
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == (130 if sig == "SIGINT" else 143), err
    assert "Traceback" not in err
    deadline = time.monotonic() + 10
    while any(pid_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [p for p in pids if pid_alive(p)], "a service or NATS outlived an interrupted run"
    # services restarted by the nemesis have new pids: look for any process that still uses the run's directory
    run_dir = manifest["run_dir"].encode()
    survivors = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if run_dir in (entry / "environ").read_bytes() or run_dir in (entry / "cmdline").read_bytes():
                    survivors.append(int(entry.name))
            except OSError:
                pass
    assert not [p for p in survivors if pid_alive(p)], f"processes of the run outlived it: {survivors}"
