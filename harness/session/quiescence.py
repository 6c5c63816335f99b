"""When is a run over? The broker's answer: quiescence. And a workload that keeps the backlog bounded.

After the faults heal, the run waits until one of three things is true:

``settled``
    every saga has its outcome, nothing is owed (no missing compensation) and the system is quiescent at that
    moment (so every delivery has been answered: consumption is final too): the run can be judged.
``quiescent``
    the system is *quiescent* and stays so for ``[quiescence] hold``: every service that connected is
    connected, no service holds a delivery it has not answered, no link carried any activity (pull requests
    that find nothing and pings do not count) for the quiet window, every durable consumer the services use
    has nothing pending and nothing awaiting an ack, and no message was recorded for the quiet window.
    Nothing can move any more, so what is still owed never will be: the missing outcomes are *stuck*, the
    missing compensations are missing, and failing invariants stop being retried.
``timeout``
    neither, and no saga reached its outcome for ``[quiescence] timeout`` (default three times the longest
    saga deadline, at least 30 s), or the wait reached ten times that in all: the system kept moving without
    getting anywhere. Sagas without an outcome by then are judged as before, against their deadline. As long
    as sagas keep ending (a backlog draining after the heal), the run keeps waiting: they are late, not stuck.

A saga that is still progressing is *late*, not stuck (see :mod:`harness.checks.checker`).

:class:`OpenSagas` counts the sagas started and not ended (those overdue by twice their deadline left out:
they are judged, not waited for); the workload waits while ``[workload] max_open`` of them are open, so a
long run under faults neither grows its backlog without bound nor takes minutes to drain.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from sagaproof.harness.config import SystemSpec


@dataclass
class Convergence:
    """How the wait for the end went: ``how`` is settled, quiescent or timeout (see the module docstring)."""

    how: str
    waited: float
    quiescent_at: float | None = None  # history time (recorder clock) from which the system was quiescent
    owed: int = 0  # sagas/compensations still owed when the wait ended
    reason: str = ""  # why the system was not quiescent (timeout)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def convergence_limit(spec: SystemSpec) -> float:
    """The longest the run waits without any saga reaching its outcome (ten times that in all)."""
    if spec.quiescence.timeout is not None:
        return spec.quiescence.timeout
    return max(30.0, 3 * max((s.deadline for s in spec.sagas.values()), default=10.0))


def wait_for_convergence(spec: SystemSpec, recorder: Any, tracker: Any, broker: Any, healed_at: float,
                         quiet: float, owed: Callable[[], list[Any]] | None = None) -> Convergence:
    """Wait until settled, quiescent (held for ``spec.quiescence.hold``) or the limit; see the module docstring.

    ``tracker`` is the run loop's saga tracker (``pending``, ``last_message_at``, ``finished``); ``broker`` a
    :class:`harness.env.broker_view.BrokerView`; ``owed()`` what is still owed, judged as if every deadline had
    passed (by default from ``recorder.records``; the engine reads its streamed history instead).
    """
    from sagaproof.harness.checks.checker import judge_as_if_due

    def still_owed() -> list[Any]:
        if owed is not None:
            return owed()
        return judge_as_if_due(list(recorder.records), spec.sagas, healed_at=healed_at)[1]

    hold = spec.quiescence.hold
    limit = convergence_limit(spec)
    t0 = time.monotonic()
    progress_at, ended = t0, len(tracker.finished)
    since: float | None = None
    since_t = 0.0
    why = ""
    next_judgement = 0.0
    while True:
        now = time.monotonic()
        wire_quiet = now - tracker.last_message_at >= quiet
        if wire_quiet:
            quiescent, why = broker.quiescence(quiet)
        else:
            quiescent, why = False, "messages are still being recorded"
        if wire_quiet and tracker.pending == 0 and now >= next_judgement:
            now_owed = still_owed()
            next_judgement = now + 0.5
            if not now_owed and quiescent:  # nothing owed, and every delivery is acknowledged: consumption is final
                return Convergence("settled", round(now - t0, 3), quiescent_at=round(recorder.now(), 6))
        if quiescent:
            if since is None:
                since, since_t = now, recorder.now()
            elif now - since >= hold:
                return Convergence("quiescent", round(now - t0, 3), quiescent_at=round(since_t, 6),
                                   owed=len(still_owed()))
        else:
            since = None
        if len(tracker.finished) != ended:  # sagas still reach their outcomes: late, not stuck; keep waiting
            progress_at, ended = now, len(tracker.finished)
        if now - progress_at >= limit or now - t0 >= 10 * limit:
            return Convergence("timeout", round(now - t0, 3), owed=len(still_owed()),
                               reason=f"{why}; no saga ended for {now - progress_at:.1f}s")
        time.sleep(0.1)


class OpenSagas:
    """Sagas whose start event was recorded and whose terminal event was not, newest last; feed it records."""

    def __init__(self, spec: SystemSpec) -> None:
        self._starts: dict[str, tuple[str, Any]] = {}
        self._ends: dict[str, tuple[str, Any]] = {}
        for name, saga in spec.sagas.items():
            self._starts[saga.start] = (name, saga)
            for t in (*saga.success, *saga.abort):
                self._ends[t] = (name, saga)
        self.max_age = 2 * max((s.deadline for s in spec.sagas.values()), default=10.0)
        self._open: dict[tuple[str, Any], float] = {}  # insertion-ordered: oldest first
        self._ended: set[tuple[str, Any]] = set()
        self.started = 0
        self._lock = threading.Lock()

    def on_message(self, record: dict[str, Any]) -> None:
        data = record.get("data")
        if not isinstance(data, dict):
            return
        subject = record.get("subject")
        with self._lock:
            if subject in self._starts:
                name, saga = self._starts[subject]
                ident = (name, saga.key_of(data))
                if ident not in self._open and ident not in self._ended:
                    self._open[ident] = time.monotonic()
                    self.started += 1
            if subject in self._ends:
                name, saga = self._ends[subject]
                ident = (name, saga.key_of(data))
                self._ended.add(ident)
                self._open.pop(ident, None)

    def count(self) -> int:
        """Open sagas, leaving out those older than twice their deadline (they are stuck or nearly so)."""
        cutoff = time.monotonic() - self.max_age
        with self._lock:
            while self._open:
                ident, t = next(iter(self._open.items()))
                if t >= cutoff:
                    break
                del self._open[ident]
            return len(self._open)


def open_count(sagas: OpenSagas, workload: Any) -> Callable[[], int]:
    """Open sagas as the workload sees them: recorded as open, plus those it started whose start event has not
    reached the wire yet (an HTTP entry point that accepted the order but has not published it)."""
    return lambda: sagas.count() + max(0, workload.result.started - sagas.started)
