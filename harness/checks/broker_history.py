"""The broker checks' one pass over a history (see :mod:`harness.checks.consumption`): what the checks and the
report's summaries need, indexed compactly, with the stored messages (and each delivery of and answer to them) in
shards by stream and sequence, on disk when the history is long."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from sagaproof.chaos.observe import wire_rows
from sagaproof.harness.checks.spill import Spill

_SYSTEM_PREFIXES = ("_INBOX.", "$JS.", "$SYS.", "_R_.", "$KV.", "$O.")  # subjects of the broker, not of services


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


def _saga_subjects(sagas: Mapping[str, Any]) -> dict[str, list[tuple[str, Any]]]:
    """Subject -> the (name, spec) of every saga it belongs to."""
    saga_of: dict[str, list[tuple[str, Any]]] = defaultdict(list)
    for name, spec in sagas.items():
        subjects = {spec.start, *spec.success, *spec.abort}
        for st in spec.steps:
            subjects.update(s for s in (st.success, st.failure, st.compensation) if s)
        for s in subjects:
            saga_of[s].append((name, spec))
    return saga_of


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
        self._saga_of = _saga_subjects(sagas)
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
        if hasattr(records, "of"):  # a history file: the fault timeline reads only the fault records
            timeline = _FaultTimeline(records.of("fault_start", "fault_end"))
        else:
            if iter(records) is records:  # a one-shot iterator: the fault timeline needs a pass of its own
                records = list(records)
            timeline = _FaultTimeline(records)  # rows of wire records carry their own times
        self.shard_count = shards if scratch is not None and shards > 1 else 1
        self._spill: Spill | None = None
        self._one: _Shard | None = None
        put: Callable[[tuple[Any, ...]], None]
        if self.shard_count > 1:
            self._spill = Spill(self.shard_count, scratch)  # type: ignore[arg-type]
            spill_add = self._spill.add
            n_shards = self.shard_count

            def put(row: tuple[Any, ...]) -> None:
                spill_add(hash((row[1], row[2])) % n_shards, row)
        else:
            self._one = _Shard()
            put = self._one.add
        self._active: dict[str, None] = {}
        self._snap: tuple[str, ...] = ()
        self._starts: dict[str, float] = {}
        try:
            self._read(records, timeline, put)
        except BaseException:
            self.close()
            raise
        self.fault_windows += [(fid, t0, None) for fid, t0 in self._starts.items()]
        for svc, cons in self.consumers.items():
            for k in cons:
                self.consumer_service.setdefault(k, svc)

    def _read(self, records: Iterable[dict[str, Any]], timeline: _FaultTimeline,
              put: Callable[[tuple[Any, ...]], None]) -> None:
        """The pass: each stored message, delivery and answer a row to `put`; the rest kept (:meth:`_note`)."""
        saga_of = self._saga_of
        streams_stored = self.streams_stored
        js_sids = self.js_sids
        names: dict[Any, Any] = {}

        def _n(x: Any) -> Any:  # one object per distinct service, stream, consumer and subject name
            return names.setdefault(x, x)

        delivered = self._delivered
        answered = self._answered
        note = self._note
        for rec in records:
            kind = rec.get("kind")
            t = float(rec.get("t") or 0.0)
            snap = self._snap
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
                js_sids.add((svc, rec.get("conn", 0), str(rec.get("sid"))))
            elif kind == "ack":
                svc, stream, seq = _n(rec["service"]), _n(rec["stream"]), int(rec["stream_seq"])
                consumer, how = _n(rec.get("consumer")), _n(rec.get("how"))
                put((2, stream, seq, svc, t, rec.get("conn", 0), how, consumer, rec.get("delivered"),
                     rec.get("reason"), snap))
                answered(svc, stream, consumer, how, seq)
            elif kind == "wire":
                self._wire(rec, timeline, put, _n)
            else:
                note(rec, kind, t)

    def _wire(self, rec: dict[str, Any], timeline: _FaultTimeline, put: Callable[[tuple[Any, ...]], None],
              _n: Callable[[Any], Any]) -> None:
        """A batch of deliveries and answers a wire observer decoded on one link."""
        svc = _n(rec["service"])
        d_rows, a_rows = wire_rows(rec.get("deliveries"), rec.get("answers"))
        for wt, conn, subject, sid, stream, consumer, n, seq, cseq, pending in d_rows:
            stream, seq, consumer = _n(stream), int(seq), _n(consumer)
            put((1, stream, seq, svc, wt, conn, _n(subject), sid, consumer, n, cseq, pending,
                 timeline.at(wt)))
            self._delivered(svc, stream, consumer, n)
            self.js_sids.add((svc, conn, str(sid)))
        for wt, conn, how, stream, consumer, n, seq, reason in a_rows:
            stream, seq, consumer, how = _n(stream), int(seq), _n(consumer), _n(how)
            put((2, stream, seq, svc, wt, conn, how, consumer, n, reason, timeline.at(wt)))
            self._answered(svc, stream, consumer, how, seq)

    def _delivered(self, svc: str, stream: str, consumer: Any, n: Any) -> None:
        self.consumer_service.setdefault((stream, consumer), svc)
        users = self.delivered_by.get((stream, consumer))
        if users is None:
            users = self.delivered_by[(stream, consumer)] = {}
        users[svc] = None
        per_consumer = self.per_consumer
        c = per_consumer.setdefault(stream, {}).get(consumer)
        if c is None:
            c = per_consumer[stream][consumer] = {"deliveries": 0, "redeliveries": 0}
        c["deliveries"] += 1
        if int(n) > 1:
            c["redeliveries"] += 1

    def _answered(self, svc: str, stream: str, consumer: Any, how: Any, seq: int) -> None:
        if how in ("ack", "next"):
            k = (svc, stream, consumer)
            if seq > self.acked_up_to.get(k, 0):
                self.acked_up_to[k] = seq

    def _note(self, rec: dict[str, Any], kind: Any, t: float) -> None:
        """A record about the system as a whole: subscriptions, consumers, connections, advisories, work queues,
        the broker's snapshot, faults."""
        if kind == "nats_sub":
            self.subs[rec["service"]].append(rec)
        elif kind == "js_consumer":
            if rec.get("stream") and rec.get("consumer"):
                self.consumers[rec["service"]][(rec["stream"], rec["consumer"])] = rec
        elif kind == "nats_connect":
            self.connects[rec["service"]] += 1
        elif kind == "reconnect_missed":
            self.reconnects_missed.append(rec)
        elif kind == "advisory":
            self.advisories.append({**rec, "faults": self._snap})
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
            self._active[fid] = None
            self._snap = tuple(self._active)
            self._starts[fid] = t
        elif kind == "fault_end":
            fid = str(rec.get("fault_id"))
            self._active.pop(fid, None)
            self._snap = tuple(self._active)
            if fid in self._starts:
                self.fault_windows.append((fid, self._starts.pop(fid), t))

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
