"""The run loop behind ``sagaproof run``: check contracts, bring the system up, record, drive the workload
while the nemesis injects faults, heal, wait for convergence, check, report, tear down.

Everything is emitted on the :class:`~harness.events.EventBus` so the CLI's progress display, the pytest
plugin and the reporters stay thin. The outcome is a :class:`harness.results.RunResult` and an exit code
(0 pass, 1 a check failed, 2 bad usage or input, 3 the environment could not be started).
"""

from __future__ import annotations

import functools
import random
import shlex
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sagaproof.harness.config import SystemSpec, load_callable
from sagaproof.harness.errors import EXIT_CHECK_FAILED, EXIT_OK, ConfigError
from sagaproof.harness.events import EventBus, Phase, RunFinished, RunStarted, SagaChecked, ViolationFound
from sagaproof.harness.recorder import Recorder
from sagaproof.harness.system import System
from sagaproof.harness.workload import Workload, body_factory, http_sender, nats_sender


@dataclass
class RunOptions:
    """Options of one run (the command line's, or a test's)."""

    seed: int | None = None
    sagas: int | None = None
    duration: float | None = None
    faults: tuple[str, ...] | None = None
    intensity: float | None = None
    report_dir: Path = Path("sagaproof-report")
    shrink: bool = False
    shrink_runs: int = 8
    chaos: bool = True
    env: dict[str, str] = field(default_factory=dict)
    quiet: float = 1.0
    system_arg: str = "."
    schedule: list[dict[str, Any]] | None = None  # a fixed fault schedule (shrinking re-runs)

    def resolved_seed(self) -> int:
        if self.seed is None:
            self.seed = random.SystemRandom().randrange(1, 2**31)
        return self.seed


def repro_command(opts: RunOptions, spec: SystemSpec) -> str:
    """The one command that reproduces this run."""
    parts = ["sagaproof", "run", opts.system_arg, "--seed", str(opts.seed)]
    if opts.duration is not None:
        parts += ["--duration", f"{opts.duration:g}s"]
    elif opts.sagas is not None:
        parts += ["--sagas", str(opts.sagas)]
    if opts.faults is not None:
        parts += ["--faults", ",".join(opts.faults) or "none"]
    if opts.intensity is not None:
        parts += ["--intensity", f"{opts.intensity:g}"]
    if not opts.chaos:
        parts += ["--no-chaos"]
    if opts.report_dir != Path("sagaproof-report"):
        parts += ["--report-dir", str(opts.report_dir)]
    for k, v in sorted(opts.env.items()):
        parts += ["--env", shlex.quote(f"{k}={v}")]
    return " ".join(parts)


def eventually(fn: Any, timeout: float, interval: float = 0.25) -> tuple[bool, str]:
    """Call fn until it passes (returns None/True, raises nothing) or `timeout` passes; (ok, last failure)."""
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        try:
            out = fn()
            if out is None or out is True:
                return True, ""
            last = out if isinstance(out, str) else f"returned {out!r}"
        except AssertionError as exc:
            last = str(exc) or "assertion failed"
        except Exception as exc:  # noqa: BLE001 - an invariant that crashes is a failed invariant
            last = f"{type(exc).__name__}: {exc}"
        if time.monotonic() >= deadline:
            return False, last
        time.sleep(interval)


class SagaTracker:
    """Incremental view of which saga keys started and which reached a terminal event (for convergence)."""

    def __init__(self, spec: SystemSpec):
        self.starts: dict[str, str] = {}
        self.terminals: dict[str, str] = {}
        for name, saga in spec.sagas.items():
            self.starts[saga.start] = name
            for t in (*saga.success, *saga.abort):
                self.terminals[t] = name
        self.key_of = {name: saga.key_of for name, saga in spec.sagas.items()}
        self.started: set[tuple[str, Any]] = set()
        self.finished: set[tuple[str, Any]] = set()
        self.last_message_at = time.monotonic()
        self._lock = threading.Lock()

    def on_message(self, record: dict[str, Any]) -> None:
        self.last_message_at = time.monotonic()
        data = record.get("data")
        if not isinstance(data, dict):
            return
        subject = record["subject"]
        with self._lock:
            if subject in self.starts:
                name = self.starts[subject]
                self.started.add((name, self.key_of[name](data)))
            if subject in self.terminals:
                name = self.terminals[subject]
                self.finished.add((name, self.key_of[name](data)))

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self.started - self.finished)


def _load_invariants(spec: SystemSpec) -> list[tuple[str, Any]]:
    return [(inv.name, load_callable(spec, inv.target, f"invariants.{inv.name}")) for inv in spec.invariants]


def run(spec: SystemSpec, opts: RunOptions, bus: EventBus | None = None) -> tuple[int, Any]:
    """One complete run; returns (exit code, RunResult). Environment errors propagate (exit 3)."""
    from sagaproof.harness.results import CheckOutcome, RunResult

    bus = bus or EventBus()
    seed = opts.resolved_seed()
    report_dir = Path(opts.report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    invariants = _load_invariants(spec)  # config errors surface before anything starts
    if spec.workload.via == "http" and spec.workload.service is None:
        raise ConfigError(f"{spec.path}: [workload] is missing; add a [workload] table that says how a saga is started.")
    body = body_factory(spec)
    command = repro_command(opts, spec)
    started_iso = datetime.now(UTC).isoformat(timespec="seconds")
    t_start = time.monotonic()
    bus.emit(RunStarted(str(spec.path), seed, str(report_dir)))
    checks: list[Any] = []
    notes: list[str] = []

    # 1. static contracts
    contract_set, contract_outcome, declared_flows = _static_contracts(spec)
    if contract_outcome is not None:
        checks.append(contract_outcome)

    wall_t0 = time.time()
    tracker = SagaTracker(spec)
    schedule: list[dict[str, Any]] = []
    with System(spec, report_dir=report_dir, env=opts.env, bus=bus, chaos_links=opts.chaos, seed=seed) as system:
        validator = None
        if contract_set is not None:
            from sagaproof.contracts import LiveValidator

            validator = LiveValidator(contract_set)
        producer_of = _producer_lookup(contract_set)
        from sagaproof.harness.quiescence import OpenSagas, open_count, wait_for_convergence
        from sagaproof.harness.quiescence import eventually as eventually_settled

        open_sagas = OpenSagas(spec)

        def on_message(record: dict[str, Any]) -> None:
            tracker.on_message(record)
            open_sagas.on_message(record)

        recorder = Recorder(system.nats_urls, report_dir / "events.jsonl", t0=wall_t0, validator=validator,
                            producer_of=producer_of, on_message=on_message,
                            connect_options=system.nats_options, from_now=not spec.nats.embedded)
        assert system.loop is not None, "System.__enter__ starts the loop"
        system.loop.run(recorder.start(), timeout=30)
        system.broker.attach_recorder(recorder)  # the links' and the server's observations join the history
        bus.emit(Phase("workload", f"{opts.sagas or spec.workload.sagas} sagas"))
        recorder.add({"kind": "phase", "t": recorder.now(), "phase": "workload_start"})
        send = http_sender(system, spec.workload) if spec.workload.via == "http" else nats_sender(system, spec.workload)
        workload = Workload(spec.workload, send, body, seed=seed, bus=bus, count=opts.sagas, duration=opts.duration,
                            recorder=recorder, sagas=spec.sagas)
        workload.open_sagas = open_count(open_sagas, workload)  # the backlog stays bounded ([workload] max_open)
        workload.open_limit = spec.workload.open_limit(min((sg.deadline for sg in spec.sagas.values()), default=10.0))
        window = opts.duration if opts.duration is not None else (workload.count / spec.workload.rate)
        nemesis = None
        if opts.chaos:
            from sagaproof.harness.chaos_control import start_nemesis

            nemesis = start_nemesis(system, spec, opts, seed, window, recorder, bus)
        notes.extend(system.notes)  # e.g. fault kinds attach mode cannot inject
        try:
            wres = workload.run()
        finally:
            if nemesis is not None:
                schedule = nemesis.finish()
        recorder.add({"kind": "phase", "t": recorder.now(), "phase": "workload_end"})
        healed_at = recorder.now()
        recorder.add({"kind": "phase", "t": healed_at, "phase": "healed"})
        bus.emit(Phase("converging", f"{tracker.pending} sagas still open"))
        convergence = wait_for_convergence(spec, recorder, tracker, system.broker, healed_at, opts.quiet)
        # invariants (eventually), while the services still run; once quiescent their answer cannot change
        settled = (lambda: system.broker.quiescence(opts.quiet)[0]) if convergence.how != "timeout" else None
        inv_outcomes = []
        for name, fn in invariants:
            bus.emit(Phase("invariant", name))
            ok, why = eventually_settled(functools.partial(fn, system), spec.invariant_timeout, settled=settled)
            first = (why.splitlines() or [""])[0]
            summary = "holds" if ok else (first if len(first) <= 160 else first[:157] + "...")
            inv_outcomes.append(CheckOutcome(f"invariant {name}", ok, summary, [] if ok else why.splitlines()))
            if not ok:
                bus.emit(ViolationFound(f"invariant {name}", summary))
        system.loop.run(recorder.drain(), timeout=30)
        system.broker.record_snapshot()
        end_at = recorder.now()
        recorder.add({"kind": "phase", "t": end_at, "phase": "converged"})
        system.loop.run(recorder.stop(), timeout=30)
        services = system.describe()
    # 2. checks over the history
    from sagaproof.harness.checker import check_history

    check_result = check_history(recorder.records, spec.sagas, healed_at=healed_at, end_at=end_at,
                                 quiescent_at=convergence.quiescent_at if convergence.how == "quiescent" else None)
    bus.emit(SagaChecked(check_result.sagas_checked, len(check_result.violations)))
    from sagaproof.harness.consumption import check_broker, receives_from_contracts

    broker_report = check_broker(recorder.records, receives=receives_from_contracts(contract_set),
                                 streams=recorder.stream_subjects, services=list(system.services),
                                 sagas=spec.sagas, final=convergence.how != "timeout").with_repro(command)
    checks.extend(broker_report.outcomes())  # the consumers' side first: a lost delivery explains a stuck saga
    if convergence.how == "timeout":
        notes.append(f"the system was still not quiescent {convergence.waited:g}s after the heal "
                     f"({convergence.reason}); sagas were judged against their deadlines and unanswered deliveries "
                     f"counted as in flight. Raise [quiescence] timeout if the system needs longer to drain.")
    for svc in system.services.values():
        if svc.process.ignored_sigterm:  # a finding about the service: it will not shut down cleanly either
            notes.append(f"service '{svc.name}' ignored SIGTERM for {svc.spec.stop_timeout:g}s at teardown and "
                         f"was killed; make it exit on SIGTERM.")
    from sagaproof.harness.results import saga_check_outcomes

    check_result = check_result.with_repro(command) or check_result
    checks.extend(saga_check_outcomes(check_result))
    checks.extend(inv_outcomes)
    live_ok = not recorder.violations
    checks.append(CheckOutcome(
        "live contract conformance", live_ok,
        ("every message matched its contract" if validator is not None else "no contracts declared; nothing to check")
        if live_ok else f"{len(recorder.violations)} message(s) broke their contract",
        [_violation_line(v) for v in recorder.violations[:20]]))
    rec_ok = not recorder.problems
    checks.append(CheckOutcome("recorder completeness", rec_ok,
                               f"{recorder.messages} messages recorded, none lost" if rec_ok else recorder.problems[0],
                               list(recorder.problems)))
    if wres.failed:
        notes.append(f"{wres.failed} of {wres.requested} saga starts never got in (entry point down too long); "
                     f"first error: {wres.errors[0] if wres.errors else '?'}")
    ok = all(c.ok for c in checks)
    exit_code = EXIT_OK if ok else EXIT_CHECK_FAILED
    result = RunResult(
        seed=seed, system_path=str(spec.path), command=command, started_at=started_iso,
        duration_s=round(time.monotonic() - t_start, 3), verdict="pass" if ok else "fail", exit_code=exit_code,
        checks=checks, check_result=check_result, contract_violations=list(recorder.violations), faults=schedule,
        services=services, history_path=str(report_dir / "events.jsonl"), messages_recorded=recorder.messages,
        invariants=inv_outcomes, shrink=None, declared_flows=declared_flows, notes=notes,
        workload={"requested": wres.requested, "started": wres.started, "failed": wres.failed,
                  "unknown": wres.unknown, "retries": wres.retries, "seconds": round(wres.seconds, 3),
                  "held_back": round(wres.held_back, 3), "max_open": workload.open_limit},
        broker=broker_report.to_dict(), convergence=convergence.to_dict(),
    )
    bus.emit(RunFinished(result.verdict, exit_code, str(report_dir)))
    return exit_code, (result, recorder.records)


def _violation_line(v: dict[str, Any]) -> str:
    return f"{v.get('subject')} from {v.get('producer') or '?'} at {v.get('pointer') or '/'}: {v.get('message')}"


def _producer_lookup(contract_set: Any) -> Any:
    cache: dict[str, str | None] = {}

    def producer_of(subject: str) -> str | None:
        if subject not in cache:
            senders = contract_set.sender_of(subject) if contract_set is not None else []
            cache[subject] = senders[0] if len(senders) == 1 else None
        return cache[subject]

    return producer_of


def _static_contracts(spec: SystemSpec) -> tuple[Any, Any, list[dict[str, str]]]:
    """Load and check the contracts named in the system file (None when it names none)."""
    from sagaproof.harness.results import CheckOutcome

    sources = spec.contract_sources()
    if not sources and not spec.contract_schemas:
        return None, None, []
    from sagaproof.harness.contracts_cmd import contract_schemas

    from sagaproof import contracts

    try:
        cs = contracts.load(sources, contract_schemas(spec))
    except contracts.ContractsError as exc:  # an invalid document is bad input: one sentence, exit 2
        raise ConfigError(str(exc)) from None
    report = contracts.check(cs)
    problems = [f"{p.subject}: {p.message}" for p in report.errors]
    outcome = CheckOutcome("static contract compatibility", report.ok,
                           "every producer matches its consumers" if report.ok else f"{len(problems)} problem(s)",
                           problems[:20])
    flows = [{"service": svc, "action": action, "subject": ch.subject}
             for ch in cs.channels.values()
             for action, group in (("send", ch.producers), ("receive", ch.consumers)) for svc in group]
    return cs, outcome, flows
