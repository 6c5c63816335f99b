"""What a check gets: :class:`CheckContext` (the system file, the history, the window, the facts) and
:class:`Window` (what to judge); :data:`CheckFn` is a check's type."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sagaproof.harness.checks.results import CheckOutcome
from sagaproof.harness.config import SystemSpec
from sagaproof.harness.events import Event
from sagaproof.harness.history import HistoryReader

__all__ = ["CheckContext", "CheckFn", "Window"]


@dataclass(frozen=True)
class Window:
    """What a check judges: the sagas that started in ``[since, until)`` (all when both are None), or exactly
    the saga instances with these ``keys`` (each a key string, or ``(saga, key)``)."""

    since: float | None = None
    until: float | None = None
    keys: frozenset[str | tuple[str, str]] | None = None

    def holds(self, record: dict[str, Any]) -> bool:
        """True when the record's time is inside the window (for checks of single records)."""
        t = record.get("t", 0.0)
        return (self.since is None or t >= self.since) and (self.until is None or t < self.until)

    @property
    def everything(self) -> bool:
        return self.since is None and self.until is None and self.keys is None


@dataclass
class CheckContext:
    """What a check gets.

    Attributes:
        spec: the system file.
        history: every record so far (a re-iterable stream); narrow it with ``history.of("message", ...)``.
        window: what to judge.
        healed_at: history time when the last fault healed (deadlines count from here).
        end_at: history time the judgement is made at (a deadline after it is still pending).
        facts: what the session knows beyond the history: ``planned_faults`` (the nemesis schedule, fault
            dicts), ``schedule_tolerance``, ``validator`` (contracts were loaded), ``messages`` (recorded),
            ``scratch`` (a directory for temporary files), ``repro`` (the reproduce command).
        emit: emit an engine event (it reaches the history, the progress display, the reports, pytest).
    """

    spec: SystemSpec
    history: HistoryReader
    window: Window = field(default_factory=Window)
    healed_at: float = 0.0
    end_at: float = 0.0
    facts: dict[str, Any] = field(default_factory=dict)
    emit: Callable[[Event], None] = lambda event: None


CheckFn = Callable[[CheckContext], Iterable[CheckOutcome]]
