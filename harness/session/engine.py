"""The engine of one run: record, drive the workload and the faults, converge, check, report.

A :class:`Session` runs against an environment (:class:`harness.env.system.System`: NATS, fault proxies, the
services, up and down) and owns everything that makes a run a run: the history (``events.jsonl``, written
from the engine's events as they happen), the recorder, the workload, the nemesis, the convergence wait,
the checks (:mod:`harness.checks`, one registered list) and the result. Both front-ends are thin:

* ``sagaproof run`` calls :meth:`Session.run` (the whole job) and renders the events;
* the pytest plugin opens one session per pytest session (:meth:`Session.open`), hands tests a
  :class:`SessionHandle`, and checks each test's window with the same checks.

Everything the engine learns is emitted as an event on the bus (:mod:`harness.events`); it never prints.
Errors of ``contracts`` and ``chaos`` cross into the harness through :func:`harness.errors.boundary`.
"""

from __future__ import annotations

import os
import random
import re
import shlex
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sagaproof.harness.checks import CheckContext, Window, key_of, own_lateness, run_checks, saga_result
from sagaproof.harness.checks.checker import OWED_CHECKS, CheckResult, SagaViolation
from sagaproof.harness.checks.findings import Finding
from sagaproof.harness.checks.results import CheckOutcome, RunResult, verdict_of
from sagaproof.harness.config import SystemSpec, load_callable
from sagaproof.harness.env.system import (
    MACHINE_VARS,  # not recorded, never replayed: the machine, not the system
)
from sagaproof.harness.env.wait import eventually

if TYPE_CHECKING:
    from sagaproof.harness.env.links import ChaosHandle
    from sagaproof.harness.env.system import Service, System
from sagaproof.harness.errors import EXIT_CHECK_FAILED, EXIT_OK, ConfigError, SagaproofError, boundary
from sagaproof.harness.events import (
    CheckFinished,
    Event,
    EventBus,
    FindingReported,
    InvariantEvaluated,
    MessageRecorded,
    Phase,
    ProcessChanged,
    RecordAdded,
    RunFinished,
    RunStarted,
    SagaChecked,
    ViolationFound,
)
from sagaproof.harness.history import History

__all__ = ["ChecksResult", "RunOptions", "Session", "SessionHandle", "StartOutcome", "StartResult",
           "eventually", "inherited_env", "replay_command", "run", "run_command", "running"]

DEFAULT_REPORT_DIR = Path("sagaproof-report")
# kinds of records a report shows in sections of their own, left out of its "notable events"
REPORTED_ELSEWHERE = ("finding", "fault_start", "fault_failed", "contract_violation")

# --------------------------------------------------------------------------------------------- options


@dataclass
class RunOptions:
    """Options of one run (the command line's, a replay's, or a test's)."""

    seed: int | None = None
    sagas: int | None = None
    duration: float | None = None
    faults: tuple[str, ...] | None = None
    intensity: float | None = None
    report_dir: Path = DEFAULT_REPORT_DIR
    shrink: bool = False
    shrink_runs: int = 8
    chaos: bool = True
    env: dict[str, str] = field(default_factory=dict)
    quiet: float = 1.0
    system_arg: str = "."
    schedule: list[dict[str, Any]] | None = None  # a fixed fault schedule (shrinking re-runs, replay)
    replayed_env: dict[str, str] = field(default_factory=dict)  # inherited variables a replay sets again
    replay_of: str | None = None
    reports: bool = True
    phases: tuple[str, ...] | None = None  # the nemesis's phases ("targeted", "random"); None: [chaos] phases
    targeted: list[dict[str, Any]] | None = None  # a fixed plan of targeted windows (replay)
    plugins: tuple[str, ...] = ()  # --plugin modules (resolved), loaded again by a replay (harness.plugins)

    def resolved_seed(self) -> int:
        if self.seed is None:
            self.seed = random.SystemRandom().randrange(1, 2**31)
        return self.seed

    def to_dict(self) -> dict[str, Any]:
        """What a replay needs (report.json's ``options``; secret-looking --env values masked)."""
        return {"system_arg": self.system_arg, "seed": self.seed, "sagas": self.sagas, "duration": self.duration,
                "faults": list(self.faults) if self.faults is not None else None, "intensity": self.intensity,
                "chaos": self.chaos, "env": mask_secrets(self.env), "replay_of": self.replay_of,
                "phases": list(self.phases) if self.phases is not None else None, "plugins": list(self.plugins)}


def run_command(opts: RunOptions) -> str:
    """The ``sagaproof run ...`` command equivalent to these options (seed, size, faults, --env)."""
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
    if opts.phases is not None:
        parts += ["--phases", ",".join(opts.phases)]
    if Path(opts.report_dir) != DEFAULT_REPORT_DIR:
        parts += ["--report-dir", str(opts.report_dir)]
    for k, v in sorted(mask_secrets(opts.env).items()):
        parts += ["--env", f"{k}={v}"]
    for plugin in opts.plugins:
        parts += ["--plugin", plugin]
    return " ".join(shlex.quote(p) for p in parts)


def replay_command(report_dir: str | Path) -> str:
    """The one command that reproduces a recorded run."""
    return f"sagaproof replay {shlex.quote(str(report_dir))}"


# --------------------------------------------------------------------------------------------- environment


SECRET_NAME = re.compile(r"SECRET|TOKEN|PASSW|PASSPHRASE|CREDENTIAL|PRIVATE|API_?KEY|ACCESS_?KEY|AUTH|COOKIE"
                         r"|SESSION|(^|_)KEY$|_PW$|^PW_|SIGNATURE|CERT", re.I)
MASKED = "***"
def mask_secrets(env: dict[str, str]) -> dict[str, str]:
    """The same variables, with the values of secret-looking names replaced by ``***``."""
    return {k: (MASKED if SECRET_NAME.search(k) else v) for k, v in env.items()}


def inherited_env(spec: SystemSpec, extra: dict[str, str], environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment variables the services inherit that neither the system file nor ``--env`` sets (the
    machine's own, like PATH and HOME, left out), with secret-looking values masked: what a replay needs."""
    if not any(s.inherit_env for s in spec.services.values()):
        return {}
    environ = dict(os.environ if environ is None else environ)
    set_by_file = {k for s in spec.services.values() for k in s.env} | set(extra)
    return mask_secrets({k: v for k, v in sorted(environ.items())
                         if k not in set_by_file and not MACHINE_VARS.match(k) and not k.startswith("SAGAPROOF_")})


# --------------------------------------------------------------------------------------------- helpers


class _Count:
    """A count that reads like a collection's size (``len``), for callers that count ended sagas."""

    def __init__(self) -> None:
        self.n = 0

    def __len__(self) -> int:
        return self.n


class SagaTracker:
    """Which sagas are open (started, no terminal yet) -- only those are kept --, how many ended, when the
    last message came, and, while a ``start_sagas`` call waits for them, which start keys were recorded."""

    def __init__(self, spec: SystemSpec):
        self.starts: dict[str, list[str]] = {}
        self.terminals: dict[str, list[str]] = {}
        for name, saga in spec.sagas.items():
            self.starts.setdefault(saga.start, []).append(name)
            for t in (*saga.success, *saga.abort):
                self.terminals.setdefault(t, []).append(name)
        self.keys = {name: saga.key for name, saga in spec.sagas.items()}
        self.open: set[tuple[str, str]] = set()
        self.finished_first: set[tuple[str, str]] = set()  # a terminal recorded before its start
        self.finished = _Count()  # sagas that reached an outcome (only counted)
        self.watching: set[tuple[str, str]] | None = None
        self.last_message_at = time.monotonic()
        self.feeds: list[Callable[[dict[str, Any]], None]] = []  # more listeners of {"subject", "data"}
        self._lock = threading.Lock()

    def on_message(self, event: MessageRecorded) -> None:
        self.last_message_at = time.monotonic()
        subject = event.subject
        for feed in self.feeds:
            feed({"subject": subject, "data": event.data})
        starts, terminals = self.starts.get(subject), self.terminals.get(subject)
        if not starts and not terminals:
            return
        with self._lock:
            for name in starts or ():
                k = key_of(event.data, self.keys[name])
                if k is None:
                    continue
                if self.watching is not None:
                    self.watching.add((name, k))
                if (name, k) in self.finished_first:
                    self.finished_first.discard((name, k))
                else:
                    self.open.add((name, k))
            for name in terminals or ():
                k = key_of(event.data, self.keys[name])
                if k is None:
                    continue
                if (name, k) in self.open:
                    self.open.discard((name, k))
                    self.finished.n += 1
                elif len(self.finished_first) < 100_000:
                    self.finished_first.add((name, k))
                    self.finished.n += 1

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self.open)


class RecordSink:
    """Where the parts of the engine that speak records (the workload's operations, the broker view's
    observations) put them: ``add(record)`` makes each an engine event (:class:`RecordAdded`), so it reaches the
    history and every consumer like any other; ``now()`` and ``t0`` are the history's clock."""

    def __init__(self, session: Session):
        self.session = session
        self.listeners: list[Callable[[dict[str, Any]], None]] = []

    @property
    def t0(self) -> float:
        return self.session.t0

    def now(self) -> float:
        return self.session.now

    def add(self, record: dict[str, Any]) -> None:
        for listener in list(self.listeners):
            listener(record)
        self.session.emit(RecordAdded(record))


class ProcessMonitor:
    """Notices a service or NATS node that exited on its own (not by the harness's hand) and says so with a
    :class:`ProcessChanged` event (``unexpected``, with its exit code): part of the processes' lives."""

    def __init__(self, system: Any, bus: EventBus, interval: float = 0.25):
        self.system = system
        self.bus = bus
        self.interval = interval
        self._down: set[str] = set()  # stopped or killed by the harness
        self._reported: dict[str, int] = {}
        self._seen: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name="sagaproof-monitor", daemon=True)
        bus.subscribe(self._on_event)

    def _on_event(self, event: Event) -> None:
        if isinstance(event, ProcessChanged) and not event.unexpected:
            if event.how in ("kill", "stop"):
                self._down.add(event.service)
            elif event.how in ("start", "restart"):
                self._down.discard(event.service)

    def _processes(self) -> list[tuple[str, Any]]:
        from sagaproof.harness.env.process import ManagedProcess

        procs = [(name, svc.process) for name, svc in self.system.services.items()
                 if isinstance(svc.process, ManagedProcess)]  # an attached service is not ours to watch
        if self.system.nats is not None:
            procs += [(f"nats-{n.index}", n.process) for n in self.system.nats.nodes]
        return procs

    def _main(self) -> None:
        while not self._stop.wait(self.interval):
            for name, proc in self._processes():
                if proc.running or name in self._down or proc.returncode is None:
                    self._seen.pop(name, None)
                    continue
                starts = proc.starts
                if self._reported.get(name) == starts:
                    continue
                if self._seen.get(name) != starts:  # not running: make sure on the next look (a restart)
                    self._seen[name] = starts
                    continue
                self._reported[name] = starts
                self.bus.emit(ProcessChanged(name, "exit", proc.pid, proc.returncode, unexpected=True))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)


def contract_schemas(spec: SystemSpec) -> list[Any]:
    """The system file's plain JSON Schema mappings ([[schemas]]) as contracts.SubjectSchema objects."""
    from sagaproof import contracts

    return [contracts.SubjectSchema(subject=s["subject"], schema_path=s["schema"], producers=s["producers"],
                                    consumers=s["consumers"]) for s in spec.contract_schemas]


def load_contracts(spec: SystemSpec) -> tuple[Any, list[dict[str, str]]]:
    """Load the contracts named in the system file (None when it names none), and the flows they declare; the
    check of producers against consumers is :class:`~harness.session.static_check.StaticCheck`'s."""
    sources = spec.contract_sources()
    if not sources and not spec.contract_schemas:
        return None, []
    from sagaproof import contracts

    with boundary("config"):  # an invalid document is bad input: one sentence, exit 2
        cs = contracts.load(sources, contract_schemas(spec))
    flows = [{"service": svc, "action": action, "subject": ch.subject}
             for ch in cs.channels.values()
             for action, group in (("send", ch.producers), ("receive", ch.consumers)) for svc in group]
    return cs, flows


def static_contracts(spec: SystemSpec) -> tuple[Any, CheckOutcome | None, list[dict[str, str]]]:
    """Load and check the contracts named in the system file (None when it names none), in this process."""
    sources = spec.contract_sources()
    if not sources and not spec.contract_schemas:
        return None, None, []
    from sagaproof import contracts

    with boundary("config"):  # an invalid document is bad input: one sentence, exit 2
        cs = contracts.load(sources, contract_schemas(spec))
        report = contracts.check(cs, accept_undecided=spec.accept_undecided)
    problems = [f"{p.subject}: {p.message}" for p in report.errors]
    outcome = CheckOutcome("static contract compatibility", report.ok,
                           "every producer matches its consumers" if report.ok else f"{len(problems)} problem(s)",
                           problems[:20], [Finding("static contract compatibility", p) for p in problems[:200]])
    flows = [{"service": svc, "action": action, "subject": ch.subject}
             for ch in cs.channels.values()
             for action, group in (("send", ch.producers), ("receive", ch.consumers)) for svc in group]
    return cs, outcome, flows


def _producer_lookup(contract_set: Any) -> Callable[[str], str | None]:
    cache: dict[str, str | None] = {}

    def producer_of(subject: str) -> str | None:
        if subject not in cache:
            senders = contract_set.sender_of(subject) if contract_set is not None else []
            cache[subject] = senders[0] if len(senders) == 1 else None
        return cache[subject]

    return producer_of


# --------------------------------------------------------------------------------------------- results


@dataclass
class StartOutcome:
    """The client's view of one start request: ``ok`` (accepted), ``fail`` (definitely not), ``unknown`` (no
    answer: it may or may not have got in); ``recorded`` says whether its start event is in the history."""

    index: int
    outcome: str
    key: str | None = None
    saga: str | None = None
    error: str | None = None
    recorded: bool = False


@dataclass
class StartResult:
    """What ``start_sagas`` did: the counts (``requested``, ``started``, ``failed``...) and one
    :class:`StartOutcome` per request, in order. ``keys`` are the keys of the accepted sagas."""

    requested: int = 0
    started: int = 0
    failed: int = 0
    retries: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)
    outcomes: list[StartOutcome] = field(default_factory=list)
    unknown_count: int = 0  # requests that got no answer (kept even when the outcomes are not)
    held_back: float = 0.0  # seconds the workload waited because [workload] max_open sagas were open
    duplicated: int = 0  # requests sent twice on purpose ([workload] duplicate)

    @property
    def keys(self) -> list[str]:
        return [o.key for o in self.outcomes if o.outcome == "ok" and o.key is not None]

    @property
    def unknown(self) -> list[StartOutcome]:
        return [o for o in self.outcomes if o.outcome == "unknown"]

    @property
    def not_recorded(self) -> list[StartOutcome]:
        """Accepted starts whose start event never showed up in the history."""
        return [o for o in self.outcomes if o.outcome == "ok" and not o.recorded]


class ChecksResult:
    """What ``check_sagas`` found: every check's outcome over the window, the saga checker's result, and
    the failures of all of them as one list of findings.

    ``ok`` is true only when every check held *and* at least one saga was judged. ``violations``,
    ``sagas_checked``, ``counts``, ``by_check(...)``... are the saga checker's (:class:`CheckResult`).
    ``str(result)`` (and the ``AssertionError`` of :meth:`assert_ok`) reads on its own: each failure, the
    seed and the line that reproduces it.
    """

    def __init__(self, outcomes: list[CheckOutcome], sagas: CheckResult, *, seed: int | None, repro: str,
                 window: Window, in_verdict: bool = True):
        self.outcomes = outcomes
        self.sagas = sagas
        self.seed = seed
        self.repro = repro
        self.window = window
        self.in_verdict = in_verdict  # counted in the pytest session's verdict (check_sagas(in_verdict=False): not)

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outcomes)

    @property
    def findings(self) -> list[Finding]:
        return [f for o in self.outcomes for f in o.findings]

    @property
    def failed_checks(self) -> list[CheckOutcome]:
        return [o for o in self.outcomes if not o.ok]

    # the saga checker's result, typed (anything else of it through __getattr__)
    @property
    def violations(self) -> list[SagaViolation]:
        return self.sagas.violations

    @property
    def sagas_checked(self) -> int:
        return self.sagas.sagas_checked

    @property
    def counts(self) -> dict[str, dict[str, int]]:
        return self.sagas.counts

    def by_check(self, check: str) -> list[SagaViolation]:
        return self.sagas.by_check(check)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("sagas", "outcomes", "in_verdict"):
            raise AttributeError(name)
        return getattr(self.sagas, name)

    def message(self) -> str:
        if self.ok:
            return f"every check held ({self.sagas.sagas_checked} sagas judged)"
        lines = [f"{len(self.failed_checks)} check(s) failed: {', '.join(o.name for o in self.failed_checks)}"]
        for o in self.failed_checks:
            lines.append(f"- {o.name}: {o.summary}" if o.status != "not judged" or "not judged" in o.summary
                         else f"- {o.name} (not judged): {o.summary}")
            for f in o.findings[:5]:
                lines.extend("    " + line for line in f.text().splitlines())
            if len(o.findings) > 5:
                lines.append(f"    ... and {len(o.findings) - 5} more")
        lines.append(f"seed: {self.seed}")
        lines.append(f"reproduce: {self.repro}")
        return "\n".join(lines)

    __str__ = message

    def __repr__(self) -> str:
        first = self.failed_checks[0] if self.failed_checks else None
        return (f"<ChecksResult ok={self.ok} sagas_checked={self.sagas.sagas_checked}"
                + (f" first failure: {first.name}: {first.summary}" if first else "") + ">")

    def assert_ok(self) -> None:
        """Raise AssertionError with :meth:`message` unless every check held."""
        __tracebackhide__ = True
        if not self.ok:
            raise AssertionError(self.message())


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
        """Contracts, environment, workload under the nemesis, heal, converge, invariants, checks, result.

        Emits :class:`RunFinished` with the result (the report writer, when subscribed, writes the reports
        then). Environment errors propagate (exit 3); everything started is stopped whatever happens.
        """
        from sagaproof.harness.session.nemesis import make_schedule, start_nemesis

        spec = self.spec
        if spec.workload.via == "http" and spec.workload.service is None:
            raise ConfigError(f"{spec.path}: [workload] is missing; add a [workload] table that says how a saga is started.")
        started_iso = datetime.now(UTC).isoformat(timespec="seconds")
        t_start = time.monotonic()
        self._ensure_history()
        self.emit(RunStarted(str(spec.path), self.seed, str(self.report_dir), self.command))
        notes: list[str] = []
        count = opts.sagas if opts.sagas is not None else spec.workload.sagas
        window_s = opts.duration if opts.duration is not None else count / spec.workload.rate
        if opts.chaos:
            make_schedule(spec, opts, self.seed, window_s)  # a bad menu or schedule is exit 2 before anything starts
        self.wants_static_check = True
        self.open()
        try:
            self.emit(Phase("workload_start", f"{count if opts.duration is None else 'for ' + format(window_s, 'g') + 's'} sagas"))
            nemesis = None
            phases = opts.phases if opts.phases is not None else spec.chaos.phases
            locks: dict[str, threading.Lock] = {}  # process faults on one service take turns across the phases
            if opts.chaos and "targeted" in phases:
                self._start_targeted(opts, locks)
            if opts.chaos and "random" in phases:
                nemesis = start_nemesis(self.system, make_schedule(spec, self._usable(opts), self.seed, window_s),
                                        lambda: self.now, self.bus, locks=locks)
                self.planned_faults = nemesis.planned
            notes.extend(self.system.notes)  # e.g. fault kinds attach mode cannot inject
            t_phase = time.monotonic()
            try:
                wres = self.start_sagas(opts.sagas, seed=self.seed, duration=opts.duration, wait=0,
                                        keep_outcomes=False)
            finally:
                self.timings["workload"] = round(time.monotonic() - t_phase, 3)
                t_phase = time.monotonic()
                if self.targeted is not None:
                    self.targeted.finish()
                if nemesis is not None:
                    nemesis.finish()
                self.timings["chaos"] = round(time.monotonic() - t_phase, 3)  # faults outlasting the workload
            self.emit(Phase("workload_end"))
            t_phase = time.monotonic()
            healed_at = self.now
            self.emit(Phase("healed"))
            self.emit(Phase("converging", f"{self.tracker.pending} sagas still open"))
            self.convergence = convergence = self.wait_for_end(healed_at, opts.quiet)
            if getattr(self, "reads", None) is not None:  # every saga read once, the system quiescent
                from sagaproof.harness.session.reads import final_keys

                self.reads.final_reads(final_keys(self))
            # invariants (eventually), while the services still run; once quiescent their answer cannot change
            settled = (lambda: self.system.broker.quiescence(opts.quiet)[0]) if convergence.how != "timeout" else None
            self.evaluate_invariants(settled)
            self.drain()
            self.system.broker.record_snapshot()
            self.timings["convergence"] = round(time.monotonic() - t_phase, 3)
            end_at = self.now
            self.emit(Phase("converged"))
            services = self.system.describe()
        except BaseException:
            self.close()
            raise
        # the environment goes down before judging: the history is complete
        self._stop_environment()
        for svc in self.system.services.values():
            if getattr(svc.process, "ignored_sigterm", False):  # a finding about the service
                notes.append(f"service '{svc.name}' ignored SIGTERM for {svc.spec.stop_timeout:g}s at teardown "
                             f"and was killed; make it exit on SIGTERM.")
        if convergence.how == "timeout":
            notes.append(f"the system was still not quiescent {convergence.waited:g}s after the heal "
                         f"({convergence.reason}); sagas were judged against their deadlines and unanswered deliveries "
                         f"counted as in flight. Raise [quiescence] timeout if the system needs longer to drain.")
        assert self.history is not None
        self.history.sort()
        self.emit(Phase("checking"))
        t_phase = time.monotonic()
        outcomes = self.check(Window(), healed_at=healed_at, end_at=end_at,
                              quiescent_at=convergence.quiescent_at if convergence.how == "quiescent" else None,
                              chaos=self.chaos_phase(opts), reads_quiescent=convergence.how != "timeout",
                              broker={"receives_from": self.contract_set, "final": convergence.how != "timeout",
                                      "streams": {**self.recorder.stream_subjects,
                                                  **getattr(self.recorder, "published_streams", {})},
                                      "services": list(self.system.services), "groups": self.spec.groups(),
                                      "observing": list(self.system.broker.observers)})
        self.timings["checks"] = round(time.monotonic() - t_phase, 3)
        contract_outcome = self.static_contract_outcome()
        if contract_outcome is not None:
            outcomes.insert(0, contract_outcome)
        late = getattr(self.recorder, "late_streams", {})
        if late:
            notes.append(f"stream(s) {', '.join(sorted(late))} were created by the services after the recording began: "
                         f"their messages were recorded as published, without stream sequences, so the broker checks "
                         f"judge only the work queues among them; declare them in [[nats.streams]] to have them read "
                         f"from the start")
        if wres.failed:
            notes.append(f"{wres.failed} of {wres.requested} saga starts never got in (entry point down too long); "
                         f"first error: {wres.errors[0] if wres.errors else '?'}")
        unknown = wres.unknown_count
        if unknown:
            notes.append(f"{unknown} saga start(s) got no answer (outcome unknown: they may or may not have started)")
        coverage = self.coverage()
        # Without an observed link (attach mode) the targeted phase has nothing to aim at: no note of "0 of 0"
        if coverage is not None and (coverage.get("total") or self.system.broker.observers):
            notes.insert(0, f"{coverage['summary']} (consumer x input subject x window; a window not exercised is "
                            f"not a pass)")
        result = self._result(opts, outcomes, started_iso, time.monotonic() - t_start, services, notes, wres)
        result.coverage = coverage
        if opts.shrink and result.verdict == "fail":
            from sagaproof.harness.session.shrink import shrink

            result.shrink = shrink(spec, opts, result, self.bus)
        self.finish(result)
        self.close()
        return result.exit_code, result

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


# --------------------------------------------------------------------------------------------- pytest handle


class SessionHandle:
    """What a pytest test gets (``sagaproof_system``): the running system and the session's engine.

    ``services[name]`` (``.http``, ``.kill()``, ``.pause()``, ``.resume()``, ``.restart()``, ``.stop()``),
    ``nats_url``, ``chaos`` (fault context managers), ``seed``, ``report_dir``; and the engine:
    :meth:`start_sagas`, :meth:`mark`, :meth:`history`, :meth:`check_sagas`, :meth:`eventually`.
    Process faults a test makes through it are undone when the test ends, pass or fail.
    """

    def __init__(self, session: Session, *, repro: Callable[[], str] | None = None):
        self.session = session
        self._repro = repro or (lambda: session.command)
        self.test_started: float | None = None
        self.nodeid: str | None = None
        self.results: list[ChecksResult] = []  # every check_sagas result, for the session's report

    # environment
    @property
    def system(self) -> System:
        system: System = self.session.system
        return system

    @property
    def services(self) -> dict[str, Service]:
        return self.system.services

    @property
    def chaos(self) -> ChaosHandle:
        return self.system.chaos

    @property
    def nats_url(self) -> str:
        return str(self.session.system.nats_url)

    @property
    def nats_urls(self) -> list[str]:
        return list(self.session.system.nats_urls)

    @property
    def spec(self) -> SystemSpec:
        return self.session.spec

    @property
    def seed(self) -> int:
        return self.session.seed

    @property
    def report_dir(self) -> Path:
        return self.session.report_dir

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name == "session":
            raise AttributeError(name)
        return getattr(self.session.system, name)

    def restart_nats(self, index: int = 0) -> None:
        """Kill a NATS node and start it again with its JetStream data (a recorded fault)."""
        self.chaos.restart_nats(index)

    # engine
    def mark(self) -> float:
        """The current history time (seconds), to check only what starts after this point."""
        return self.session.now

    def history(self, since: float = 0.0, kinds: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """The recorded history from ``since`` on, in time order: one dict per record (``kind``: ``message``,
        ``fault_start``, ``fault_end``, ``fault_failed``, ``operation``, ``process``, ``phase``, ``finding``...;
        see docs/history.md)."""
        assert self.session.history is not None
        self.session.system.broker.flush()  # what the links observed up to now
        recs = list(self.session.history.records(kinds=kinds, since=since))
        recs.sort(key=lambda r: (r.get("t", 0.0), r.get("seq", 0)))
        return recs

    def start_sagas(self, count: int | None = None, *, seed: int | None = None, wait: float | None = None) -> StartResult:
        """Start ``count`` sagas the way [workload] says; returns once their start events are recorded, with
        each request's outcome (``.outcomes``) and the accepted sagas' keys (``.keys``)."""
        return self.session.start_sagas(count, seed=seed, wait=wait)

    def check_sagas(self, since: float | None = None, *, keys: Iterable[Any] | None = None,
                    wait: float | None = None, invariants: bool = True, in_verdict: bool = True) -> ChecksResult:
        """Every check, over the sagas that started at or after ``since`` (default: the start of this test),
        or exactly the sagas with these ``keys``: the saga checks, live contract conformance, recorder
        completeness, the faults of the window, the invariants (unless ``invariants=False``), and every
        registered check.

        First waits (at most ``wait`` seconds, default the longest saga deadline) until nothing is owed:
        no saga of the window misses its outcome or a compensation. A window with no saga fails.

        Every result counts in the pytest session's verdict (``report.json``, the exit code), asserted or not;
        a test that provokes a failure on purpose, to see it reported, passes ``in_verdict=False``.
        """
        s = self.session
        if since is None:
            since = self.test_started if keys is None and self.test_started is not None else 0.0
        window = Window(since=since if keys is None else None,
                        keys=frozenset(k if isinstance(k, tuple) else str(k) for k in keys) if keys is not None else None)
        waited = s._max_deadline() if wait is None else wait
        settled = s.converge(since, quiet=0.3, window=window, limit=waited)
        s.drain()
        reads_quiescent = True
        if getattr(s, "reads", None) is not None:  # the window's sagas read once, as a run's are at its end
            from sagaproof.harness.session.reads import wait_quiescent, window_keys

            reads_quiescent = wait_quiescent(s, min(waited, 10.0))
            s.reads.final_reads(window_keys(s, window))
        if invariants:
            s.evaluate_invariants()
        assert s.history is not None
        # settled: nothing is owed even as if every deadline had passed, so judge as of then; otherwise judge
        # now, and a saga still without its outcome is reported below rather than passed as "pending"
        end_at = s.history.max_t + s._max_deadline() if settled else s.now
        outcomes = s.check(window, healed_at=since, end_at=end_at, reads_quiescent=reads_quiescent,
                           planned_faults=[], window_messages=self._messages_since(since))
        saga = s.last_saga_result or CheckResult()
        if saga.pending:
            keys = ", ".join(f"{name}/{key}" for name, key in saga.pending[:10])
            text = (f"{len(saga.pending)} saga(s) had no outcome yet when check_sagas stopped waiting after "
                    f"{waited:g}s: {keys}; pass a longer wait= or find out why they are stuck")
            outcomes.append(CheckOutcome("sagas settled", False, text, [text], [Finding("sagas settled", text, text)]))
        result = ChecksResult(outcomes, saga, seed=s.seed, repro=self._repro(), window=window, in_verdict=in_verdict)
        self.results.append(result)
        return result

    def read_status(self, key: Any, saga: str | None = None) -> dict[str, Any]:
        """Read saga instance ``key``'s status the way ``[sagas.NAME.status]`` declares (the run's own read,
        recorded in the history as a ``read`` record): returns that record, with ``outcome`` (ok, fail,
        unknown), ``value``, ``status`` (pending, success, abort or None) and ``found``."""
        from sagaproof.harness.session.reads import read_once

        return read_once(self.session, key, saga)

    def _messages_since(self, since: float) -> int:
        assert self.session.history is not None
        return sum(1 for _ in self.session.history.records(kinds=("message",), since=since))

    def eventually(self, fn: Callable[[], object], timeout: float = 10.0, interval: float = 0.1) -> None:
        """Call fn() until it stops raising AssertionError (or returning False/a reason); else raise it."""
        __tracebackhide__ = True
        ok, why = eventually(fn, timeout, interval)
        if not ok:
            raise AssertionError(f"not true within {timeout:g}s: {why}")

    # test windows (the pytest plugin calls these)
    def begin_test(self, nodeid: str) -> None:
        from sagaproof.harness.events import TestStarted

        self.nodeid = nodeid
        self.test_started = self.session.now
        self.log_offsets = {p: p.stat().st_size for p in self.session.system.log_dir.glob("*.log")}
        self.session.emit(TestStarted(nodeid))

    def end_test(self, outcome: str) -> list[str]:
        """Undo what the test left behind: resume paused processes, start stopped or killed ones, heal the
        links. Returns what was undone (also in the history)."""
        from sagaproof.harness.events import TestFinished

        undone: list[str] = []
        system = self.session.system
        for name, svc in system.services.items():
            try:
                if getattr(svc.process, "paused", False):
                    svc.resume()
                    undone.append(f"resumed {name}")
                if not svc.running:
                    if getattr(svc.spec, "attached", False):
                        svc.restart()  # an attached service is started again by its restart command
                    else:
                        svc.start()
                    undone.append(f"started {name} again")
            except SagaproofError as exc:
                undone.append(f"could not restore {name}: {exc}")
        if system.nats is not None:
            for node in system.nats.nodes:
                if node.process.paused:
                    node.process.resume()
                    undone.append(f"resumed nats-{node.index}")
                if not node.process.running:
                    node.process.start()
                    system.nats.wait_healthy(node, 30)
                    self.session.emit(ProcessChanged(f"nats-{node.index}", "start", node.process.pid))
                    undone.append(f"started nats-{node.index} again")
        try:
            system.chaos.heal()
        except SagaproofError as exc:
            undone.append(f"could not heal the links: {exc}")
        self.session.emit(TestFinished(self.nodeid or "?", outcome, undone))
        self.nodeid = None
        return undone

    def write_test_artifacts(self, dest: Path) -> dict[str, Path]:
        """A failed test's slice of the history (``events.jsonl``) and of every log, into ``dest``."""
        dest.mkdir(parents=True, exist_ok=True)
        assert self.session.history is not None
        since = self.test_started or 0.0
        self.session.history.write_slice(dest / "events.jsonl", since=since)
        out = {"events.jsonl": dest / "events.jsonl"}
        for log in sorted(self.session.system.log_dir.glob("*.log")):
            start = getattr(self, "log_offsets", {}).get(log, 0)
            with open(log, "rb") as src, open(dest / log.name, "wb") as dst:
                src.seek(start)
                shutil.copyfileobj(src, dst)
            out[log.name] = dest / log.name
        return out

    def test_notes(self) -> list[str]:
        """The notable events of the current test's window, one line each (for a failing test's section)."""
        since = self.test_started or 0.0
        return [f"t={e['t']:.3f}s {e['summary']}" for e in self.session.notable_events(since=since, limit=50)]


@contextmanager
def running(spec: SystemSpec, *, report_dir: str | Path, chaos_links: bool = False, seed: int = 0,
            env: dict[str, str] | None = None, bus: EventBus | None = None) -> Iterator[SessionHandle]:
    """The system up and its history recorded, handed out as the pytest handle (for scripts and tests that
    drive it themselves): ``with running(spec, report_dir=d) as system: system.start_sagas(10) ...``."""
    session = Session(spec, report_dir=report_dir, bus=bus, seed=seed, env=env, chaos_links=chaos_links)
    session.open()
    try:
        yield SessionHandle(session)
    finally:
        session.close()


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
