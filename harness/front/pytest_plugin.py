"""The sagaproof pytest plugin (registered through the ``pytest11`` entry point): a thin front-end of the engine.

``--sagaproof-system DIR`` (or the ``sagaproof_system`` ini key) names the system under test. The
session-scoped ``sagaproof_system`` fixture opens one engine session (:class:`harness.session.engine.Session`: the
environment up, recording from the start, live contract validation) and hands tests its
:class:`~harness.session.handle.SessionHandle`: ``services``, ``nats_url``, ``chaos``, ``start_sagas``, ``mark``,
``history``, ``check_sagas`` (every check the CLI has), ``eventually``.

Per test (when it uses the fixture) the plugin opens a window of the history; when the test ends, pass or
fail, the process faults it left (a paused, stopped or killed service or NATS node) are undone. A failed
test gets a "sagaproof" section: the seed, the line that reproduces it, the notable events of its window,
and where its slice of the history and of every log was kept. At the end of the session the engine's
reports (``report.html``, ``report.json``, ``junit.xml``, ``events.jsonl``, ``system.json``, ``logs/``) are
written to ``--sagaproof-report-dir`` (default ``.sagaproof/report``), the failing tests' slices under its
``failed/`` (or ``--sagaproof-logs``).
"""

from __future__ import annotations

import random
import re
import shlex
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest
from sagaproof.harness.errors import SagaproofError

if TYPE_CHECKING:
    from sagaproof.harness.session.handle import SessionHandle

_HANDLE = pytest.StashKey[Any]()
_STATE = pytest.StashKey[dict[str, Any]]()
_OUTCOME = pytest.StashKey[dict[str, Any]]()

DEFAULT_REPORT_DIR = ".sagaproof/report"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("sagaproof", "sagaproof: contract and chaos testing of choreographed services")
    group.addoption("--sagaproof-system", action="store", default=None, metavar="DIR",
                    help="directory holding the sagaproof.toml of the system under test")
    group.addoption("--sagaproof-report-dir", action="store", default=None, metavar="DIR",
                    help=f"where the session's reports, history and logs go (default {DEFAULT_REPORT_DIR})")
    group.addoption("--sagaproof-logs", action="store", default=None, metavar="DIR",
                    help="where failed tests' slices of the history and logs go (default REPORT_DIR/failed)")
    group.addoption("--sagaproof-seed", action="store", type=int, default=None, metavar="N",
                    help="seed of the workload's bodies (default: random, shown in the header)")
    group.addoption("--sagaproof-chaos-links", action="store_true", default=False,
                    help="route each service through its own fault proxy so tests can inject network faults")
    group.addoption("--sagaproof-plugin", action="append", default=[], metavar="MODULE_OR_PATH",
                    help="load a plugin's checks and fault kinds (repeatable; see docs/extending.md)")
    parser.addini("sagaproof_system", "directory holding the sagaproof.toml of the system under test", default="")
    parser.addini("sagaproof_chaos_links", "route services through fault proxies (true/false)", default="false")
    parser.addini("sagaproof_report_dir", "where the session's reports go", default="")
    parser.addini("sagaproof_plugins", "plugins to load (module names or paths relative to the ini file)",
                  type="linelist", default=[])


def _system_dir(config: pytest.Config) -> str:
    value = config.getoption("--sagaproof-system") or config.getini("sagaproof_system")
    if not value:
        raise pytest.UsageError(
            "the sagaproof_system fixture needs a system: pass --sagaproof-system DIR or set "
            "`sagaproof_system = DIR` in the [pytest] ini section.")
    return str(value)


def _state(config: pytest.Config) -> dict[str, Any]:
    if _STATE not in config.stash:
        seed = config.getoption("--sagaproof-seed")
        config.stash[_STATE] = {"seed": seed if seed is not None else random.SystemRandom().randrange(1, 2**31),
                                "tests": []}
    return config.stash[_STATE]


def _report_dir(config: pytest.Config) -> Path:
    value = config.getoption("--sagaproof-report-dir") or config.getini("sagaproof_report_dir") or DEFAULT_REPORT_DIR
    return Path(value)


def _failed_dir(config: pytest.Config) -> Path:
    value = config.getoption("--sagaproof-logs")
    return Path(value) if value else _report_dir(config) / "failed"


def _chaos_links(config: pytest.Config) -> bool:
    return bool(config.getoption("--sagaproof-chaos-links")) or str(config.getini("sagaproof_chaos_links")).lower() in (
        "1", "true", "yes")


def _plugins(config: pytest.Config) -> list[str]:
    """Load the plugins pytest names (--sagaproof-plugin, relative to the working directory; the
    ``sagaproof_plugins`` ini key, relative to the ini file); returns them resolved."""
    from sagaproof.harness.plugins import load_plugins

    out = load_plugins(config.getoption("--sagaproof-plugin") or [], base=Path.cwd(), where="--sagaproof-plugin")
    ini = [str(p) for p in config.getini("sagaproof_plugins") or []]
    base = Path(config.inipath).parent if config.inipath else Path.cwd()
    return out + load_plugins(ini, base=base, where="the sagaproof_plugins ini key")


def pytest_sessionstart(session: pytest.Session) -> None:
    """Load the plugins pytest names before any test runs: one that cannot be imported is the user's mistake, so
    the session ends at once with exit 2 and the one sentence that says what to change."""
    config = session.config
    if not (config.getoption("--sagaproof-plugin") or config.getini("sagaproof_plugins")):
        return
    try:
        _plugins(config)
    except SagaproofError as exc:
        _usage_exit(exc)


def _usage_exit(exc: SagaproofError) -> NoReturn:
    """End the pytest session for a user's mistake: exit 2 and the error's sentence (stderr: ``Exit: ...``)."""
    pytest.exit(str(exc), returncode=2)


def _repro(config: pytest.Config, nodeid: str | None) -> str:
    parts = ["pytest"] + ([nodeid] if nodeid else []) + ["--sagaproof-system", _system_dir(config),
                                                         "--sagaproof-seed", str(_state(config)["seed"])]
    if _chaos_links(config):
        parts.append("--sagaproof-chaos-links")
    for plugin in config.getoption("--sagaproof-plugin") or []:
        parts += ["--sagaproof-plugin", plugin]
    return " ".join(shlex.quote(p) for p in parts)


def pytest_report_header(config: pytest.Config) -> str | None:
    if config.getoption("--sagaproof-system") or config.getini("sagaproof_system"):
        return f"sagaproof: seed {_state(config)['seed']}, reports in {_report_dir(config)}"
    return None


@pytest.fixture(scope="session")
def sagaproof_system(request: pytest.FixtureRequest) -> Iterator[SessionHandle]:
    """The running system under test and the engine's handle, brought up once per session."""
    from sagaproof.harness.config import load_system_file
    from sagaproof.harness.events import EventBus
    from sagaproof.harness.report import ReportWriter
    from sagaproof.harness.session.engine import Session
    from sagaproof.harness.session.handle import SessionHandle

    config = request.config
    try:
        _plugins(config)
        spec = load_system_file(_system_dir(config))
        state = _state(config)
        bus = EventBus()
        bus.subscribe(ReportWriter())
        session = Session(spec, report_dir=_report_dir(config), bus=bus, seed=state["seed"],
                          chaos_links=_chaos_links(config), command=_repro(config, None))
    except SagaproofError as exc:  # the system file or a plugin it names: the user's to fix (exit 2)
        _usage_exit(exc)
    started = time.monotonic()
    started_iso = datetime.now(UTC).isoformat(timespec="seconds")
    try:
        session.open()
    except SagaproofError as exc:
        pytest.fail(f"sagaproof could not bring the system up: {exc}", pytrace=False)
    handle = SessionHandle(session, repro=lambda: _repro(config, handle.nodeid))
    config.stash[_HANDLE] = handle
    try:
        yield handle
    finally:
        config.stash[_HANDLE] = None
        try:
            _finish_session(session, handle, state, started_iso, time.monotonic() - started)
        finally:
            session.close()


def _finish_session(session: Any, handle: Any, state: dict[str, Any], started_iso: str, seconds: float) -> None:
    """The session's result, judged as a run is: one check per test that used the system, every
    ``check_sagas`` result (asserted or not), and the session-wide checks (the broker's view, live contracts,
    recorder completeness, the faults, every registered check) over the whole history. The verdict comes from
    :func:`harness.checks.results.verdict_of`, as ``sagaproof run``'s does; it is also the session's exit code
    (see :func:`pytest_sessionfinish`)."""
    from sagaproof.harness.checks import (
        CheckContext,
        Window,
        broker_checks,
        fault_schedule,
        live_contracts,
        merge_results,
        recorder_completeness,
        registered_checks,
    )
    from sagaproof.harness.checks.findings import Finding
    from sagaproof.harness.checks.results import CheckOutcome, RunResult, combine_outcomes, verdict_of
    from sagaproof.harness.session.engine import REPORTED_ELSEWHERE

    session.drain()
    tests = [CheckOutcome(f"test {t['nodeid']}", t["outcome"] != "failed",
                          t["outcome"] if t["outcome"] != "failed" else t["summary"],
                          [t["text"]] if t["outcome"] == "failed" else [],
                          [Finding(f"test {t['nodeid']}", t["summary"], t["text"])] if t["outcome"] == "failed" else [],
                          skipped=t["outcome"] == "skipped")
             for t in state["tests"]]
    broker = {"receives_from": session.contract_set, "final": False, "services": list(session.system.services),
              "streams": dict(session.recorder.stream_subjects) if session.recorder is not None else {},
              "observing": list(session.system.broker.observers)}
    ctx = CheckContext(session.spec, session.history.reader(), Window(), 0.0, session.now,
                       session._facts(broker=broker, nothing_sent=session.history.messages == 0), session.emit)
    wide = [o for fn in (broker_checks, live_contracts, recorder_completeness, fault_schedule, *registered_checks())
            for o in fn(ctx)]
    broker_report = ctx.facts.get("broker_report")
    counted = [r for r in handle.results if r.in_verdict]
    merged = None
    if counted:
        merged = merge_results([r.sagas for r in counted], healed_at=0.0, end_at=session.now)
        unique: dict[tuple[str, str, str], Any] = {}
        for v in merged.violations:  # windows of several checks may overlap
            unique.setdefault((v.saga, v.key, v.check), v)
        merged.violations = list(unique.values())
        judged = combine_outcomes([r.outcomes for r in counted] + [wide])
    else:
        judged = combine_outcomes([wide]) + [CheckOutcome.not_applicable(
            "sagas judged", "no test called check_sagas, so the session judged no saga; the tests' own "
                            "assertions are its only verdicts on the system")]
    checks = tests + judged
    verdict, exit_code = verdict_of(checks)
    state["verdict"] = (verdict, [c for c in checks if not c.ok])
    result = RunResult(
        seed=session.seed, system_path=str(session.spec.path), command=session.command, started_at=started_iso,
        duration_s=round(seconds, 3), verdict=verdict, exit_code=exit_code, checks=checks,
        check_result=merged, contract_violations=[f.data.get("violation", {}) for c in judged
                                                  if c.name == "live contract conformance" for f in c.findings],
        faults=session.fault_table(), services=session.system.describe(),
        history_path=str(session.history.path), messages_recorded=session.history.messages,
        invariants=[c for c in judged if c.name.startswith("invariant ")],
        declared_flows=session.declared_flows, options={"seed": session.seed, "pytest": True},
        broker=broker_report.to_dict() if broker_report is not None else None,
        run_command=session.command, event_counts=dict(session.history.counts),
        notable_events=session.notable_events(exclude=REPORTED_ELSEWHERE))
    session.finish(result)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The session fails when the engine's verdict does, even if every test passed (a ``check_sagas`` result
    nobody asserted, a broker check, a registered check)."""
    state = session.config.stash.get(_STATE, None)
    verdict = (state or {}).get("verdict")
    if verdict and verdict[0] == "fail" and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(_STATE, None)
    verdict = (state or {}).get("verdict")
    if not verdict:
        return
    name, failed = verdict
    terminalreporter.section("sagaproof")
    terminalreporter.write_line(f"sagaproof verdict: {name} (report: {_report_dir(config) / 'report.html'})")
    for c in failed[:20]:
        terminalreporter.write_line(f"  {c.status}: {c.name}: {c.summary[:300]}")


@pytest.fixture(autouse=True)
def _sagaproof_test_window(request: pytest.FixtureRequest) -> Iterator[None]:
    """For a test that uses the system: a window of the history, and its process faults undone at the end."""
    if "sagaproof_system" not in request.fixturenames:
        yield
        return
    handle = request.getfixturevalue("sagaproof_system")
    handle.begin_test(request.node.nodeid)
    yield
    outcome = request.node.stash.get(_OUTCOME, {"outcome": "passed"})
    handle.end_test(outcome["outcome"])


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    handle = item.config.stash.get(_HANDLE, None)
    if handle is None or "sagaproof_system" not in getattr(item, "fixturenames", ()):
        return report
    if report.when == "call" or (report.when == "setup" and report.failed):
        outcome = "failed" if report.failed else ("skipped" if report.skipped else "passed")
        text = str(report.longreprtext or "") if report.failed else ""
        summary = next((line.strip() for line in text.splitlines() if line.strip().startswith("E ")), "")[2:].strip() \
            or (text.strip().splitlines() or [outcome])[-1][:200]
        item.stash[_OUTCOME] = {"outcome": outcome}
        _state(item.config)["tests"].append({"nodeid": item.nodeid, "outcome": outcome, "summary": summary,
                                             "text": text[-4000:]})
        if report.failed:
            safe = re.sub(r"[^\w.-]+", "_", item.nodeid)[:150]
            dest = _failed_dir(item.config) / safe
            handle.write_test_artifacts(dest)
            lines = [f"seed: {handle.seed}",
                     f"reproduce: {_repro(item.config, item.nodeid)}",
                     f"service and NATS logs of this failure: {dest.resolve()} (this test's slice of each log, and "
                     f"its history in events.jsonl)"]
            notes = handle.test_notes()
            if notes:
                lines.append("notable events of this test:")
                lines.extend(f"  {n}" for n in notes[:30])
            report.sections.append(("sagaproof", "\n".join(lines)))
    return report

