"""The saga checker: judge a recorded event history, one saga instance at a time.

The run loop records every message on the wire to ``events.jsonl`` (plus fault, phase and operation
records). After the system has had time to converge, :func:`check_history` reads that history once, groups
the messages of each saga instance by (saga, correlation key), and checks every instance against the saga's
model in the system file (see docs/checks.md for the precise definitions and the shapes each accepts):

``no_contradiction``
    exactly one kind of outcome; no non-retriable step that both succeeds and fails; at most one of a set
    of alternative steps; no success outcome while a required step failed.
``no_double_effect``
    a step's success seen twice for one key with no compensation between (a retriable step included);
    two start events for one key.
``step_order``
    a step succeeds only after what it declares it comes ``after``; the saga succeeds only after every
    required step succeeded.
``compensation_completeness``
    when the saga aborts, every step that succeeded and declares a compensation is compensated, exactly
    once, including a parallel branch that succeeded after the abort. A step without a compensation owes none.
``compensation_order``
    a compensation only after its step's success; with ``compensation_order = "reverse"`` (a cascade), a step
    is undone only after every step that came after it was undone.
``no_lost_request``
    the client's view: a start request of the workload that the system accepted (an ``operation`` record
    with outcome ``ok``) starts its saga on the wire by the deadline. Failed and unknown requests owe nothing.
``termination``
    exactly one terminal event. A saga with no outcome is *stuck* once its deadline has passed or once the
    system is quiescent (``quiescent_at``: nothing pending, unacknowledged or moving anywhere, so nothing
    more can come). A saga that ended later than ``deadline`` after the faults healed (or after it started,
    if later) is *late*: counted and reported, a violation only when the saga sets a ``latency_objective``
    and it ended later than that.

Identity of events: a message is a *wire duplicate* of an earlier one when it has the same subject and the
same event id (the saga's ``event_id`` field, by default ``event_id``; else the ``Nats-Msg-Id`` header; else
the same stream sequence). Wire duplicates are one fact delivered twice, not a second effect, so they are
counted (``duplicates_ignored``) and otherwise skipped.

The pass is linear in the history's size: one dictionary lookup per record and constant work per message.
The judgement of an instance depends, apart from a few times, only on the sequence of roles its events
play, and real histories repeat a handful of such sequences; each distinct sequence is analysed once and
the analysis reused, so finishing an instance costs a tuple and a dictionary lookup.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Final

from sagaproof.harness.checks.saga_model import _accessor, _dig, _Model
from sagaproof.harness.checks.saga_result import (
    CHECK_TITLES,
    CHECKS,
    EXPECTED,
    OWED_CHECKS,
    CheckResult,
    SagaViolation,
)
from sagaproof.harness.checks.saga_verdict import _FaultTimeline, _Verdict
from sagaproof.harness.checks.spill import BUFFERED, Spill
from sagaproof.harness.config import SagaSpec

__all__ = ["CHECKS", "CHECK_TITLES", "EXPECTED", "OWED_CHECKS", "CheckResult", "Keep", "SagaViolation", "check_history",
           "check_stream", "judge_as_if_due"]


# --------------------------------------------------------------------------- the pass


def check_history(records: Iterable[dict[str, Any]], sagas: Mapping[str, SagaSpec], *, healed_at: float,
                  end_at: float, quiescent_at: float | None = None) -> CheckResult:
    """Check every saga instance (and every accepted start request) in a recorded history.

    Args:
        records: the history (``events.jsonl`` records, in time order): messages, fault_start/fault_end,
            operation and phase records; other kinds are ignored.
        sagas: the system's sagas (``SystemSpec.sagas``).
        healed_at: seconds since run start when the last fault healed; the termination deadline counts from
            here (or from a saga's start, if later).
        end_at: seconds since run start when the history ends; a saga with no outcome is a termination
            violation only if its deadline is at or before ``end_at``, else it is *pending*.
        quiescent_at: when the system became quiescent (the broker's view: nothing left to deliver, to
            acknowledge or to publish), if it did; from then on a missing outcome or compensation is final.

    Returns:
        A :class:`CheckResult`; ``violations`` are ordered by check importance (see ``CHECKS``), then by the
        time of the instance's first event.

    Example:
        >>> from sagaproof.harness.config import SagaSpec, StepSpec
        >>> spec = SagaSpec("checkout", "order_id", "orders.created", ("orders.completed",), (),
        ...                 (StepSpec("charge", "payment", "payments.completed"),))
        >>> msg = lambda t, s: {"kind": "message", "t": t, "subject": s, "data": {"order_id": "o1"}}
        >>> r = check_history([msg(0.1, "orders.created"), msg(0.2, "payments.completed"),
        ...                    msg(0.3, "orders.completed")], {"checkout": spec}, healed_at=0.0, end_at=60.0)
        >>> (r.sagas_checked, r.ok, r.convergence)
        (1, True, {'o1': 0.2})
    """
    # The pass allocates small objects and creates no reference cycles; pausing the cyclic collector keeps it
    # from rescanning an ever larger heap.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _check(records, sagas, healed_at, end_at, quiescent_at)
    finally:
        if gc_was_enabled:
            gc.enable()


def judge_as_if_due(records: Iterable[dict[str, Any]], sagas: Mapping[str, SagaSpec], *,
                    healed_at: float) -> tuple[CheckResult, list[SagaViolation]]:
    """Check the history as if every deadline had already passed; also return what is still *owed*.

    The owed violations (a missing outcome, compensation or saga start) may yet be mended by messages still
    on their way; the others cannot. A caller that waits for convergence stops waiting once nothing is owed,
    and otherwise keeps waiting until the deadlines really pass.
    """
    records = list(records)
    last = max((float(r.get("completed") or r.get("t") or 0.0) for r in records), default=healed_at)
    due = max(last, healed_at) + max((s.deadline for s in sagas.values()), default=0.0)  # every deadline passed
    result = check_history(records, sagas, healed_at=healed_at, end_at=due)
    # A saga that ended after its latency objective is final (nothing more can change it): not owed.
    return result, [v for v in result.violations if v.check in OWED_CHECKS and not v.detail.startswith("late:")]


# A message as the checker keeps it, one per saga it belongs to: a flat tuple, cheap to build, to write to a shard
# file (marshal) and to read back. Its subject is the role set's (one subject per role set id); its identity
# for telling wire duplicates apart is ("e", str(event id)) when it has an event id, else _ALT: ("m", its
Target = tuple[int, str, Any, int, str, Any]  # saga index, key field, key path, role set id, event id field, path


def _compile(sagas: Mapping[str, SagaSpec]) -> tuple[list[_Model], dict[str, tuple[Target, ...]]]:
    models = [_Model(i, spec) for i, spec in enumerate(sagas.values())]
    index: dict[str, list[Target]] = {}
    for m in models:
        for subject, rid in m.subject_rid.items():
            index.setdefault(subject, []).append((m.index, m.key_field, m.key_path, rid, m.eid_field, m.eid_path))
    return models, {s: tuple(v) for s, v in index.items()}


def _alt_identity(rec: dict[str, Any]) -> Any:
    """A message's identity when it has no event id: its Nats-Msg-Id header, else its stream position."""
    headers = rec.get("headers")
    mid = headers.get("Nats-Msg-Id") if headers.__class__ is dict else None
    if mid:
        return ("m", mid)
    sseq = rec.get("stream_seq")
    return ("s", rec.get("stream"), sseq) if sseq is not None else None


def _check(records: Iterable[dict[str, Any]], sagas: Mapping[str, SagaSpec], healed_at: float,
           end_at: float, quiescent_at: float | None = None) -> CheckResult:
    return _Pass(sagas, healed_at, end_at, quiescent_at).run(records)


class _Pass:
    """One pass over a history: each message of a saga becomes a :data:`Row` (one per saga it belongs to),
    grouped by instance (saga, key), or first written to the shard of its key when the history is split; the
    fault records build the fault timeline; the start requests (``operation`` records) go with their key.
    Then each instance is judged (:class:`_Verdict`), shard after shard."""

    def __init__(self, sagas: Mapping[str, SagaSpec], healed_at: float, end_at: float,
                 quiescent_at: float | None) -> None:
        self.models, self.index = _compile(sagas)
        self.faults: dict[str, dict[str, Any]] = {}
        self.active: dict[str, None] = {}  # insertion-ordered set of active fault ids
        self.timeline = _FaultTimeline()
        self.verdict = _Verdict(self.models, healed_at, end_at, quiescent_at)

    def run(self, records: Iterable[dict[str, Any]], *, keep: Keep | None = None,
            spill: Any = None) -> CheckResult:
        """Judge `records`. `keep(saga, key)` (saga None for a message) picks the instances to judge, and
        messages it leaves out are not counted; with `spill` (a :class:`~harness.checks.spill.Spill`), rows and
        start requests go to the shard of their key and each shard is judged on its own."""
        models = self.models
        index_get = self.index.get
        instances: list[dict[str, list[Any]]] = [{} for _ in models]
        operations: list[dict[str, Any]] = []
        spilled = spill.buffers if spill is not None else None  # rows go to the shard of their key
        shards = spill.shards if spill is not None else 1
        buffered = 0
        kfield, kpath = self._window_key() if keep is not None else ("", None)
        seen = in_sagas = unattributed = 0
        alt_identity = _alt_identity
        other = self._other
        for rec in records:
            kind = rec.get("kind")
            if kind != "message":
                if kind in _OTHER_KINDS:
                    buffered += other(rec, kind, keep, operations, spilled, shards)
                continue
            data = rec.get("data")
            if keep is not None and not _in_window(data, kfield, kpath, keep):  # a window: the instances in it
                continue
            seen += 1
            targets = index_get(rec.get("subject"))  # type: ignore[arg-type]
            if targets is None:
                continue
            if data.__class__ is not dict:
                unattributed += len(targets)
                continue
            for si, kf, kp, rid, ef, ep in targets:
                key = data.get(kf)
                if key is None and kp is not None:  # the dotted path (_dig, inlined: once per message)
                    key = data
                    for part in kp:
                        if key.__class__ is not dict:
                            key = None
                            break
                        key = key.get(part)
                if key is None:
                    unattributed += 1
                    continue
                if key.__class__ is not str:
                    key = str(key)
                eid = data.get(ef)
                if eid is None and ep is not None:  # a dotted event id (rare; the key's path is inlined above)
                    eid = _dig(data, ep)
                row = (si, key, rid, rec.get("t"), rec.get("seq"), rec.get("producer"), eid,
                       None if eid is not None else alt_identity(rec))
                in_sagas += 1
                if spilled is not None:
                    spilled[hash(key) % shards].append(row)
                    buffered += 1
                    if buffered >= BUFFERED:
                        spill.flush()
                        buffered = 0
                    continue
                group = instances[si]
                inst = group.get(key)
                if inst is None:
                    group[key] = [rid, row]
                else:
                    inst.append(rid)
                    inst.append(row)
        if spill is None:
            self.verdict.judge(instances, operations, self.faults, self.timeline)
        else:
            self._judge_shards(spill)
        return self.verdict.close(seen, in_sagas, unattributed)

    def _window_key(self) -> tuple[str, tuple[str, ...] | None]:
        """The one correlation key of the sagas, for a window (`keep`)."""
        paths = {m.spec.key for m in self.models}
        if len(paths) != 1:
            raise ValueError("keep= needs sagas that share one correlation key")
        return _accessor(paths.pop())

    def _other(self, rec: dict[str, Any], kind: str, keep: Keep | None, operations: list[dict[str, Any]],
               spilled: list[list[Any]] | None, shards: int) -> int:
        """A record that is not a message: a fault's start or end (the fault timeline) or a start request (kept
        for its instance, or sent to the shard of its key); returns how many rows it added to the shards'
        buffers."""
        if kind == "fault_start":
            f = rec.get("fault") or {}
            fid = str(f.get("id"))
            self.faults[fid] = f
            self.active[fid] = None
            self.timeline.add(rec.get("t"), tuple(self.active))
        elif kind == "fault_end":
            self.active.pop(str(rec.get("fault_id")), None)
            self.timeline.add(rec.get("t"), tuple(self.active))
        else:  # operation
            if keep is not None or spilled is not None:
                k = rec.get("key")
                k = None if k is None else str(k)
                if keep is not None and not keep(rec.get("saga"), k):
                    return 0
                if spilled is not None:
                    spilled[0 if k is None else hash(k) % shards].append(rec)
                    return 1
            operations.append(rec)
        return 0

    def _judge_shards(self, spill: Any) -> None:
        """Group and judge each shard of the spill on its own, with the whole fault timeline."""
        models = self.models
        for i in range(spill.shards):
            instances: list[dict[str, list[Any]]] = [{} for _ in models]
            operations: list[dict[str, Any]] = []
            for row in spill.shard(i):
                if row.__class__ is dict:
                    operations.append(row)
                    continue
                group = instances[row[0]]
                key = row[1]
                inst = group.get(key)
                if inst is None:
                    group[key] = [row[2], row]
                else:
                    inst.append(row[2])
                    inst.append(row)
            self.verdict.judge(instances, operations, self.faults, self.timeline)


_OTHER_KINDS: Final = frozenset({"fault_start", "fault_end", "operation"})


def _in_window(data: Any, kfield: str, kpath: tuple[str, ...] | None, keep: Keep) -> bool:
    """Is this message's instance in the window? (`keep` with saga None for a message.)"""
    k = data.get(kfield) if data.__class__ is dict else None
    if k is None and kpath is not None:
        k = _dig(data, kpath)
    return keep(None, None if k is None or k.__class__ in (dict, list) else str(k))


Keep = Callable[[str | None, str | None], bool]  # (saga of an operation or None for a message, key) -> judge it?


def check_stream(records: Iterable[dict[str, Any]], sagas: Mapping[str, SagaSpec], *, healed_at: float,
                 end_at: float, quiescent_at: float | None = None, keep: Keep | None = None, shards: int = 1,
                 scratch: str | Path | None = None) -> CheckResult:
    """:func:`check_history` on the engine's path: `records` streamed once (a :class:`~harness.history.
    HistoryReader`: each line parsed once), with at most about 1/`shards` of the history's messages held at
    once.

    Of each message the checker keeps a small tuple (:data:`Row`: key, role, time, sequence, producer,
    identity). With ``shards > 1`` and a `scratch` directory, those tuples (and the start requests) go to the
    shard of their key in one scratch file (:class:`~harness.checks.spill.Spill`, marshal); then each shard is
    grouped and judged on its own, with the whole fault timeline. An instance's messages all land in one shard,
    in their order, so the verdict is the one a single pass over the whole history gives (the same
    :class:`CheckResult`, instance for instance). `keep` (saga None for a message, key) picks the instances to
    judge (a window); the sagas must then share their correlation key.
    """
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        p = _Pass(sagas, healed_at, end_at, quiescent_at)
        if shards <= 1 or scratch is None:
            return p.run(records, keep=keep)
        with Spill(shards, scratch) as spill:
            return p.run(records, keep=keep, spill=spill)
    finally:
        if gc_was_enabled:
            gc.enable()
