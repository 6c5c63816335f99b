"""The engine's parts that are not the session itself: what it tracks while a run goes on (the sagas started,
the record sink, the service processes), the contracts it loads, and what a start of sagas returns
(:class:`StartResult`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sagaproof.harness.checks import key_of
from sagaproof.harness.checks.findings import Finding
from sagaproof.harness.checks.results import CheckOutcome
from sagaproof.harness.config import SystemSpec
from sagaproof.harness.errors import boundary
from sagaproof.harness.events import (
    Event,
    EventBus,
    MessageRecorded,
    ProcessChanged,
    RecordAdded,
)

if TYPE_CHECKING:
    from sagaproof.harness.session.engine import Session

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
