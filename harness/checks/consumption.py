"""Checks over the broker's view: did every consumer take what its contract says it receives, and how?

Pure functions over a recorded history (``events.jsonl`` records: messages with their stream sequence, the
links' ``delivery``/``ack``/``nats_sub``/``js_consumer`` observations, ``advisory`` records and faults; see
:mod:`harness.env.broker_view`). Nothing here starts anything. Three checks, reported like the saga checks (what
was expected, what happened, the events with the faults active at each, the command that reproduces it):

``delivery guarantee``
    A service reads a subject that a stream captures through a plain core-NATS subscription: at most once,
    so whatever is published while it is away (killed, paused, cut off, reconnecting) is lost for it. A
    contract states that this is intended with ``x-sagaproof-delivery: at-most-once`` on the receive
    operation, which silences the finding (and the consumption check for that subject).
``consumption``
    Every message stored on a subject a service's contract says it receives is acknowledged by that service
    at least once by the end of the run (by quiescence).
``dead letters``
    Messages a consumer gave up on: terminated (``+TERM``) or dead-lettered (``max_deliver`` reached).

:func:`matrix` and :func:`coverage` summarise the same history for the report: per subject and consuming
service the messages, acks, redeliveries, terminations and faults seen; per stream whether any consumer
ever saw a redelivery (if none did, a non-idempotent consumer could not have been caught by the run).

Memory: what concerns the system as a whole (subscriptions, consumers, connections, advisories, faults, counts
per consumer) is kept while the history streams by; what concerns one stored message (the message, each
delivery of it, each answer to it) goes to the shard of its stream and sequence. Given a scratch directory (the
engine gives the report directory), a history of more than :data:`SHARD_MESSAGES` messages is judged one shard
at a time from a scratch file, so the checks' memory does not grow with the run; the report is the same.
"""

from __future__ import annotations

import gc
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sagaproof.chaos.observe import wire_rows
from sagaproof.harness.checks.spill import Spill

from sagaproof.subjects import matches, overlaps

BROKER_CHECKS: tuple[str, ...] = ("delivery guarantee", "consumption", "dead letters")
AT_MOST_ONCE = "at-most-once"
_SYSTEM_PREFIXES = ("_INBOX.", "$JS.", "$SYS.", "_R_.", "$KV.", "$O.")
MAX_DETAILS = 30
SHARD_MESSAGES = 5_000  # stored messages per shard of the broker checks on a long history (about 5 MB indexed)


@dataclass(frozen=True)
class Receive:
    """A service's contract says it receives `pattern` (with an optional stated delivery intent)."""

    service: str
    pattern: str
    intent: str | None = None


def receives_from_contracts(contract_set: Any) -> list[Receive]:
    """Every (service, subject pattern, intent) a contract set declares as received."""
    if contract_set is None:
        return []
    out = []
    for ch in contract_set.channels.values():
        for svc in ch.consumers:
            out.append(Receive(svc, ch.subject, getattr(ch, "delivery", {}).get(svc)))
    return out


@dataclass
class BrokerFinding:
    """One thing a broker check found, readable on its own (the saga checks' failure format)."""

    check: str
    service: str
    subject: str
    expected: str
    detail: str
    stream: str | None = None
    stream_seq: int | None = None
    saga: str | None = None
    key: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    faults_active: list[list[str]] = field(default_factory=list)
    faults: dict[str, dict[str, Any]] = field(default_factory=dict)
    fix: str = ""
    repro: str | None = None
    in_flight: bool = False  # consumption: it may still be taken while the system moves (not in to_dict)

    @property
    def title(self) -> str:
        where = f" {self.stream} sequence {self.stream_seq}" if self.stream_seq is not None else ""
        saga = f" (saga '{self.saga}' key {self.key})" if self.key is not None else ""
        return f"{self.check.capitalize()} violated: service '{self.service}', {self.subject}{where}{saga}"

    def _fault_label(self, fid: str) -> str:
        f = self.faults.get(fid) or {}
        target = f.get("target")
        return f"{fid} {f.get('kind', '?')}" + (f" {target}" if target else "")

    def message(self, repro: str | None = None) -> str:
        """The human text: what was expected, what happened, the events with their faults, the fix, the command."""
        lines = [self.title, f"  expected: {self.expected}", f"  but:      {self.detail}"]
        if self.events:
            lines.append(f"  events seen ({len(self.events)}):")
            width = max(len(str(e.get("service") or "?")) for e in self.events)
            for i, e in enumerate(self.events):
                fa = self.faults_active[i] if i < len(self.faults_active) else []
                faults = ("  faults: " + ", ".join(self._fault_label(f) for f in fa)) if fa else ""
                lines.append(f"     t={float(e.get('t', 0.0)):.3f}s  {str(e.get('service') or '?'):<{width}}  "
                             f"{e.get('what')}{faults}")
        if self.fix:
            lines.append(f"  fix:      {self.fix}")
        cmd = repro or self.repro
        if cmd:
            lines.append(f"  reproduce: {cmd}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.check, "service": self.service, "subject": self.subject, "title": self.title,
                "expected": self.expected, "detail": self.detail, "stream": self.stream,
                "stream_seq": self.stream_seq, "saga": self.saga, "key": self.key, "events": self.events,
                "faults_active": self.faults_active, "faults": self.faults, "fix": self.fix, "repro": self.repro,
                "message": self.message()}


@dataclass
class BrokerReport:
    """What the broker checks found, and the summaries the report shows."""

    findings: dict[str, list[BrokerFinding]] = field(default_factory=lambda: {c: [] for c in BROKER_CHECKS})
    summaries: dict[str, str] = field(default_factory=dict)
    matrix: list[dict[str, Any]] = field(default_factory=list)
    coverage: dict[str, Any] = field(default_factory=dict)
    services: dict[str, dict[str, Any]] = field(default_factory=dict)
    not_taken: dict[tuple[str, str], str] = field(default_factory=dict)  # (service, pattern) -> "none" | "some"
    # check -> ("not judged" | "not applicable", why) for a check that judged nothing (passed otherwise)
    unjudged: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """No finding, and no check that applied had nothing to judge."""
        return not any(self.findings.values()) and not any(st == "not judged" for st, _ in self.unjudged.values())

    def with_repro(self, command: str) -> BrokerReport:
        for group in self.findings.values():
            for f in group:
                if not f.repro:
                    f.repro = command
        return self

    def outcomes(self) -> list[Any]:
        """One :class:`harness.checks.results.CheckOutcome` per broker check, in ``BROKER_CHECKS`` order."""
        from sagaproof.harness.checks.results import CheckOutcome

        out = []
        for name in BROKER_CHECKS:
            found = self.findings[name]
            if not found and name in self.unjudged:
                status, why = self.unjudged[name]
                out.append(CheckOutcome.not_judged(name, why) if status == "not judged"
                           else CheckOutcome.not_applicable(name, why))
                continue
            details = [f.message() for f in found[:MAX_DETAILS]]
            if len(found) > MAX_DETAILS:
                details.append(f"... and {len(found) - MAX_DETAILS} more (see report.json)")
            out.append(CheckOutcome(name, not found, self.summaries.get(name, ""), details))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "summaries": self.summaries,
                "findings": {k: [f.to_dict() for f in v[:500]] for k, v in self.findings.items()},
                "counts": {k: len(v) for k, v in self.findings.items()}, "matrix": self.matrix,
                "coverage": self.coverage, "services": self.services,
                "not_taken": [{"service": s, "subject": p, "how": h} for (s, p), h in self.not_taken.items()]}


class _Rec:
    """A compact record the checks index by the hundred thousand: slots, not a dict, read like one."""

    __slots__: tuple[str, ...] = ()

    def __getitem__(self, name: str) -> Any:
        return getattr(self, name)

    def get(self, name: str, default: Any = None) -> Any:
        return getattr(self, name, default)


class _Stored(_Rec):
    __slots__ = ("t", "subject", "producer", "saga", "key", "faults")

    def __init__(self, t: float, subject: Any, producer: Any, saga: str | None, key: str | None,
                 faults: tuple[str, ...]) -> None:
        self.t, self.subject, self.producer, self.saga, self.key, self.faults = t, subject, producer, saga, key, faults


class _Delivery(_Rec):
    __slots__ = ("t", "service", "conn", "subject", "sid", "stream", "consumer", "delivered", "stream_seq",
                 "consumer_seq", "pending", "faults")

    def __init__(self, t: float, service: str, conn: Any, subject: Any, sid: Any, stream: str, consumer: str,
                 delivered: Any, stream_seq: int, consumer_seq: Any, pending: Any, faults: tuple[str, ...]) -> None:
        self.t, self.service, self.conn, self.subject, self.sid = t, service, conn, subject, sid
        self.stream, self.consumer, self.delivered, self.stream_seq = stream, consumer, delivered, stream_seq
        self.consumer_seq, self.pending, self.faults = consumer_seq, pending, faults


class _Answer(_Rec):
    __slots__ = ("t", "service", "conn", "how", "stream", "consumer", "delivered", "stream_seq", "reason", "faults")

    def __init__(self, t: float, service: str, conn: Any, how: str, stream: str, consumer: str, delivered: Any,
                 stream_seq: int, reason: Any, faults: tuple[str, ...]) -> None:
        self.t, self.service, self.conn, self.how, self.stream = t, service, conn, how, stream
        self.consumer, self.delivered, self.stream_seq, self.faults = consumer, delivered, stream_seq, faults
        self.reason = reason or None


class _Shard:
    """The stored messages of one shard (by stream and sequence), with their deliveries and answers."""

    __slots__ = ("stored", "deliveries", "answers")

    def __init__(self) -> None:
        self.stored: dict[tuple[str, int], _Stored] = {}
        self.deliveries: dict[tuple[str, str, int], list[_Delivery]] = defaultdict(list)
        self.answers: dict[tuple[str, str, int], list[_Answer]] = defaultdict(list)

    def add(self, row: tuple[Any, ...]) -> None:
        """One row of :meth:`_History.__init__`: ``(0, stream, seq, t, subject, producer, saga, key, faults)``,
        ``(1, stream, seq, service, t, conn, subject, sid, consumer, delivered, consumer_seq, pending, faults)``
        or ``(2, stream, seq, service, t, conn, how, consumer, delivered, reason, faults)``."""
        kind = row[0]
        if kind == 0:
            _, stream, seq, t, subject, producer, saga, key, faults = row
            self.stored[(stream, seq)] = _Stored(t, subject, producer, saga, key, faults)
        elif kind == 1:
            _, stream, seq, svc, t, conn, subject, sid, consumer, delivered, cseq, pending, faults = row
            self.deliveries[(svc, stream, seq)].append(_Delivery(
                t, svc, conn, subject, sid, stream, consumer, delivered, seq, cseq, pending, faults))
        else:
            _, stream, seq, svc, t, conn, how, consumer, delivered, reason, faults = row
            self.answers[(svc, stream, seq)].append(_Answer(
                t, svc, conn, how, stream, consumer, delivered, seq, reason, faults))


class _History:
    """One pass over the records: what the checks and summaries need, indexed compactly.

    The history itself is streamed, never held. What concerns the system as a whole (subscriptions, consumers,
    connections, advisories, faults, per consumer counts) is kept in memory: it grows with the system, not with
    the run. What concerns one stored message (the message, each delivery of it, each answer to it) is a row
    that goes to the shard of its stream and sequence: with a scratch directory and more than one shard, to a
    :class:`~harness.checks.spill.Spill` on disk, and each shard is then indexed on its own (:meth:`shards`), so
    the checks hold one shard's messages at a time; otherwise to one shard in memory.
    """

    def __init__(self, records: Iterable[dict[str, Any]], sagas: Mapping[str, Any], *, shards: int = 1,
                 scratch: str | Path | None = None) -> None:
        saga_of: dict[str, list[tuple[str, Any]]] = defaultdict(list)
        self._saga_of = saga_of
        for name, spec in sagas.items():
            subjects = {spec.start, *spec.success, *spec.abort}
            for st in spec.steps:
                subjects.update(s for s in (st.success, st.failure, st.compensation) if s)
            for s in subjects:
                saga_of[s].append((name, spec))
        self.core: dict[tuple[str, str], int] = defaultdict(int)
        self.subs: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.consumers: dict[str, dict[tuple[str, str], dict[str, Any]]] = defaultdict(dict)
        self.js_sids: set[tuple[str, int, str]] = set()  # (service, conn, sid) that carried JetStream deliveries
        self.connects: dict[str, int] = defaultdict(int)
        self.advisories: list[dict[str, Any]] = []
        self.queues: dict[str, dict[str, Any]] = {}  # work queues: read from publishes, sequences known at the end
        self.delivered_by: dict[tuple[str, Any], dict[str, None]] = {}  # (stream, consumer) -> services it delivered to
        self.reconnects_missed: list[dict[str, Any]] = []  # the targeted phase's outages a service never came back from
        self.snapshot: dict[str, Any] | None = None
        self.faults: dict[str, dict[str, Any]] = {}
        self.fault_windows: list[tuple[str, float, float | None]] = []
        self.consumer_service: dict[tuple[str, str], str] = {}  # which service each consumer delivers to
        self.acked_up_to: dict[tuple[str, str, str], int] = {}  # (service, stream, consumer) -> highest seq acked
        self.per_consumer: dict[str, dict[str, dict[str, int]]] = {}  # stream -> consumer -> deliveries, redeliveries
        self.streams_stored: set[str] = set()
        self.messages = 0
        active: dict[str, None] = {}
        snap: tuple[str, ...] = ()
        starts: dict[str, float] = {}
        if hasattr(records, "of"):  # a history file: the fault timeline reads only the fault records
            timeline = _FaultTimeline(records.of("fault_start", "fault_end"))
        else:
            if iter(records) is records:  # a one-shot iterator: the fault timeline needs a pass of its own
                records = list(records)
            timeline = _FaultTimeline(records)  # rows of wire records carry their own times
        names: dict[Any, Any] = {}
        self.shard_count = shards if scratch is not None and shards > 1 else 1
        self._spill: Spill | None = None
        self._one: _Shard | None = None
        if self.shard_count > 1:
            self._spill = Spill(self.shard_count, scratch)  # type: ignore[arg-type]
            spill_add = self._spill.add
            n_shards = self.shard_count

            def put(row: tuple[Any, ...]) -> None:
                spill_add(hash((row[1], row[2])) % n_shards, row)
        else:
            self._one = _Shard()
            put = self._one.add
        consumer_service = self.consumer_service
        acked_up_to = self.acked_up_to
        per_consumer = self.per_consumer
        streams_stored = self.streams_stored

        def _n(x: Any) -> Any:  # one object per distinct service, stream, consumer and subject name
            return names.setdefault(x, x)

        delivered_by = self.delivered_by

        def delivered(svc: str, stream: str, consumer: Any, n: Any) -> None:
            consumer_service.setdefault((stream, consumer), svc)
            users = delivered_by.get((stream, consumer))
            if users is None:
                users = delivered_by[(stream, consumer)] = {}
            users[svc] = None
            c = per_consumer.setdefault(stream, {}).get(consumer)
            if c is None:
                c = per_consumer[stream][consumer] = {"deliveries": 0, "redeliveries": 0}
            c["deliveries"] += 1
            if int(n) > 1:
                c["redeliveries"] += 1

        def answered(svc: str, stream: str, consumer: Any, how: Any, seq: int) -> None:
            if how in ("ack", "next"):
                k = (svc, stream, consumer)
                if seq > acked_up_to.get(k, 0):
                    acked_up_to[k] = seq

        try:
            for rec in records:
                kind = rec.get("kind")
                t = float(rec.get("t") or 0.0)
                if kind == "message":
                    stream, seq = rec.get("stream"), rec.get("stream_seq")
                    if stream is None or seq is None:
                        continue
                    raw = rec.get("data")
                    data: dict[str, Any] = raw if isinstance(raw, dict) else {}
                    saga = key = None
                    for saga_name, saga_spec in saga_of.get(rec.get("subject") or "", ()):
                        value = saga_spec.key_of(data) if hasattr(saga_spec, "key_of") else data.get(saga_spec.key)
                        if value is not None:
                            saga, key = saga_name, str(value)
                            break
                    stream = _n(stream)
                    self.messages += 1
                    streams_stored.add(stream)
                    put((0, stream, int(seq), t, _n(rec.get("subject")), _n(rec.get("producer")), saga, key, snap))
                elif kind == "delivery":
                    svc, stream, seq = _n(rec["service"]), _n(rec["stream"]), int(rec["stream_seq"])
                    consumer = _n(rec.get("consumer"))
                    put((1, stream, seq, svc, t, rec.get("conn", 0), _n(rec.get("subject")), rec.get("sid"),
                         consumer, rec.get("delivered"), rec.get("consumer_seq"), rec.get("pending"), snap))
                    delivered(svc, stream, consumer, rec.get("delivered"))
                    self.js_sids.add((svc, rec.get("conn", 0), str(rec.get("sid"))))
                elif kind == "ack":
                    svc, stream, seq = _n(rec["service"]), _n(rec["stream"]), int(rec["stream_seq"])
                    consumer, how = _n(rec.get("consumer")), _n(rec.get("how"))
                    put((2, stream, seq, svc, t, rec.get("conn", 0), how, consumer, rec.get("delivered"),
                         rec.get("reason"), snap))
                    answered(svc, stream, consumer, how, seq)
                elif kind == "wire":
                    svc = _n(rec["service"])
                    d_rows, a_rows = wire_rows(rec.get("deliveries"), rec.get("answers"))
                    for wt, conn, subject, sid, stream, consumer, n, seq, cseq, pending in d_rows:
                        stream, seq, consumer = _n(stream), int(seq), _n(consumer)
                        put((1, stream, seq, svc, wt, conn, _n(subject), sid, consumer, n, cseq, pending,
                             timeline.at(wt)))
                        delivered(svc, stream, consumer, n)
                        self.js_sids.add((svc, conn, str(sid)))
                    for wt, conn, how, stream, consumer, n, seq, reason in a_rows:
                        stream, seq, consumer, how = _n(stream), int(seq), _n(consumer), _n(how)
                        put((2, stream, seq, svc, wt, conn, how, consumer, n, reason, timeline.at(wt)))
                        answered(svc, stream, consumer, how, seq)
                elif kind == "nats_sub":
                    self.subs[rec["service"]].append(rec)
                elif kind == "js_consumer":
                    if rec.get("stream") and rec.get("consumer"):
                        self.consumers[rec["service"]][(rec["stream"], rec["consumer"])] = rec
                elif kind == "nats_connect":
                    self.connects[rec["service"]] += 1
                elif kind == "reconnect_missed":
                    self.reconnects_missed.append(rec)
                elif kind == "advisory":
                    self.advisories.append({**rec, "faults": snap})
                elif kind == "stream_state" and rec.get("retention") == "workqueue":
                    self.queues[str(rec["stream"])] = rec
                elif kind == "broker_snapshot":
                    self.snapshot = rec
                    self.core = defaultdict(int)  # messages that reached each service on core subscriptions
                    for svc, link in (rec.get("links") or {}).items():
                        for subject, n in ((link or {}).get("core") or {}).items():
                            self.core[(svc, subject)] += int(n)
                elif kind == "fault_start":
                    f = rec.get("fault") or {}
                    fid = str(f.get("id"))
                    self.faults[fid] = f
                    active[fid] = None
                    snap = tuple(active)
                    starts[fid] = t
                elif kind == "fault_end":
                    fid = str(rec.get("fault_id"))
                    active.pop(fid, None)
                    snap = tuple(active)
                    if fid in starts:
                        self.fault_windows.append((fid, starts.pop(fid), t))
        except BaseException:
            self.close()
            raise
        self.fault_windows += [(fid, t0, None) for fid, t0 in starts.items()]
        for svc, cons in self.consumers.items():
            for k in cons:
                self.consumer_service.setdefault(k, svc)

    def shards(self) -> Iterator[_Shard]:
        """Each shard of stored messages, indexed, one at a time (with the messages of work queues)."""
        if self._one is not None:
            if self.queues:
                self._queue_messages(self._one, None)
            yield self._one
            return
        assert self._spill is not None
        for i in range(self.shard_count):
            shard = _Shard()
            for row in self._spill.shard(i):
                shard.add(row)
            if self.queues:
                self._queue_messages(shard, i)
            yield shard

    def _queue_messages(self, shard: _Shard, index: int | None) -> None:
        """The messages a work queue stored, by sequence: the recorder reads a work queue from its publishes (a
        consumer of its own would take messages from the services), so each sequence's subject is known from a
        delivery of it to a service, or from the queue's leftovers at the end (never acknowledged). `index`: the
        shard's, whose leftovers these are (None: the only shard)."""
        saga_of = self._saga_of
        first: dict[tuple[str, int], _Delivery] = {}
        for (_svc, stream, seq), ds in shard.deliveries.items():
            if stream in self.queues:
                for one in ds:
                    if (stream, seq) not in first or one.t < first[(stream, seq)].t:
                        first[(stream, seq)] = one
        for stream, q in self.queues.items():
            left = {int(x["seq"]): x for x in q.get("leftovers") or []
                    if index is None or hash((stream, int(x["seq"]))) % self.shard_count == index}
            lo, hi = int(q.get("first_seq") or 1), int(q.get("last_seq") or 0)
            seqs = sorted({seq for (st, seq) in first if st == stream} | set(left))
            for seq in seqs:
                if not lo <= seq <= hi or (stream, seq) in shard.stored:
                    continue
                d = first.get((stream, seq))
                x = left.get(seq)
                subject = str(d.subject if d is not None and d.subject else x["subject"] if x else "?")
                data = (x or {}).get("data")
                saga = key = None
                for saga_name, saga_spec in saga_of.get(subject, ()):
                    value = saga_spec.key_of(data) if isinstance(data, dict) and hasattr(saga_spec, "key_of") else None
                    if value is not None:
                        saga, key = saga_name, str(value)
                        break
                shard.stored[(stream, seq)] = _Stored(d.t if d is not None else float(q.get("t") or 0.0), subject,
                                                      None, saga, key, d.faults if d is not None else ())

    def close(self) -> None:
        """Remove the scratch file of the shards, if any."""
        if self._spill is not None:
            self._spill.close()

    def ack_policy(self, service: str, stream: str, consumer: str) -> str:
        """The consumer's ack policy as the service created it (explicit when it was created elsewhere)."""
        cfg = self.consumers.get(service, {}).get((stream, consumer))
        return str((cfg or {}).get("ack_policy") or "explicit")


class _FaultTimeline:
    """The faults active at any time of a history (for observations recorded in batches)."""

    def __init__(self, records: Iterable[dict[str, Any]]) -> None:
        self.times: list[float] = []
        self.sets: list[tuple[str, ...]] = []
        active: dict[str, None] = {}
        changes = sorted(((float(r.get("t") or 0.0), r.get("seq") or 0, r) for r in records
                          if r.get("kind") in ("fault_start", "fault_end")), key=lambda x: (x[0], x[1]))
        for t, _, r in changes:
            if r["kind"] == "fault_start":
                active[str((r.get("fault") or {}).get("id"))] = None
            else:
                active.pop(str(r.get("fault_id")), None)
            self.times.append(t)
            self.sets.append(tuple(active))

    def at(self, t: float) -> tuple[str, ...]:
        from bisect import bisect_right

        i = bisect_right(self.times, t) - 1
        return self.sets[i] if i >= 0 else ()


def _used_faults(h: _History, snaps: Iterable[tuple[str, ...]]) -> dict[str, dict[str, Any]]:
    used: dict[str, dict[str, Any]] = {}
    for snap in snaps:
        for fid in snap:
            used.setdefault(fid, h.faults.get(fid, {"id": fid}))
    return used


def consumer_groups(h: _History, services: Iterable[str], groups: Mapping[str, str] | None = None
                    ) -> dict[str, list[str]]:
    """The consuming units of a run, label -> member services: the replicas of one service (``groups``: process ->
    service), and services that share one durable consumer (each message goes to one of them, so they consume it
    together, as replicas do). Every other service is a unit of its own."""
    parent: dict[str, str] = {s: s for s in services}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: str, b: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    first: dict[Any, str] = {}
    for proc, group in (groups or {}).items():
        union(first.setdefault(("group", group), proc), proc)
    for (stream, consumer), users in h.delivered_by.items():
        for svc in users:
            union(first.setdefault(("consumer", stream, consumer), svc), svc)
    for svc, cons in h.consumers.items():
        for stream, consumer in cons:
            if (cons[(stream, consumer)] or {}).get("durable") or (cons[(stream, consumer)] or {}).get("durable_name"):
                union(first.setdefault(("consumer", stream, consumer), svc), svc)
    members: dict[str, list[str]] = defaultdict(list)
    for svc in list(parent):
        members[find(svc)].append(svc)
    out: dict[str, list[str]] = {}
    for svcs in members.values():
        svcs.sort()
        named = {(groups or {}).get(s) for s in svcs}
        label = next(iter(named)) if len(named) == 1 and None not in named else "+".join(svcs)
        out[str(label)] = svcs
    return out


def check_broker(records: Iterable[dict[str, Any]], *, receives: list[Receive], streams: Mapping[str, list[str]],
                 services: Iterable[str], sagas: Mapping[str, Any] | None = None, final: bool = True,
                 observing: Iterable[str] | None = None, nothing_sent: bool = False,
                 groups: Mapping[str, str] | None = None, scratch: str | Path | None = None,
                 messages: int = 0) -> BrokerReport:
    """Run the three broker checks and build the report's summaries.

    Args:
        records: the history (any order of kinds; time order within each kind).
        receives: what each service's contract says it receives (:func:`receives_from_contracts`).
        streams: stream name -> its subject patterns (what JetStream stores).
        services: the services that ran through observed links (others are not judged).
        sagas: the system's sagas, to name the saga and key of each message.
        final: the history ends with the system quiescent (every delivery answered). When it does not (the
            run gave up waiting), a message a consumer can still take or acknowledge is *pending*, not a
            violation; one no consumer of the service takes, or that was terminated or dead-lettered, still is.
        observing: the services whose NATS connection went through an observed link (None: all of
            ``services``). None of them: the checks do not apply (attach mode without links, TLS).
        nothing_sent: nobody sent traffic on purpose (a pytest session whose tests sent none): a check with
            nothing to judge is then not applicable rather than not judged.
        groups: process -> the service it is a replica of (a contract names the service; its replicas consume
            for it, and a message acknowledged by one of them is consumed).
        scratch: a directory for the shards of a long history (the engine gives the report directory); with
            it, a history of more than :data:`SHARD_MESSAGES` ``messages`` is judged a shard of stored
            messages at a time, and memory does not grow with the run. The report is the same either way.
        messages: how many messages the history holds (the recorder's count), to size the shards.

    A check that judged nothing says so (:attr:`BrokerReport.unjudged`): not applicable when it cannot apply
    (no observed link, no stream, no contract says what anyone receives), not judged otherwise.
    """
    # The pass allocates many small objects and creates no reference cycles; pausing the cyclic collector keeps
    # it from rescanning an ever larger heap (as the saga checker does).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _check_broker(records, receives, streams, services, sagas, final, scratch, messages, observing,
                             nothing_sent, groups)
    finally:
        if gc_was_enabled:
            gc.enable()


def _check_broker(records: Iterable[dict[str, Any]], receives: list[Receive], streams: Mapping[str, list[str]],
                  services: Iterable[str], sagas: Mapping[str, Any] | None, final: bool,
                  scratch: str | Path | None, messages: int, observing: Iterable[str] | None,
                  nothing_sent: bool, groups: Mapping[str, str] | None) -> BrokerReport:
    shards = max(1, -(-messages // SHARD_MESSAGES)) if scratch is not None else 1
    h = _History(records, sagas or {}, shards=shards, scratch=scratch)
    try:
        services = list(services)
        if groups:
            by_group: dict[str, list[str]] = defaultdict(list)
            for proc, group in groups.items():
                by_group[group].append(proc)
            receives = [Receive(m, r.pattern, r.intent) for r in receives for m in by_group.get(r.service, [r.service])]
        report = BrokerReport()
        observed = {s for s in services if h.connects.get(s)}
        stream_patterns = [(name, p) for name, ps in streams.items() for p in ps]
        consumption = _Consumption(h, receives, observed, stream_patterns, final, consumer_groups(h, services, groups))
        dead = _DeadLetters(h)
        rows = _Matrix(receives, observed)
        stored_on: dict[str, int] = defaultdict(int)  # subject -> stored messages
        for shard in h.shards():
            for msg in shard.stored.values():
                stored_on[str(msg.subject)] += 1
            consumption.judge(shard)
            dead.collect(shard)
            rows.count(shard)
        _delivery_guarantee(h, report, receives, stream_patterns, observed, stored_on)
        consumption.report(report)
        dead.report(report)
        report.matrix = rows.rows(h)
        report.coverage = coverage(h, streams)
        report.services = _per_service(h, services)
        _unjudged(h, report, receives, stream_patterns, services if observing is None else list(observing),
                  observed, nothing_sent)
        return report
    finally:
        h.close()


def _unjudged(h: _History, report: BrokerReport, receives: list[Receive], stream_patterns: list[tuple[str, str]],
              observing: list[str], observed: set[str], nothing_sent: bool) -> None:
    """Which broker checks had nothing to judge, and why (see :func:`check_broker`)."""
    nothing = "not applicable" if nothing_sent else "not judged"
    if not observing:
        why = ("no service's NATS connection went through an observed link in this run (attach mode without "
               "links, or TLS), so no subscription, delivery or acknowledgement could be seen")
        report.unjudged = {name: ("not applicable", why) for name in BROKER_CHECKS}
        return
    if not observed:
        why = (f"none of the observed services ({', '.join(sorted(observing))}) was seen connecting to NATS "
               f"through its link, so no subscription, delivery or acknowledgement could be judged")
        report.unjudged = {name: (nothing, why) for name in BROKER_CHECKS}
        return
    if not stream_patterns:
        why = ("no JetStream stream stores any subject (core NATS only), so there is no stored message, "
               "acknowledgement or redelivery to judge")
        report.unjudged = {name: ("not applicable", why) for name in BROKER_CHECKS}
        return
    if not any(h.subs.get(s) or h.consumers.get(s) for s in observed):
        report.unjudged["delivery guarantee"] = (
            nothing, f"no observed service ({', '.join(sorted(observed))}) subscribed to anything or created a "
                     f"consumer, so how they read the stored subjects could not be judged")
    if report.summaries.get("consumption", "").startswith("no stored message"):
        if not any(r.service in observed and r.intent != AT_MOST_ONCE for r in receives):
            report.unjudged["consumption"] = (
                "not applicable", "no contract says an observed service receives a subject at least once (none "
                                  "declares a receive operation, or each is declared at-most-once), so no message "
                                  "is owed an acknowledgement")
        else:
            report.unjudged["consumption"] = (
                nothing, "no stored message was on a subject an observed service's contract receives, so no "
                         "message was owed to anyone")


def _intends_at_most_once(receives: list[Receive], service: str, pattern: str) -> bool:
    return any(r.service == service and r.intent == AT_MOST_ONCE and overlaps(r.pattern, pattern) for r in receives)


def _delivery_guarantee(h: _History, report: BrokerReport, receives: list[Receive],
                        stream_patterns: list[tuple[str, str]], observed: set[str],
                        stored_on: Mapping[str, int]) -> None:
    found = report.findings["delivery guarantee"]
    for service in sorted(observed):
        deliver_subjects = {str(c.get("deliver_subject")) for c in h.consumers.get(service, {}).values()
                            if c.get("deliver_subject")}
        seen: set[str] = set()
        for sub in h.subs.get(service, []):
            subject = str(sub.get("subject") or "")
            if (not subject or subject.startswith(_SYSTEM_PREFIXES) or subject in seen
                    or subject in deliver_subjects
                    or (service, sub.get("conn", 0), str(sub.get("sid"))) in h.js_sids):
                continue
            captured = [(name, p) for name, p in stream_patterns if overlaps(p, subject)]
            if not captured:
                continue
            seen.add(subject)
            if _intends_at_most_once(receives, service, subject):
                continue
            stored = sum(n for subj, n in stored_on.items() if matches(subject, subj))
            got = sum(n for (svc, subj), n in h.core.items() if svc == service and matches(subject, subj))
            streams_txt = ", ".join(sorted({name for name, _ in captured}))
            lost = max(0, stored - got)
            detail = (f"'{service}' reads {subject} through a core NATS subscription (SUB {subject}"
                      f"{' queue ' + str(sub['queue']) if sub.get('queue') else ''}): at most once. Stream "
                      f"{streams_txt} stores {stored} message(s) on it; {got} reached the service that way"
                      + (f", {lost} never did" if lost else "")
                      + ". Nothing acknowledges these messages and nothing redelivers what is published while "
                        "the service is away (killed, paused, cut off, reconnecting).")
            away = [(fid, a, b) for fid, a, b in h.fault_windows if (h.faults.get(fid) or {}).get("target") == service]
            events = [{"t": sub.get("t", 0.0), "service": service, "what": f"SUB {subject} (core, sid {sub.get('sid')})"}]
            actives: list[list[str]] = [[]]
            for fid, a, b in away[:20]:
                f = h.faults.get(fid) or {}
                events.append({"t": a, "service": service,
                               "what": f"fault {fid} {f.get('kind', '?')} until "
                                       f"{'the end' if b is None else f't={b:.3f}s'}: messages published meanwhile are lost for it"})
                actives.append([fid])
            found.append(BrokerFinding(
                check="delivery guarantee", service=service, subject=subject,
                expected=f"a subject stored in a stream ({streams_txt}) is read through a JetStream consumer with "
                         f"acknowledgements (at least once), unless the contract states at-most-once intent",
                detail=detail, events=events, faults_active=actives,
                faults=_used_faults(h, [tuple(a) for a in actives]),
                fix=(f"consume {subject} through a durable JetStream consumer (pull, or push with explicit ack) "
                     f"whose filter includes it, and ack each message after its effect is committed; if losing "
                     f"messages while '{service}' is away is intended, say so in its contract with "
                     f"x-sagaproof-delivery: at-most-once on the receive operation")))
    n = len(found)
    report.summaries["delivery guarantee"] = (
        "every stored subject is read through a JetStream consumer with acks" if not n else
        f"{n} stored subject(s) read through core subscriptions (at most once): "
        + ", ".join(sorted({f'{f.service} {f.subject}' for f in found})))


class _Consumption:
    """The consumption check, a shard of stored messages at a time (:meth:`judge`), then its summary
    (:meth:`report`): findings in the order of the messages' times, whichever shard they came from."""

    def __init__(self, h: _History, receives: list[Receive], observed: set[str],
                 stream_patterns: list[tuple[str, str]], final: bool,
                 units: Mapping[str, list[str]] | None = None) -> None:
        self.h = h
        self.observed = observed
        self.stream_patterns = stream_patterns
        self.final = final
        self.judged = 0
        self.pending = 0
        # (unit, pattern) -> [messages, missed, (t, stream, seq) of its first message]
        self.per_pair: dict[tuple[str, str], list[Any]] = {}
        self.found: list[tuple[tuple[float, str, int, int], BrokerFinding]] = []
        # A unit consumes together: the replicas of a service, or services sharing one durable consumer.
        unit_of = {m: label for label, ms in (units or {}).items() for m in ms}
        self.members: dict[str, list[str]] = {label: list(ms) for label, ms in (units or {}).items()}
        self.by_receiver: dict[str, list[Receive]] = defaultdict(list)
        for r in receives:
            if r.service in observed and r.intent != AT_MOST_ONCE:
                unit = unit_of.get(r.service, r.service)
                self.members.setdefault(unit, [r.service])
                self.by_receiver[unit].append(r)
        self.owed: dict[str, list[tuple[str, str]]] = {}  # subject -> [(unit, pattern)], computed once per subject

    def judge(self, shard: _Shard) -> None:
        h = self.h
        by_receiver = self.by_receiver
        per_pair = self.per_pair
        for (stream, seq), msg in shard.stored.items():
            subject = str(msg["subject"])
            pairs = self.owed.get(subject)
            if pairs is None:
                pairs = self.owed[subject] = [(unit, p) for unit, recs in by_receiver.items()
                                              for p in [next((r.pattern for r in recs if matches(r.pattern, subject)),
                                                             None)]
                                              if p is not None]
            at = (msg["t"], stream, seq)
            for j, (unit, pattern) in enumerate(pairs):
                self.judged += 1
                pair = per_pair.get((unit, pattern))
                if pair is None:
                    pair = per_pair[(unit, pattern)] = [0, 0, at]
                elif at < pair[2]:
                    pair[2] = at
                pair[0] += 1
                svcs = [m for m in self.members.get(unit, [unit]) if m in self.observed] or [unit]
                deliveries: list[_Delivery] = []
                answers: list[_Answer] = []
                taken = False
                for service in svcs:
                    key = (service, stream, seq)
                    ds = shard.deliveries.get(key, [])
                    ans = shard.answers.get(key, [])
                    deliveries += ds
                    answers += ans
                    # AckAll consumers: an ack of sequence n acks every earlier delivered one.
                    if (any(a["how"] in ("ack", "next") for a in ans)
                            or any(h.ack_policy(service, stream, d["consumer"]) == "none" for d in ds)
                            or any(h.ack_policy(service, stream, d["consumer"]) == "all"
                                   and h.acked_up_to.get((service, stream, d["consumer"]), 0) >= seq for d in ds)):
                        taken = True
                        break
                if taken:
                    continue
                deliveries.sort(key=lambda d: d["t"])
                answers.sort(key=lambda a: a["t"])
                finding = _unconsumed(h, unit, pattern, stream, seq, msg, deliveries, answers, self.stream_patterns,
                                      svcs)
                if not self.final and finding.in_flight:
                    self.pending += 1  # the run ended while the system still moved: it may yet be taken
                    continue
                pair[1] += 1
                self.found.append(((msg["t"], stream, seq, j), finding))

    def report(self, report: BrokerReport) -> None:
        found = report.findings["consumption"]
        self.found.sort(key=lambda x: x[0])
        found.extend(f for _, f in self.found)
        found.extend(_stopped_consuming(self.h, self.observed))
        judged, pending = self.judged, self.pending
        for (service, pattern), (total, missed, _) in sorted(self.per_pair.items(), key=lambda kv: kv[1][2]):
            if missed:
                report.not_taken[(service, pattern)] = "none" if missed == total else "some"
        still = f"; {pending} still in flight when the run stopped waiting" if pending else ""
        shared = sorted(f"{label} ({', '.join(ms)})" for label, ms in self.members.items()
                        if len(ms) > 1 and label in self.by_receiver)
        together = f"; consumed together: {'; '.join(shared)}" if shared else ""
        if not judged:
            report.summaries["consumption"] = "no stored message on a subject any observed service's contract receives"
        elif not found:
            report.summaries["consumption"] = (f"all {judged - pending} messages owed to their contract receivers "
                                               f"(message x receiver) were acknowledged{still}{together}")
        else:
            counts: dict[tuple[str, str], int] = defaultdict(int)
            for f in found:
                counts[(f.service, f.subject)] += 1
            report.summaries["consumption"] = (
                f"{len(found)} of {judged} messages owed to contract receivers were never acknowledged: "
                + ", ".join(f"{svc} {subj} x{n}" for (svc, subj), n in sorted(counts.items())) + still + together)


def _why_not_back(rec: dict[str, Any]) -> str:
    """The start of a stopped-consuming finding's detail: what the service was cut off by, and for how long."""
    if rec.get("cause") == "broker_restart":
        return (f"the broker was restarted at t={float(rec.get('cut_at') or 0):.3f}s (fault {rec.get('fault_id')}); "
                f"in the {float(rec.get('grace') or 0):g}s after it was back the service")
    return (f"its link was cut for {float(rec.get('outage') or 0):g}s at t={float(rec.get('cut_at') or 0):.3f}s "
            f"(fault {rec.get('fault_id')}); in the {float(rec.get('grace') or 0):g}s after the link was back it")


def _stopped_consuming(h: _History, observed: set[str]) -> list[BrokerFinding]:
    """A service the targeted phase cut off that opened no new connection once its link was back
    (``reconnect_missed`` records): it stopped consuming."""
    out = []
    for rec in h.reconnects_missed:
        service = str(rec.get("service"))
        if service not in observed:
            continue
        last = rec.get("last_read")
        out.append(BrokerFinding(
            check="consumption", service=service, subject=", ".join(rec.get("subjects") or []) or "(its input)",
            expected=f"after its link to NATS was back (t={float(rec.get('healed_at') or 0):.3f}s), the service "
                     f"connects again and goes on consuming",
            detail=_why_not_back(rec) + " opened no new connection, so it stopped consuming"
                   + (f"; it was last seen reading at t={float(last):.3f}s" if isinstance(last, int | float) else ""),
            fix="let the NATS client reconnect for as long as the service runs (nats-py: max_reconnect_attempts=-1) "
                "and make sure it subscribes again after a reconnect",
            faults={str(rec.get("fault_id")): {"kind": "nats_restart", "target": "nats"} if rec.get("cause") ==
                    "broker_restart" else {"kind": "partition", "target": service}}))
    return out


def _unconsumed(h: _History, service: str, pattern: str, stream: str, seq: int, msg: _Stored,
                deliveries: list[_Delivery], answers: list[_Answer],
                stream_patterns: list[tuple[str, str]], members: list[str] | None = None) -> BrokerFinding:
    """Why ``service`` (a service, or a unit of replicas ``members`` named so) never acknowledged a message."""
    members = members or [service]
    subject = str(msg["subject"])
    events = [{"t": msg["t"], "service": msg.get("producer") or "?",
               "what": f"published {subject} ({stream} sequence {seq})"}]
    actives = [list(msg["faults"])]
    timeline = [(d["t"], "d", d) for d in deliveries] + [(a["t"], "a", a) for a in answers]
    for t, what, rec in sorted(timeline, key=lambda x: (x[0], x[1])):
        who = str(rec.get("service") or service)  # the replica that took it, for a unit of several
        if what == "d":
            events.append({"t": t, "service": who, "what": f"delivered (delivery {rec['delivered']}) by consumer "
                                                           f"{rec['consumer']}"})
        else:
            reason = f" ({rec['reason']})" if rec.get("reason") else ""
            events.append({"t": t, "service": who, "what": f"answered {_ANSWER[rec['how']]}{reason}"})
        actives.append(list(rec["faults"]))
    consumers = {k: c for m in members for k, c in h.consumers.get(m, {}).items()}
    in_flight = False
    dead = [a for a in h.advisories if a.get("stream") == stream and a.get("stream_seq") == seq
            and a.get("type") in ("max_deliveries", "terminated")
            and h.consumer_service.get((stream, str(a.get("consumer")))) in members]
    if deliveries:
        n = max(int(d["delivered"]) for d in deliveries)
        last = answers[-1]["how"] if answers else None
        if last == "term" or any(a.get("type") == "terminated" for a in dead):
            why = f"'{service}' terminated it (+TERM) after {n} delivery(ies): it will never be delivered again"
        elif any(a.get("type") == "max_deliveries" for a in dead):
            why = f"it was dead-lettered: delivered {n} times (the consumer's max_deliver) and never acknowledged"
        else:
            in_flight = True
            why = (f"it was delivered {n} time(s) and never acknowledged"
                   + (f"; the last answer was {_ANSWER[last]}" if last else "; the service never answered"))
    else:
        core = [s for m in members for s in h.subs.get(m, []) if matches(str(s.get("subject")), subject)
                and (m, s.get("conn", 0), str(s.get("sid"))) not in h.js_sids]
        covering = [c for c in consumers.values() if c.get("stream") == stream and
                    (not c.get("filter_subjects") or any(matches(f, subject) for f in c["filter_subjects"]))]
        if covering:
            names = ", ".join(str(c["consumer"]) for c in covering)
            in_flight = True
            why = f"its consumer {names} takes {subject} but never delivered this message to '{service}'"
        elif core:
            why = (f"it was never delivered through a JetStream consumer: '{service}' reads {subject} through a "
                   f"core subscription, which acknowledges nothing (see delivery guarantee)")
        elif consumers:
            listing = "; ".join(f"{c['consumer']} on {c['stream']} filters {', '.join(c.get('filter_subjects') or ['>'])}"
                                for c in consumers.values())
            why = f"none of '{service}''s JetStream consumers takes {subject} ({listing})"
        else:
            why = f"'{service}' never received it: it created no JetStream consumer and holds no subscription to it"
    return BrokerFinding(
        check="consumption", service=service, subject=subject, stream=stream, stream_seq=seq,
        saga=msg.get("saga"), key=msg.get("key"),
        expected=f"'{service}' acknowledges every message on {pattern} at least once (its contract says it "
                 f"receives {pattern})",
        detail=why, events=events, faults_active=actives, faults=_used_faults(h, [tuple(a) for a in actives]),
        in_flight=in_flight)


_ANSWER = {"ack": "+ACK", "nak": "-NAK", "wpi": "+WPI (in progress)", "term": "+TERM", "next": "+NXT"}


class _DeadLetters:
    """Messages a consumer gave up on: the advisories (kept whole), and each +TERM seen on the wire without one
    (:meth:`collect`, a shard at a time), with the stored message of each (:meth:`report`)."""

    def __init__(self, h: _History) -> None:
        self.h = h
        self.seen: set[tuple[str, str, int]] = set()
        self.items: list[tuple[float, str, str, str, int, str, list[str]]] = []
        for a in h.advisories:
            if a.get("type") not in ("max_deliveries", "terminated") or a.get("stream_seq") is None:
                continue
            consumer, stream, seq = str(a.get("consumer")), str(a.get("stream")), int(a["stream_seq"])
            what = (f"dead-lettered after {a.get('deliveries')} deliveries (max_deliver reached)"
                    if a["type"] == "max_deliveries" else
                    f"terminated by the consumer (+TERM){' reason: ' + str(a['reason']) if a.get('reason') else ''}")
            self.seen.add((consumer, stream, seq))
            self.items.append((float(a.get("t") or 0.0), h.consumer_service.get((stream, consumer), "?"), consumer,
                               stream, seq, what, list(a["faults"])))
        self.wanted = {(stream, seq) for _, _, _, stream, seq, _, _ in self.items}
        self.stored: dict[tuple[str, int], _Stored] = {}

    def collect(self, shard: _Shard) -> None:
        for (svc, stream, seq), answers in shard.answers.items():  # +TERM seen on the wire (an advisory may be missing)
            for ans in answers:
                if ans.how == "term" and (ans.consumer, stream, seq) not in self.seen:
                    self.seen.add((ans.consumer, stream, seq))
                    self.wanted.add((stream, seq))
                    reason = f" reason: {ans.reason}" if ans.reason else ""
                    self.items.append((float(ans.t), svc, ans.consumer, stream, seq,
                                       f"terminated by the consumer (+TERM){reason}", list(ans.faults)))
        for k in self.wanted:
            msg = shard.stored.get(k)
            if msg is not None:
                self.stored[k] = msg

    def report(self, report: BrokerReport) -> None:
        h = self.h
        found = report.findings["dead letters"]
        for t, svc, consumer, stream, seq, what, faults in sorted(self.items):
            msg = self.stored.get((stream, seq))
            subject = str((msg.subject if msg is not None else None) or "?")
            events = []
            actives = []
            if msg is not None:
                events.append({"t": msg["t"], "service": msg.get("producer") or "?",
                               "what": f"published {subject} ({stream} sequence {seq})"})
                actives.append(list(msg["faults"]))
            events.append({"t": t, "service": svc, "what": f"consumer {consumer}: {what}"})
            actives.append(faults)
            found.append(BrokerFinding(
                check="dead letters", service=svc, subject=subject, stream=stream, stream_seq=seq,
                saga=msg.saga if msg is not None else None, key=msg.key if msg is not None else None,
                expected="no consumer gives up on a message (no +TERM, no max_deliver reached)",
                detail=f"consumer {consumer} of '{svc}' gave up on it: {what}", events=events, faults_active=actives,
                faults=_used_faults(h, [tuple(x) for x in actives])))
        report.summaries["dead letters"] = ("no message was terminated or dead-lettered" if not found else
                                            f"{len(found)} message(s) terminated or dead-lettered")


class _Matrix:
    """Rows per (subject, consuming service): stored messages, delivered, acked, redelivered, duplicated on the
    wire, naked, terminated, core deliveries, and how many distinct faults were active around them; counted a
    shard at a time (:meth:`count`)."""

    def __init__(self, receives: list[Receive], services: set[str]) -> None:
        self.receives = receives
        self.services = services
        self.table: dict[tuple[str, str], dict[str, Any]] = {}
        self.receivers: dict[str, set[str]] = {}  # subject -> services whose contract receives it

    def row(self, subject: str, service: str) -> dict[str, Any]:
        r = self.table.get((subject, service))
        if r is None:
            r = self.table[(subject, service)] = {"subject": subject, "service": service, "messages": 0,
                                                  "delivered": 0, "deliveries": 0, "acked": 0, "redelivered": 0,
                                                  "duplicated": 0, "naked": 0, "terminated": 0, "core": 0,
                                                  "faults": set(), "declared": False}
        return r

    def count(self, shard: _Shard) -> None:
        row = self.row
        receivers = self.receivers
        for msg in shard.stored.values():
            subject = str(msg.subject)
            svcs = receivers.get(subject)
            if svcs is None:
                svcs = receivers[subject] = {r.service for r in self.receives
                                             if r.service in self.services and matches(r.pattern, subject)}
            for svc in svcs:
                x = row(subject, svc)
                x["messages"] += 1
                x["declared"] = True
                x["faults"].update(msg.faults)
        answers_of = shard.answers
        for (svc, stream, seq), ds in shard.deliveries.items():
            stored = shard.stored.get((stream, seq))
            subject = str(ds[0].subject or (stored.subject if stored is not None else None) or "?")
            x = row(subject, svc)
            x["delivered"] += 1
            x["deliveries"] += len(ds)
            if len(ds) == 1:  # the bulk: one delivery
                d = ds[0]
                if int(d.delivered) > 1:
                    x["redelivered"] += 1
                x["faults"].update(d.faults)
            else:
                if any(int(d.delivered) > 1 for d in ds):
                    x["redelivered"] += 1
                ids = [(d.consumer, d.delivered) for d in ds]
                if len(ids) != len(set(ids)):
                    x["duplicated"] += 1
                for d in ds:
                    x["faults"].update(d.faults)
            answers = answers_of.get((svc, stream, seq))
            if answers:
                hows = {a.how for a in answers}
                if "ack" in hows or "next" in hows:
                    x["acked"] += 1
                if "nak" in hows:
                    x["naked"] += 1
                if "term" in hows:
                    x["terminated"] += 1

    def rows(self, h: _History) -> list[dict[str, Any]]:
        for (svc, subject), n in h.core.items():
            self.row(subject, svc)["core"] += n
        out = []
        for key in sorted(self.table):
            r = self.table[key]
            r["faults"] = len(r["faults"])
            out.append(r)
        return out


def coverage(h: _History, streams: Mapping[str, list[str]]) -> dict[str, Any]:
    """Per stream and consumer: deliveries and redeliveries; which streams' consumers never saw a redelivery."""
    per = h.per_consumer
    used = h.streams_stored | set(per)
    never = sorted(s for s in used if not any(c["redeliveries"] for c in per.get(s, {}).values()))
    notes = [f"no consumer of stream {s} ever saw a redelivery in this run: a consumer that is not idempotent "
             f"could not have been caught by it (add kill, cut or duplicate faults, or a longer run)" for s in never]
    return {"streams": {s: dict(c) for s, c in per.items()}, "never_redelivered": never, "notes": notes}


def _per_service(h: _History, services: list[str]) -> dict[str, dict[str, Any]]:
    """Per service: the subscriptions and consumers it made, its connections and reconnects."""
    links = ((h.snapshot or {}).get("links") or {}) if h.snapshot else {}
    out = {}
    for svc in services:
        subs = []
        seen = set()
        for s in h.subs.get(svc, []):
            subject = str(s.get("subject"))
            kind = "jetstream" if (svc, s.get("conn", 0), str(s.get("sid"))) in h.js_sids else (
                "inbox" if subject.startswith(_SYSTEM_PREFIXES) else "core")
            k = (subject, s.get("queue"), kind)
            if k not in seen:
                seen.add(k)
                subs.append({"subject": subject, "queue": s.get("queue"), "kind": kind})
        consumers = [{"stream": c["stream"], "consumer": c["consumer"], "durable": c.get("durable"),
                      "filter_subjects": c.get("filter_subjects"), "ack_policy": c.get("ack_policy"),
                      "ack_wait": c.get("ack_wait"), "max_deliver": c.get("max_deliver"),
                      "deliver_subject": c.get("deliver_subject")} for c in h.consumers.get(svc, {}).values()]
        connects = h.connects.get(svc, 0)
        out[svc] = {"subscriptions": subs, "consumers": consumers, "connections": connects,
                    "reconnects": max(0, connects - 1), "link": links.get(svc)}
    return out
