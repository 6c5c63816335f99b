"""The engine of one run: record, drive the workload and the faults, converge, check, report.

A :class:`Session` runs against an environment (:class:`harness.env.system.System`: NATS, fault proxies, the
services, up and down) and owns everything that makes a run a run: the history (``events.jsonl``, written
from the engine's events as they happen), the recorder, the workload, the nemesis, the convergence wait,
the checks (:mod:`harness.checks`, one registered list) and the result. Both front-ends are thin:

* ``sagaproof run`` calls :meth:`Session.run` (the whole job) and renders the events;
* the pytest plugin opens one session per pytest session (:meth:`Session.open`), hands tests a
  :class:`~harness.session.handle.SessionHandle`, and checks each test's window with the same checks.

Everything the engine learns is emitted as an event on the bus (:mod:`harness.events`); it never prints.
Errors of ``contracts`` and ``chaos`` cross into the harness through :func:`harness.errors.boundary`.

Beside it: :mod:`harness.session.job` (the whole job, step by step), :mod:`harness.session.options` (the run's
options and environment), :mod:`harness.session.support` (what the engine tracks, the contracts it loads) and
:mod:`harness.session.handle` (the pytest handle); this module re-exports the names that moved.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sagaproof.harness.checks import CheckContext, Window, own_lateness, run_checks, saga_result
from sagaproof.harness.checks.checker import OWED_CHECKS, CheckResult
from sagaproof.harness.checks.results import CheckOutcome, RunResult, verdict_of
from sagaproof.harness.config import SystemSpec, load_callable
from sagaproof.harness.env.wait import eventually

if TYPE_CHECKING:
    pass
from sagaproof.harness.errors import EXIT_CHECK_FAILED, EXIT_OK, ConfigError, SagaproofError
from sagaproof.harness.events import (
    CheckFinished,
    Event,
    EventBus,
    FindingReported,
    InvariantEvaluated,
    Phase,
    RunFinished,
    SagaChecked,
    ViolationFound,
)
from sagaproof.harness.history import History
from sagaproof.harness.session.options import (  # re-exported: the engine's names before the split
    DEFAULT_REPORT_DIR,
    MASKED,
    SECRET_NAME,
    RunOptions,
    inherited_env,
    mask_secrets,
    replay_command,
    run_command,
)
from sagaproof.harness.session.support import (  # re-exported, as above
    ProcessMonitor,
    RecordSink,
    SagaTracker,
    StartOutcome,
    StartResult,
    _producer_lookup,
    contract_schemas,
    load_contracts,
    static_contracts,
)

__all__ = ["DEFAULT_REPORT_DIR", "MASKED", "ProcessMonitor", "RecordSink", "RunOptions", "SECRET_NAME", "SagaTracker", "Session", "StartOutcome", "StartResult", "contract_schemas", "eventually", "inherited_env", "load_contracts", "mask_secrets", "replay_command", "run", "run_command", "static_contracts"]

# kinds of records a report shows in sections of their own, left out of its "notable events"
REPORTED_ELSEWHERE = ("finding", "fault_start", "fault_failed", "contract_violation")

# --------------------------------------------------------------------------------------------- the session


class Session:
    """One run against a running environment: history, recorder, workload, faults, convergence, checks.

    Args:
        spec: the system file.
        report_dir: where the history, system.json, logs and reports go.
        bus: the event bus the front-end listens on.
        seed: seeds the workload's bodies and the fault schedule.
        env: extra environment for every service (``--env``).
        chaos_links: put a fault proxy between every service and NATS.
        replayed_env: inherited variables a replay sets again.
        command: the command that reproduces this session (shown with every failure).
    """

    def __init__(self, spec: SystemSpec, *, report_dir: str | Path, bus: EventBus | None = None, seed: int = 0,
                 env: dict[str, str] | None = None, chaos_links: bool = False,
                 replayed_env: dict[str, str] | None = None, command: str = ""):
        self.spec = spec
        self.report_dir = Path(report_dir)
        self.bus = bus or EventBus()
        self.seed = seed
        self.env = dict(env or {})
        self.chaos_links = chaos_links
        self.replayed_env = None if replayed_env is None else dict(replayed_env)
        self.command = command
        self.t0 = time.time()
        self.history: History | None = None
        self.system: Any = None
        self.recorder: Any = None
        self.validator: Any = None
        self.contract_set: Any = None
        self.contract_outcome: CheckOutcome | None = None
        self.static_check: Any = None  # harness.session.static_check.StaticCheck while it runs beside the run
        self.wants_static_check = False  # `sagaproof run` judges the contracts statically too (run() sets it)
        self.timings: dict[str, Any] = {}  # where the run's time went (report.json "timings")
        self.declared_flows: list[dict[str, str]] = []
        self.tracker = SagaTracker(spec)
        from sagaproof.harness.session.quiescence import OpenSagas

        self.open_sagas = OpenSagas(spec)  # the workload's backlog bound ([workload] max_open)
        self.tracker.feeds.append(self.open_sagas.on_message)
        self.sink = RecordSink(self)
        self.convergence: Any = None
        self.monitor: ProcessMonitor | None = None
        self.planned_faults: list[dict[str, Any]] = []
        self.targeted: Any = None  # the targeted phase of the nemesis, once armed
        self.consumers: dict[str, list[dict[str, Any]]] = {}
        self.invariants = [(inv.name, load_callable(spec, inv.target, f"invariants.{inv.name}"))
                           for inv in spec.invariants]  # config errors surface before anything starts
        self._starts = 0
        self.last_saga_result: CheckResult | None = None
        self.last_broker_report: dict[str, Any] | None = None
        self._unsubscribe: list[Callable[[], None]] = []
        self.reads: Any = None  # the status reads (harness.session.reads.ReadSchedule), when a saga declares one
        self._state = "new"

    # ------------------------------------------------------------------ lifecycle
    @property
    def now(self) -> float:
        """History time: seconds since the session started."""
        return round(time.time() - self.t0, 6)

    def emit(self, event: Event) -> None:
        self.bus.emit(event)

    def open(self) -> Session:
        """Load the contracts, bring the environment up and start recording; on failure, tear down."""
        from sagaproof.harness.env.system import System

        if self._state != "new":
            raise SagaproofError(f"this session was already {self._state}; create a new one.")
        self._state = "opening"
        self._ensure_history()
        try:
            t_open = time.monotonic()
            self.contract_set, self.declared_flows = load_contracts(self.spec)
            if self.contract_set is not None and self.wants_static_check:
                from sagaproof.harness.session.static_check import StaticCheck

                # the check of producers against consumers: a cached answer, or a process of its own that runs
                # while the environment starts and the workload runs (see static_contract_outcome)
                self.static_check = StaticCheck.start(self.spec, self.report_dir / "logs")
            if self.contract_set is not None:
                from sagaproof.contracts import LiveValidator

                self.validator = LiveValidator(self.contract_set)
            self.system = System(self.spec, report_dir=self.report_dir, env=self.env, bus=self.bus,
                                 chaos_links=self.chaos_links, seed=self.seed)
            self.system.replayed_env = dict(self.replayed_env or {})
            self.system.replaying = self.replayed_env is not None
            self.system.manifest_extra = {
                "seed": self.seed, "command": self.command, "env_options": mask_secrets(self.env),
                "inherited_env": (inherited_env(self.spec, self.env) if self.replayed_env is None
                                  else mask_secrets(self.replayed_env)),
                "replayed_env": mask_secrets(self.replayed_env or {})}
            self.system.chaos.clock = lambda: self.now
            self.system.start()
            from sagaproof.harness.session.recorder import Recorder

            self.recorder = Recorder(self.system.nats_urls, self.emit, validator=self.validator,
                                     producer_of=_producer_lookup(self.contract_set),
                                     on_message=self.tracker.on_message, connect_options=self.system.nats_options,
                                     from_now=not self.spec.nats.embedded,
                                     core=self.system.recorder_core)
            self.system.recorder = self.recorder
            self.system.loop.run(self.recorder.start(), timeout=30)
            self.system.broker.attach_recorder(self.sink)  # the links' and the server's observations join it
            self.monitor = ProcessMonitor(self.system, self.bus)
            self.monitor.start()
            from sagaproof.harness.session.reads import start_reads

            self.reads = start_reads(self)  # [sagas.NAME.status]: status reads while the sagas run
        except BaseException:
            self.close()
            raise
        self.timings["start_up"] = round(time.monotonic() - t_open, 3)
        self._state = "open"
        return self

    def static_contract_outcome(self) -> CheckOutcome | None:
        """The static contract check's outcome, waiting for it if it still runs (None without contracts)."""
        if self.contract_outcome is None and self.static_check is not None:
            self.contract_outcome = self.static_check.result()
            self.timings["contracts"] = self.static_check.timing()
        return self.contract_outcome

    def _ensure_history(self) -> None:
        if self.history is None:
            self.report_dir.mkdir(parents=True, exist_ok=True)
            self.history = History(self.report_dir / "events.jsonl", t0=self.t0)
            self._unsubscribe.append(self.bus.subscribe(self.history))

    def _stop_environment(self) -> None:
        """Stop watching and recording, and tear the environment down (the history stays open); idempotent."""
        if self.monitor is not None:
            self.monitor.stop()
        if getattr(self, "reads", None) is not None:
            self.reads.stop()
        recorder = self.recorder
        if recorder is not None and self.system is not None and self.system.loop is not None \
                and not getattr(self, "_recorder_closed", False):
            self._recorder_closed = True
            try:
                self.system.loop.run(recorder.stop(), timeout=15)
            except Exception:  # noqa: BLE001 - teardown goes on
                pass
        nc = getattr(self.system, "_workload_nc", None) if self.system is not None else None
        if nc is not None and self.system.loop is not None:  # the workload's own NATS connection (publish)
            self.system._workload_nc = None
            try:
                self.system.loop.run(nc.close(), timeout=10)
            except Exception:  # noqa: BLE001 - teardown goes on
                pass
        if self.system is not None:
            self.system.close()

    def close(self) -> None:
        """Stop recording, tear the environment down, close the history; idempotent."""
        if self._state == "closed":
            return
        self._state = "closed"
        if self.static_check is not None:
            self.static_check.close()  # a check still running when the run ends early: stopped with it
        self._stop_environment()
        if self.history is not None:
            self.history.close()
        for unsub in self._unsubscribe:
            unsub()

    def __enter__(self) -> Session:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ workload
    def start_sagas(self, count: int | None = None, *, seed: int | None = None, duration: float | None = None,
                    wait: float | None = None, keep_outcomes: bool = True) -> StartResult:
        """Start sagas the way the system file's [workload] says (blocking). Returns once every accepted
        start's start event is in the history (or ``wait`` passed, default the longest saga deadline), with
        each request's outcome and key. Each request is an ``operation`` record in the history (made by the
        workload, :mod:`harness.session.workload`).

        ``keep_outcomes=False`` (a long run) keeps only the counts, so memory does not grow with the run."""
        from sagaproof.harness.session.quiescence import open_count
        from sagaproof.harness.session.workload import Workload, body_factory, http_sender, nats_sender

        w = self.spec.workload
        if w.via == "http" and w.service is None:
            raise ConfigError(f"{self.spec.path}: [workload] is missing; add a [workload] table that says how a "
                              f"saga is started.")
        base = self._starts
        self._starts += 1
        call_seed = self.seed if seed is None and base == 0 else (seed if seed is not None else self.seed * 1000 + base)
        send = http_sender(self.system, w) if w.via == "http" else nats_sender(self.system, w)
        outcomes: dict[int, StartOutcome] = {}
        lock = threading.Lock()

        def on_record(rec: dict[str, Any]) -> None:
            if rec.get("kind") != "operation" or not keep_outcomes:
                return
            key = rec.get("key")
            o = StartOutcome(int(rec.get("op", -1)), str(rec.get("outcome")), None if key is None else str(key),
                             rec.get("saga"), None if rec.get("outcome") == "ok" else rec.get("detail"))
            with lock:
                outcomes[o.index] = o

        watching = wait != 0
        watch: set[tuple[str, str]] = set()
        if watching:
            with self.tracker._lock:
                self.tracker.watching = watch
        self.sink.listeners.append(on_record)
        try:
            workload = Workload(w, send, body_factory(self.spec), seed=call_seed, bus=self.bus, count=count,
                                duration=duration, recorder=self.sink, sagas=self.spec.sagas)
            workload.open_sagas = open_count(self.open_sagas, workload)  # the backlog stays bounded
            workload.open_limit = w.open_limit(min((sg.deadline for sg in self.spec.sagas.values()), default=10.0))
            self.last_workload = workload
            wres = workload.run()
            with lock:
                done = [outcomes[i] for i in sorted(outcomes)]
            if watching:
                accepted = {(o.saga, o.key) for o in done if o.outcome == "ok" and o.key is not None}
                limit = time.monotonic() + (wait if wait is not None else self._max_deadline())
                while not accepted <= watch and time.monotonic() < limit:
                    time.sleep(0.02)
        finally:
            self.sink.listeners.remove(on_record)
            if watching:
                with self.tracker._lock:
                    self.tracker.watching = None
        for o in done:
            o.recorded = (o.saga, o.key) in watch
        return StartResult(wres.requested, wres.started, wres.failed, wres.retries, wres.seconds, list(wres.errors),
                           done, wres.unknown, getattr(wres, "held_back", 0.0), getattr(wres, "duplicated", 0))

    def _max_deadline(self) -> float:
        return max((s.deadline for s in self.spec.sagas.values()), default=10.0)

    # ------------------------------------------------------------------ judging
    def _facts(self, **more: Any) -> dict[str, Any]:
        assert self.history is not None
        recorder = self.recorder
        return {"planned_faults": self.planned_faults, "schedule_tolerance": self.spec.chaos.schedule_tolerance,
                "validator": self.validator is not None, "messages": self.history.messages,
                "scratch": self.report_dir, "repro": self.command,
                "cross_checked": sorted(recorder.cross_checked) if recorder is not None else None, **more}

    def owed(self, window: Window, healed_at: float) -> tuple[CheckResult, list[Any]]:
        """Judge the window as if every deadline had passed; also what is still owed (may yet arrive)."""
        assert self.history is not None
        due = max(self.history.max_t, healed_at) + self._max_deadline()
        result = saga_result(self.history.reader(), self.spec.sagas, window, healed_at=healed_at, end_at=due,
                             n_messages=self.history.messages, scratch=self.report_dir)
        return result, [v for v in result.violations if v.check in OWED_CHECKS]

    def converge(self, healed_at: float, *, quiet: float = 1.0, window: Window | None = None,
                 limit: float | None = None) -> bool:
        """Wait until every saga is settled and the wire is quiet, or until the deadline after healing.

        "Settled" asks the checker itself: if judging the history as if every deadline had passed finds no
        termination or compensation failure, nothing is still owed. Returns True when settled.
        """
        window = window or Window()
        t_end = time.monotonic() + (self._max_deadline() if limit is None else limit)
        next_judgement = 0.0
        while True:
            now = time.monotonic()
            is_quiet = now - self.recorder.last_message_at >= quiet
            if (is_quiet and (not window.everything or self.tracker.pending == 0) and now >= next_judgement):
                t = time.monotonic()
                _, owed = self.owed(window, healed_at)
                if not owed:
                    return True
                next_judgement = time.monotonic() + max(0.5, 2 * (time.monotonic() - t))
            if now >= t_end:
                return False
            time.sleep(0.05)

    def wait_for_end(self, healed_at: float, quiet: float) -> Any:
        """The end of a run: settled, quiescent or timeout (:func:`harness.session.quiescence.wait_for_convergence`,
        which asks the broker's view), judging what is owed from the streamed history."""
        from sagaproof.harness.session.quiescence import wait_for_convergence

        return wait_for_convergence(self.spec, self.sink, self.tracker, self.system.broker, healed_at, quiet,
                                    owed=lambda: self.owed(Window(), healed_at)[1])

    def evaluate_invariants(self, settled: Callable[[], bool] | None = None) -> list[CheckOutcome]:
        """Evaluate every invariant (eventually, within [invariants] timeout; an invariant that fails twice while
        ``settled()`` says nothing can change any more fails at once), each an event."""

        out = []
        for name, fn in self.invariants:
            self.emit(Phase("invariant", name))
            ok, why = eventually(self._invariant_call(fn), self.spec.invariant_timeout, settled=settled)
            first = (why.splitlines() or [""])[0]
            summary = "holds" if ok else (first if len(first) <= 160 else first[:157] + "...")
            details = [] if ok else why.splitlines()
            self.emit(InvariantEvaluated(name, ok, summary, details))
            if not ok:
                self.emit(ViolationFound(f"invariant {name}", summary))
            out.append(CheckOutcome(f"invariant {name}", ok, summary, details))
        return out

    def _invariant_call(self, fn: Callable[[Any], Any]) -> Callable[[], Any]:
        return lambda: fn(self.system)

    def drain(self) -> None:
        """Wait until the recorder has every message the streams hold (a problem is recorded otherwise)."""
        self.system.loop.run(self.recorder.drain(), timeout=60)
        for state in getattr(self.recorder, "work_queues", {}).values():
            # a work queue is read from its publishes: its sequences and leftovers let consumption judge it
            self.sink.add({"kind": "stream_state", "t": self.sink.now(), **state})

    def check(self, window: Window, *, healed_at: float, end_at: float, **facts: Any) -> list[CheckOutcome]:
        """Run every registered check (:data:`harness.checks.CHECKS`) over the window; each outcome, each
        finding and the saga checker's totals are events."""
        assert self.history is not None
        ctx = CheckContext(self.spec, self.history.reader(), window, healed_at, end_at, self._facts(**facts),
                           self.emit)
        outcomes = run_checks(ctx)
        broker = ctx.facts.get("broker_report")
        if broker is not None:
            self.last_broker_report = broker.to_dict()
        saga = ctx.facts.get("saga_result")
        if isinstance(saga, CheckResult):
            self.emit(SagaChecked(saga.sagas_checked, len(saga.violations)))
            self.last_saga_result = saga
        for o in outcomes:
            self.emit(CheckFinished(o.name, o.ok, o.summary, o.skipped, o.status))
            if o.status == "failed":
                self.emit(ViolationFound(o.name, o.summary))
            for f in o.findings:
                self.emit(FindingReported(f.to_dict()))
        return outcomes

    # ------------------------------------------------------------------ the whole job (sagaproof run)
    def run(self, opts: RunOptions) -> tuple[int, RunResult]:
        """Contracts, environment, workload under the nemesis, heal, converge, invariants, checks, result
        (:func:`harness.session.job.run_job`).

        Emits :class:`RunFinished` with the result (the report writer, when subscribed, writes the reports
        then). Environment errors propagate (exit 3); everything started is stopped whatever happens.
        """
        from sagaproof.harness.session.job import run_job

        return run_job(self, opts)

    def chaos_phase(self, opts: RunOptions) -> str | None:
        """What the run's chaos phase was asked for (for "fault schedule carried out"), None without one."""
        if not opts.chaos:
            return None
        menu = list(opts.faults if opts.faults is not None else self.spec.chaos.faults)
        phases = opts.phases if opts.phases is not None else self.spec.chaos.phases
        asked = []
        if "targeted" in phases:
            asked.append("the targeted phase's windows")
        if "random" in phases and menu:  # --faults none: no random phase was asked for
            asked.append(f"fault kinds asked for: {', '.join(map(str, menu))}")
        return "; ".join(asked) or None

    def _start_targeted(self, opts: RunOptions, locks: dict[str, threading.Lock]) -> None:
        """Plan the targeted windows from the consumers the services created (or take the replayed plan) and
        arm them on the links (:mod:`harness.session.targeted`)."""
        from sagaproof.harness.session.targeted import TargetedPhase, consumers_seen, plan_windows

        self.consumers = consumers_seen(self.system)
        late = [(st.service, st.success, st.timeout) for sg in self.spec.sagas.values() for st in sg.steps
                if st.timeout is not None and st.service in self.system.services]
        plan = opts.targeted if opts.targeted is not None else plan_windows(self.seed, self.consumers, late)
        key_paths = list(dict.fromkeys(sg.key for sg in self.spec.sagas.values()))
        self.targeted = TargetedPhase(self.system, plan, lambda: self.now, self.bus, locks, key_paths,
                                      record=self.sink.add, consumers=self.consumers,
                                      activity=lambda: (self.tracker.pending, self.tracker.last_message_at))
        self.targeted.start()

    def coverage(self) -> dict[str, Any] | None:
        """The targeted phase's coverage matrix (None when the phase did not run)."""
        if self.targeted is None:
            return None
        from sagaproof.harness.session.targeted import coverage

        broke: dict[str, list[str]] = {}
        for v in (self.last_saga_result.violations if self.last_saga_result is not None else []):
            broke.setdefault(str(v.key), []).append(v.check)
        cov = coverage(self.targeted.records(), self.consumers, list(self.system.services), broke,
                       unavailable=self.targeted.unavailable)
        cov["plan"] = [{k: w[k] for k in ("id", "window", "service", "consumer", "stream", "subject", "nth",
                                          "landed_nth", "hold", "timeout") if k in w}
                       for w in self.targeted.windows]
        return cov

    def _usable(self, opts: RunOptions) -> RunOptions:
        """The options with the fault menu cut to what can be injected (attach mode: some kinds cannot)."""
        if not any(getattr(s.spec, "attached", False) for s in self.system.services.values()):
            return opts
        from dataclasses import replace

        from sagaproof.harness.session.nemesis import usable_menu

        menu, notes = usable_menu(self.system, list(opts.faults if opts.faults is not None else self.spec.chaos.faults))
        self.system.notes.extend(notes)
        return replace(opts, faults=tuple(menu))  # the replay keeps the user's menu: the same cut is made

    def _result(self, opts: RunOptions, outcomes: list[CheckOutcome], started_iso: str, seconds: float,
                services: list[dict[str, Any]], notes: list[str], wres: StartResult) -> RunResult:
        assert self.history is not None
        verdict, exit_code = verdict_of(outcomes)
        saga = self.last_saga_result
        invariants = [c for c in outcomes if c.name.startswith("invariant ")]
        contract_violations = [f.data.get("violation", {}) for c in outcomes
                               if c.name == "live contract conformance" for f in c.findings]
        return RunResult(
            seed=self.seed, system_path=str(self.spec.path), command=self.command, started_at=started_iso,
            duration_s=round(seconds, 3), verdict=verdict,
            exit_code=EXIT_OK if exit_code == 0 else EXIT_CHECK_FAILED, checks=outcomes, check_result=saga,
            contract_violations=contract_violations, faults=self.fault_table(),
            services=services, history_path=str(self.history.path), messages_recorded=self.history.messages,
            invariants=invariants, shrink=None, declared_flows=self.declared_flows, notes=notes,
            workload={"requested": wres.requested, "started": wres.started, "failed": wres.failed,
                      "unknown": wres.unknown_count, "retries": wres.retries, "duplicated": wres.duplicated,
                      "seconds": round(wres.seconds, 3),
                      "held_back": round(wres.held_back, 3),
                      "max_open": getattr(getattr(self, "last_workload", None), "open_limit", None)},
            broker=self.last_broker_report, convergence=self.convergence.to_dict() if self.convergence else None,
            options=dict(opts.to_dict(), system_file=str(self.spec.path.resolve())), run_command=run_command(opts),
            event_counts=dict(self.history.counts), notable_events=self.notable_events(exclude=REPORTED_ELSEWHERE),
            timings={**self.timings, "total": round(seconds, 3)})

    def fault_table(self) -> list[dict[str, Any]]:
        """Every fault, planned and actual: ``start``/``duration`` as planned, ``started_at``/``ended_at`` as
        carried out (history time), ``late_by``, ``status`` (carried out, late, failed, not started) and
        ``error``."""
        assert self.history is not None
        table: dict[str, dict[str, Any]] = {str(f["id"]): dict(f, status="not started") for f in self.planned_faults}
        for rec in self.history.records(kinds=("fault_start", "fault_end", "fault_failed")):
            f = rec.get("fault") or {}
            fid = str(f.get("id"))
            row = table.setdefault(fid, dict(f, status="not started"))
            for k, v in f.items():
                if k not in ("start", "duration") or row.get(k) is None:
                    row[k] = v
            if rec["kind"] == "fault_start":
                late = own_lateness(f)
                dur = row.get("duration") if row.get("source") == "nemesis" else None
                row["status"] = ("late" if late is not None and isinstance(dur, int | float) and late > dur
                                 else "carried out")
            elif rec["kind"] == "fault_failed":
                row["error"] = rec.get("error")
                if rec.get("stage", "inject") == "inject":
                    row["status"] = "failed"
                else:
                    row["heal_error"] = rec.get("error")
        return sorted(table.values(), key=lambda f: (float(f.get("start") or 0.0), str(f.get("id"))))

    def notable_events(self, since: float | None = None, until: float | None = None, limit: int = 200,
                       exclude: Iterable[str] = ("finding",)) -> list[dict[str, Any]]:
        """The history's records that carry a line for people (faults, process exits, any new kind...), less
        the kinds in ``exclude`` (those a report shows in sections of their own)."""
        assert self.history is not None
        out = []
        skip = set(exclude)
        for rec in self.history.records(since=since, until=until):
            if rec.get("line") and rec.get("kind") not in skip:
                out.append({"t": rec.get("t"), "kind": rec.get("kind"), "summary": rec["line"]})
                if len(out) >= limit:
                    break
        return out

    def finish(self, result: RunResult) -> None:
        """Announce the result (the report writer and the front-ends listen), then close the history."""
        if self.history is not None:
            self.history.sort()
            self.history.flush()  # the report writer reads the file
        self.emit(RunFinished(result.verdict, result.exit_code, str(self.report_dir), result))
        if self.history is not None:
            self.history.close()


def run(spec: SystemSpec, opts: RunOptions, bus: EventBus | None = None) -> tuple[int, RunResult]:
    """One complete run (``sagaproof run``); returns (exit code, RunResult). The reports are written when
    ``opts.reports`` (by the report writer, from the RunFinished event)."""
    from sagaproof.harness.plugins import load_plugins
    from sagaproof.harness.report import ReportWriter

    load_plugins(opts.plugins, base=Path.cwd(), where="RunOptions.plugins")  # loaded already by the CLI
    bus = bus or EventBus()
    seed = opts.resolved_seed()
    report_dir = Path(opts.report_dir)
    unsub = bus.subscribe(ReportWriter()) if opts.reports else (lambda: None)
    try:
        session = Session(spec, report_dir=report_dir, bus=bus, seed=seed, env=opts.env, chaos_links=opts.chaos,
                          replayed_env=opts.replayed_env if opts.replay_of else None,
                          command=replay_command(report_dir))
        return session.run(opts)
    finally:
        unsub()
