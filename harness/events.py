"""The engine's typed event stream: what happened during a run, for the CLI, the pytest plugin and reports.

The engine emits these; consumers (the rich progress display, log files, reporters) subscribe with
:meth:`EventBus.subscribe`. A consumer that raises is dropped from the bus, never the run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Event:
    """Base class: every event carries its wall-clock time."""

    at: float = field(default_factory=time.time, kw_only=True)


@dataclass(frozen=True)
class RunStarted(Event):
    system: str
    seed: int
    report_dir: str


@dataclass(frozen=True)
class NatsReady(Event):
    urls: list[str]
    seconds: float


@dataclass(frozen=True)
class ServiceStarting(Event):
    service: str
    port: int


@dataclass(frozen=True)
class ServiceReady(Event):
    service: str
    port: int
    seconds: float


@dataclass(frozen=True)
class ServiceStopped(Event):
    service: str
    how: str  # "stop" | "kill" | "pause" | "resume" | "restart"


@dataclass(frozen=True)
class SystemUp(Event):
    seconds: float


@dataclass(frozen=True)
class SagaStarted(Event):
    index: int
    ok: bool
    detail: str = ""


@dataclass(frozen=True)
class FaultInjected(Event):
    fault: dict[str, Any]


@dataclass(frozen=True)
class FaultHealed(Event):
    fault: dict[str, Any]


@dataclass(frozen=True)
class ViolationFound(Event):
    check: str
    summary: str


@dataclass(frozen=True)
class SagaChecked(Event):
    checked: int
    violations: int


@dataclass(frozen=True)
class Phase(Event):
    name: str
    detail: str = ""


@dataclass(frozen=True)
class RunFinished(Event):
    verdict: str
    exit_code: int
    report_dir: str


Listener = Callable[[Event], None]


class EventBus:
    """Fan-out of engine events to subscribers; thread-safe."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Add a listener; returns a function that removes it."""
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def emit(self, event: Event) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(event)
            except Exception:  # noqa: BLE001 - a broken display must not break the run
                with self._lock:
                    if listener in self._listeners:
                        self._listeners.remove(listener)
