"""The engine's typed events: what happened during a run, and (serialised) the run's history.

There is one vocabulary. The engine (:mod:`harness.session.engine`, the environment it drives, the recorder, the
nemesis wiring) emits these dataclasses on an :class:`EventBus`; every consumer subscribes to the bus:

* the history (:class:`harness.history.History`) writes each event as one JSON line of ``events.jsonl``
  (``event.to_record(t0)``), so the history *is* the serialised event stream;
* the CLI's progress display renders them; events it does not know are shown by their :meth:`Event.summary`;
* the reports are written from the history and the :class:`RunFinished` event;
* the pytest plugin collects them per test (a failing test shows the notable events of its window).

A new kind of event is a new subclass with a ``kind`` (its history record's ``kind``) and, if people should
see it, a :meth:`Event.summary`; nothing that consumes the stream needs to change. A consumer that raises is
dropped from the bus, never the run. The engine itself never prints.
"""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

__all__ = [
    "CheckFinished", "ContractViolated", "Event", "EventBus", "FaultFailed", "FaultHealed", "FaultInjected",
    "FindingReported", "InvariantEvaluated", "MessageRecorded", "NatsReady", "Phase",
    "PortRetried", "ProcessChanged", "RecordAdded", "RecorderProblem", "RunFinished", "RunStarted", "SagaChecked", "SagaStarted",
    "ServiceReady", "ServiceStarting", "ServiceStopped", "SystemUp", "TestFinished", "TestStarted",
    "ViolationFound", "hide_password",
]


_new = object.__new__


def hide_password(url: str) -> str:
    """A URL with the password of its user-info replaced by ``***``."""
    return re.sub(r"(//[^:/@]+:)[^@]*@", r"\1***@", url)


@dataclass(frozen=True)
class Event:
    """Base class: every event carries its wall-clock time (``at``, ``time.time()``).

    ``kind`` names the event's history record; ``recorded = False`` keeps an event out of the history (for
    events that only drive a display).
    """

    kind: ClassVar[str] = "event"
    recorded: ClassVar[bool] = True
    at: float = field(default_factory=time.time, kw_only=True)

    def summary(self) -> str | None:
        """One line for people (the progress display, a failing test's section), or None to stay quiet."""
        return None

    def payload(self) -> dict[str, Any]:
        """The event's fields for its history record (JSON-ready)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "at"}

    def to_record(self, t0: float) -> dict[str, Any]:
        """The history record: ``{"kind", "t" (seconds since the run started), ...fields, "line"?}`` where
        ``line`` is :meth:`summary` when there is one; ``kind`` comes first (readers skip kinds by the line's
        prefix)."""
        record: dict[str, Any] = {"kind": self.kind, "t": round(self.at - t0, 6)}
        if type(self).kind == Event.kind:  # a subclass without its own kind: name it by its class
            record["kind"] = f"event:{type(self).__name__}"
        record.update(self.payload())
        text = self.summary()
        if text:
            record["line"] = text
        return record


# ------------------------------------------------------------------------------------------ run


@dataclass(frozen=True)
class RunStarted(Event):
    kind: ClassVar[str] = "run_started"
    system: str
    seed: int
    report_dir: str
    command: str = ""


@dataclass(frozen=True)
class Phase(Event):
    """A phase of the run: ``workload_start``, ``workload_end``, ``healed``, ``converged``, ``shrinking``..."""

    kind: ClassVar[str] = "phase"
    name: str
    detail: str = ""

    def payload(self) -> dict[str, Any]:
        return {"phase": self.name, "detail": self.detail}


@dataclass(frozen=True)
class RunFinished(Event):
    """The run is over; ``result`` is the :class:`harness.checks.results.RunResult` (not written to the history)."""

    kind: ClassVar[str] = "run_finished"
    verdict: str
    exit_code: int
    report_dir: str
    result: Any = None

    def payload(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "exit_code": self.exit_code, "report_dir": self.report_dir}


# ------------------------------------------------------------------------------------------ environment


@dataclass(frozen=True)
class NatsReady(Event):
    kind: ClassVar[str] = "nats_ready"
    urls: list[str]
    seconds: float

    def payload(self) -> dict[str, Any]:
        return {"urls": [hide_password(u) for u in self.urls], "seconds": round(self.seconds, 3)}


@dataclass(frozen=True)
class ServiceStarting(Event):
    kind: ClassVar[str] = "service_starting"
    service: str
    port: int


@dataclass(frozen=True)
class ServiceReady(Event):
    kind: ClassVar[str] = "service_ready"
    service: str
    port: int
    seconds: float


@dataclass(frozen=True)
class SystemUp(Event):
    kind: ClassVar[str] = "system_up"
    seconds: float


@dataclass(frozen=True)
class ProcessChanged(Event):
    """A process of the run (a service or a NATS node) was started, stopped, killed, paused, resumed or
    restarted, or exited on its own (``unexpected``), with its pid and exit code where known."""

    kind: ClassVar[str] = "process"
    service: str
    how: str  # "start" | "stop" | "kill" | "pause" | "resume" | "restart" | "exit"
    pid: int | None = None
    exit_code: int | None = None
    unexpected: bool = False

    def summary(self) -> str | None:
        if self.unexpected:
            return f"process {self.service} exited on its own with code {self.exit_code}"
        return None


ServiceStopped = ProcessChanged  # the name of earlier versions


@dataclass(frozen=True)
class PortRetried(Event):
    """What the harness started could not bind the port it was given (a program that is not sagaproof took it
    after it was chosen): it is started again on ``new_port``. ``process`` is a service, ``nats-N``, the fault
    proxy's API (``fault-proxy``) or a link (``link:NAME``)."""

    kind: ClassVar[str] = "port_retry"
    process: str
    port: int
    new_port: int
    reason: str

    def summary(self) -> str | None:
        return (f"{self.process} could not bind port {self.port} (taken by another program): "
                f"started again on port {self.new_port}")


# ------------------------------------------------------------------------------------------ workload


@dataclass(frozen=True)
class SagaStarted(Event):
    """One start request of the workload finished (got in, or gave up); drives the progress bar."""

    kind: ClassVar[str] = "saga_started"
    recorded: ClassVar[bool] = False  # the history has the operation records instead
    index: int
    ok: bool
    detail: str = ""


# ------------------------------------------------------------------------------------------ records


@dataclass(frozen=True)
class RecordAdded(Event):
    """A history record made as a dict by a part of the engine that speaks records (the workload's
    ``operation`` records, the broker view's link observations, advisories and snapshots). ``record`` has its
    ``kind`` and its ``t`` already; it goes into the history as it is."""

    kind: ClassVar[str] = "record"
    record: dict[str, Any]

    def to_record(self, t0: float) -> dict[str, Any]:
        rec = dict(self.record)
        out: dict[str, Any] = {"kind": rec.pop("kind", "record"), "t": rec.pop("t", round(self.at - t0, 6))}
        out.update(rec)
        return out


# ------------------------------------------------------------------------------------------ recorder


@dataclass(frozen=True)
class MessageRecorded(Event):
    """One message seen on the run's NATS (``at`` is the server's timestamp for stream messages).

    ``data`` is the parsed JSON payload (``raw`` the text when it is not JSON); ``data_json``, when set, is
    the payload's own JSON text (printable ASCII), which the history writes as ``data`` instead of
    serialising ``data`` again (it reads back as the same value). It is not a field of the record.
    """

    kind: ClassVar[str] = "message"
    subject: str
    stream: str | None
    stream_seq: int | None
    producer: str | None
    headers: dict[str, str]
    data: Any
    size: int
    raw: str | None = None
    data_json: str | None = field(default=None, repr=False, compare=False)

    @classmethod
    def fast(cls, subject: str, stream: str | None, stream_seq: int | None, producer: str | None,
             headers: dict[str, str], data: Any, size: int, raw: str | None, at: float,
             data_json: str | None) -> MessageRecorded:
        """The same event as the constructor makes, without the frozen dataclass's per-field
        ``object.__setattr__`` (the recorder makes one per message; tests hold the two equal)."""
        event = _new(cls)
        event.__dict__.update(subject=subject, stream=stream, stream_seq=stream_seq, producer=producer,
                              headers=headers, data=data, size=size, raw=raw, data_json=data_json, at=at)
        return event

    def payload(self) -> dict[str, Any]:
        d = {"subject": self.subject, "stream": self.stream, "stream_seq": self.stream_seq,
             "producer": self.producer, "headers": self.headers, "data": self.data, "size": self.size}
        if self.raw is not None:
            d["raw"] = self.raw
        return d


@dataclass(frozen=True)
class ContractViolated(Event):
    """A recorded message broke its contract (live contract conformance)."""

    kind: ClassVar[str] = "contract_violation"
    violation: dict[str, Any]
    seq: int | None = None

    def payload(self) -> dict[str, Any]:
        return {"violation": self.violation, "message_seq": self.seq}

    def summary(self) -> str | None:
        v = self.violation
        return (f"contract violation: {v.get('subject')} from {v.get('producer') or '?'} at "
                f"{v.get('pointer') or '/'}: {v.get('message')}")


@dataclass(frozen=True)
class RecorderProblem(Event):
    """The recorder may have missed messages (fell behind, a gap in a stream)."""

    kind: ClassVar[str] = "recorder_problem"
    problem: str

    def summary(self) -> str | None:
        return f"recorder: {self.problem}"


# ------------------------------------------------------------------------------------------ faults


@dataclass(frozen=True)
class FaultInjected(Event):
    """A fault is active. ``fault`` has ``id``, ``kind``, ``target``, ``params``, the planned ``start`` and
    ``duration`` (seconds on the schedule's clock; ``None`` for a test's fault), ``started_at`` (history time it
    really began), ``late_by`` (seconds after its planned start) and ``source`` (``nemesis`` or ``test``)."""

    kind: ClassVar[str] = "fault_start"
    fault: dict[str, Any]

    def summary(self) -> str | None:
        f = self.fault
        late = f.get("late_by")
        return (f"fault {f.get('id')} {f.get('kind')} → {f.get('target')}"
                + (f" ({late:.2f}s late)" if isinstance(late, float) and late >= 0.05 else ""))


@dataclass(frozen=True)
class FaultHealed(Event):
    kind: ClassVar[str] = "fault_end"
    fault: dict[str, Any]

    def payload(self) -> dict[str, Any]:
        return {"fault_id": self.fault.get("id"), "fault": self.fault}


@dataclass(frozen=True)
class FaultFailed(Event):
    """A fault could not be injected (``stage`` ``inject``) or healed (``heal``)."""

    kind: ClassVar[str] = "fault_failed"
    fault: dict[str, Any]
    error: str
    stage: str = "inject"

    def summary(self) -> str | None:
        f = self.fault
        return f"fault {f.get('id')} {f.get('kind')} → {f.get('target')} could not be {'injected' if self.stage == 'inject' else 'healed'}: {self.error}"


# ------------------------------------------------------------------------------------------ checks


@dataclass(frozen=True)
class InvariantEvaluated(Event):
    kind: ClassVar[str] = "invariant"
    name: str
    ok: bool
    summary_text: str = ""
    details: list[str] = field(default_factory=list)

    def payload(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "summary": self.summary_text, "details": self.details}


@dataclass(frozen=True)
class FindingReported(Event):
    """One failure found by a check (every check's findings are this one family; see harness.checks.findings)."""

    kind: ClassVar[str] = "finding"
    finding: dict[str, Any]

    def summary(self) -> str | None:
        return f"{self.finding.get('check')}: {self.finding.get('title')}"


@dataclass(frozen=True)
class ViolationFound(Event):
    """A check failed (one line for the progress display)."""

    kind: ClassVar[str] = "violation"
    check: str
    summary_text: str

    def payload(self) -> dict[str, Any]:
        return {"check": self.check, "summary": self.summary_text}


@dataclass(frozen=True)
class SagaChecked(Event):
    kind: ClassVar[str] = "saga_checked"
    checked: int
    violations: int


@dataclass(frozen=True)
class CheckFinished(Event):
    """One named check's outcome."""

    kind: ClassVar[str] = "check"
    name: str
    ok: bool
    summary_text: str = ""
    skipped: bool = False
    status: str = ""  # "passed" | "failed" | "not judged" | "not applicable" (harness.checks.results)

    def payload(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "summary": self.summary_text, "skipped": self.skipped,
                "status": self.status or ("failed" if not self.ok else "passed")}


# ------------------------------------------------------------------------------------------ pytest


@dataclass(frozen=True)
class TestStarted(Event):
    """A pytest test that uses the system began (its window of the history starts here)."""

    __test__: ClassVar[bool] = False  # not a pytest test class
    kind: ClassVar[str] = "test_started"
    nodeid: str


@dataclass(frozen=True)
class TestFinished(Event):
    __test__: ClassVar[bool] = False
    kind: ClassVar[str] = "test_finished"
    nodeid: str
    outcome: str  # "passed" | "failed" | "skipped"
    undone: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------ the bus


Listener = Callable[[Event], None]


class EventBus:
    """Fan-out of engine events to subscribers; thread-safe."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._current: tuple[Listener, ...] = ()  # what emit() calls: replaced whole, never changed in place
        self._lock = threading.Lock()
        self.dropped: list[tuple[Listener, BaseException]] = []

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Add a listener; returns a function that removes it."""
        with self._lock:
            self._listeners.append(listener)
            self._current = tuple(self._listeners)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)
                    self._current = tuple(self._listeners)

        return unsubscribe

    def emit(self, event: Event) -> None:
        for listener in self._current:
            try:
                listener(event)
            except Exception as exc:  # noqa: BLE001 - a broken display must not break the run
                with self._lock:
                    if listener in self._listeners:
                        self._listeners.remove(listener)
                        self._current = tuple(self._listeners)
                        self.dropped.append((listener, exc))
