"""Observing a service's own NATS connection on its link: what it subscribed to, which JetStream consumers it
created, which messages were delivered to it, and what it answered.

A fault proxy (``chaos.toxiproxy``) already carries every byte between a service and NATS. An observer tapped
onto a proxy's connections reads the NATS client protocol at the *receiving* end of each direction (after
the link's toxics), so it records what the server really got from the service (``SUB``, JetStream API
requests, acknowledgements) and what the service really got from the server (``MSG``/``HMSG`` deliveries):

``nats_connect``   the ``CONNECT`` line (``name``, ``user``, ``lang``, ``version``)
``nats_closed``    the connection ended at the link
``nats_sub``       ``SUB subject [queue] sid``; ``nats_unsub``: ``UNSUB sid [max]``
``js_consumer``    a consumer create/update request (``$JS.API.CONSUMER.CREATE.<stream>[...]`` or
                   ``$JS.API.CONSUMER.DURABLE.CREATE.<stream>.<durable>``) with its config: ``durable_name``,
                   ``filter_subjects``, ``ack_policy``, ``ack_wait`` (seconds), ``max_deliver``,
                   ``deliver_subject``, ``deliver_policy``
``delivery``       a message whose reply subject is a JetStream ack subject: ``subject``, ``stream``,
                   ``consumer``, ``delivered`` (1 = first delivery, more = a redelivery), ``stream_seq``,
                   ``consumer_seq``, ``pending``
``ack``            the service's answer on an ack subject, ``how`` one of ``ack`` (``+ACK`` or empty),
                   ``nak``, ``wpi`` (in progress), ``term`` (with ``reason``), ``next``

Each observation is a dict stamped with ``wall`` (``time.time()``), ``service`` and ``conn`` (1, 2, ... per
connection the service opened); :meth:`WireObserver.drain` hands them over in order (from any thread). On the
data path a delivery or an answer costs one tuple appended to a queue; it is turned into a dict only when
drained. The observer also
keeps a live view: open connections, deliveries not answered yet, the time of the last frame that was
*activity* (anything but pings, pull requests that found nothing, and status-only replies), and a count per
subject of the messages that reached the service on core subscriptions (``core_received``; inboxes left out).

The scanner is built for the data path: it looks at control lines only, skips payloads it does not need
without copying them, and gives up on a stream that is not NATS (it never affects the bytes that pass).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

__all__ = ["ConnectionObservation", "ObservingLinks", "WireObserver", "attach", "parse_ack_subject", "wire_rows"]

from sagaproof.chaos._wire_scan import (
    MAX_QUEUED,
    READ_SLICE,
    ConnectionObservation,
    Event,
    _ack_fields,
    _ack_how,
    _fields,
    _Scanner,
    parse_ack_subject,
)


def _text(column: Any) -> list[str]:
    """The column decoded, each distinct value once (subjects, sids and answers repeat)."""
    names = {v: v.decode("utf-8", "replace") for v in set(column)}
    return list(map(names.__getitem__, column))


def _times(walls: tuple[float, ...], t0: float | None) -> list[float]:
    """The rows' times: the walls as they are, or seconds since `t0` (rounded to the µs, never negative), each
    distinct wall computed once (a chunk's frames share the wall of the chunk)."""
    if t0 is None:
        return list(walls)
    since = {w: round(w - t0, 6) if w > t0 else 0.0 for w in set(walls)}
    return list(map(since.__getitem__, walls))


_HOW = {b"": ("ack", None), b"+ACK": ("ack", None), b"-NAK": ("nak", None), b"+WPI": ("wpi", None),
        b"+TERM": ("term", None), b"+NXT": ("next", None)}


def wire_rows(deliveries: Any, answers: Any) -> tuple[list[list[Any]], list[list[Any]]]:
    """A ``wire`` record's deliveries and answers (columns, as :meth:`WireObserver.drain_wire` gives them, or
    rows as older histories hold them) as rows: deliveries ``[t, conn, subject, sid, stream, consumer,
    delivered, stream_seq, consumer_seq, pending]``, answers ``[t, conn, how, stream, consumer, delivered,
    stream_seq, reason]``. An ack subject that is not one is left out."""
    d_rows: list[list[Any]] = []
    a_rows: list[list[Any]] = []
    if isinstance(deliveries, list):
        d_rows = deliveries
    elif deliveries:
        acks = deliveries["ack"].split(" ") if deliveries["ack"] else []
        for t, conn, subject, sid, ack in zip(deliveries["t"], deliveries["conn"], deliveries["subject"],
                                              deliveries["sid"], acks, strict=True):
            fields = _ack_fields(ack)
            if fields is not None:
                d_rows.append([t, conn, subject, sid, *fields])
    if isinstance(answers, list):
        a_rows = answers
    elif answers:
        acks = answers["ack"].split(" ") if answers["ack"] else []
        reasons = answers.get("reason") or [None] * len(acks)
        for t, conn, how, ack, reason in zip(answers["t"], answers["conn"], answers["how"], acks, reasons,
                                             strict=True):
            fields = _ack_fields(ack)
            if fields is not None:
                a_rows.append([t, conn, how, fields[0], fields[1], fields[2], fields[3], reason])
    return d_rows, a_rows


class WireObserver:
    """Everything seen on one service's link, over all its connections.

    :meth:`drain` hands over the observations (dicts, oldest first) from any thread. The live view for
    quiescence: :attr:`open_connections`, :attr:`ever_connected`, :meth:`held` (deliveries the service has not
    answered), :attr:`last_activity` (``time.monotonic()`` of the last frame that was activity),
    :meth:`core_counts` and :meth:`delivering_consumers`.
    """

    def __init__(self, service: str) -> None:
        self.service = service
        self.raw: deque[Event] = deque()  # observations not drained yet, but deliveries and answers:
        self._deliveries: deque[tuple[float, int, bytes, bytes, bytes]] = deque()  # wall, conn, subject, sid, reply
        self._answers: deque[tuple[float, int, bytes, bytes]] = deque()  # wall, conn, ack subject, body
        self.problems: list[str] = []
        self.last_activity = time.monotonic()
        self.open_connections = 0
        self.ever_connected = False
        self.connections = 0
        self.consumers: dict[tuple[str, str], Event] = {}  # (stream, consumer) -> observed config
        self.ack_none: set[tuple[bytes, bytes]] = set()  # (stream, consumer) created with ack policy none
        self.delivering: set[tuple[bytes, bytes]] = set()  # (stream, consumer) that delivered to the service
        self.core_received: dict[bytes, int] = {}  # subject -> messages delivered on core subscriptions
        # ack subject -> conn of each delivery not answered yet (written on the proxy's loop); an older delivery
        # of a message delivered again is let go when the newer one is drained (:meth:`_reconcile`)
        self._held: dict[bytes, int] = {}
        self._queue: deque[tuple[_Scanner, bytes, float, float]] = deque()  # passed, not read yet
        self._queued = 0
        self._scheduled = False
        self._loop: Any = None
        self.clock = time.time()  # wall time of the chunk being read (observations are stamped with it)
        self._lock = threading.Lock()

    def _take(self, scanner: _Scanner, data: bytes) -> None:
        """Queue a chunk that has just passed (one direction of one connection) for reading."""
        self._queue.append((scanner, data, time.time(), time.monotonic()))
        self._queued += len(data)
        if self._queued > MAX_QUEUED:
            self.read_queued()  # the reader fell behind: catch up now rather than hold more bytes
        elif not self._scheduled:
            self._scheduled = True
            if self._loop is None:
                import asyncio

                self._loop = asyncio.get_running_loop()
            self._loop.call_soon(self._read_some)

    def read_queued(self, budget: int | None = None) -> None:
        """Read the queued chunks in the order they passed (deliveries before the answers to them): all of them,
        or about `budget` bytes, after which the rest is read on a later turn of the loop (so a long backlog
        never holds up the bytes still passing)."""
        self._scheduled = False
        queue = self._queue
        done = 0
        while queue:
            if budget is not None and done >= budget:
                self._scheduled = True
                self._loop.call_soon(self._read_some)
                return
            scanner, data, wall, mono = queue.popleft()
            done += len(data)
            self._queued -= len(data)
            self.clock = wall
            try:
                if scanner.feed(data) and mono > self.last_activity:
                    self.last_activity = mono
            except Exception as exc:  # noqa: BLE001 - observing must never break the link
                scanner.broken = True
                self.problems.append(f"the observer gave up on a connection ({type(exc).__name__}: {exc})")

    def _read_some(self) -> None:
        self.read_queued(READ_SLICE)

    @property
    def unread(self) -> int:
        """Bytes that passed the link and were not read yet."""
        return self._queued

    def open_connection(self, conn: Any = None) -> ConnectionObservation:
        """Called by the proxy for each new connection (``proxy.observe``)."""
        with self._lock:
            self.connections += 1
            self.open_connections += 1
            self.ever_connected = True
            number = self.connections
        self.last_activity = time.monotonic()
        return ConnectionObservation(self, number)

    def core_counts(self) -> dict[str, int]:
        """Messages delivered to the service on core subscriptions, per subject (inboxes left out)."""
        return {k.decode("utf-8", "replace"): v for k, v in list(self.core_received.items())}

    def held(self) -> dict[tuple[str, str, int], int]:
        """Deliveries (stream, consumer, stream_seq) -> delivery count that the service has not answered yet."""
        snapshot = list(dict(self._held))  # one C-level copy: safe while the proxy's loop writes
        out: dict[tuple[str, str, int], int] = {}
        for reply in snapshot:
            fields = _ack_fields(reply.decode("utf-8", "replace"))
            if fields is not None:  # a message delivered again before a drain: its latest delivery counts
                key = (fields[0], fields[1], fields[3])
                if out.get(key, 0) < fields[2]:
                    out[key] = fields[2]
        return out

    def delivering_consumers(self) -> set[tuple[str, str]]:
        """(stream, consumer) of every consumer that delivered to the service."""
        return {(s.decode(), c.decode()) for s, c in set(self.delivering)}

    def drain(self) -> list[Event]:
        """The observations since the last drain, oldest first, as dicts (see the module docstring)."""
        events, deliveries, answers = self.drain_wire()
        d_rows, a_rows = wire_rows(deliveries, answers)
        service = self.service
        out = list(events)
        for wall, conn, subject, sid, stream, consumer, delivered, seq, cseq, pending in d_rows:
            out.append({"kind": "delivery", "conn": conn, "subject": subject, "sid": sid, "stream": stream,
                        "consumer": consumer, "delivered": delivered, "stream_seq": seq, "consumer_seq": cseq,
                        "pending": pending, "wall": wall, "service": service})
        for wall, conn, how, stream, consumer, delivered, seq, reason in a_rows:
            event = {"kind": "ack", "conn": conn, "how": how, "stream": stream, "consumer": consumer,
                     "delivered": delivered, "stream_seq": seq, "wall": wall, "service": service}
            if reason:
                event["reason"] = reason
            out.append(event)
        out.sort(key=lambda e: e["wall"])
        return out

    def drain_wire(self, t0: float | None = None) -> tuple[list[Event], dict[str, Any] | None,
                                                          dict[str, Any] | None]:
        """The observations since the last drain, compactly, each oldest first: (the other events as dicts,
        the deliveries, the answers). Deliveries and answers come as columns (None when there were none), what
        a history's ``wire`` record holds and :func:`wire_rows` reads:

        - deliveries ``{"t": [...], "conn": [...], "subject": [...], "sid": [...], "ack": "<ack subject> ..."}``
        - answers ``{"t": [...], "conn": [...], "how": [...], "ack": "<ack subject> ...", "reason": [...]}``
          (``how``: ``ack``, ``nak``, ``wpi``, ``term``, ``next``; ``reason`` only when a ``+TERM`` gave one)

        ``ack`` is the ack subjects (which hold stream, consumer, delivery count and sequences), space-separated
        as they were on the wire. ``t`` is each one's wall, or, given `t0` (a ``time.time()``), seconds since
        then (rounded to the µs; 0 before it), as a history record's ``t`` is.

        The data path only queued the raw bytes; they are decoded here, a column at a time: on the link's
        loop, this costs about a quarter of what rows of decoded fields did."""
        raw, dq, aq = self.raw, self._deliveries, self._answers
        events = [raw.popleft() for _ in range(len(raw))]  # popleft: safe while the proxy's loop appends
        take_d, take_a = dq.popleft, aq.popleft
        delivered = [take_d() for _ in range(len(dq))]
        answered = [take_a() for _ in range(len(aq))]
        service = self.service
        for event in events:
            event["service"] = service
        deliveries = answers = None
        if delivered:
            walls, conns, subjects, sids, replies = zip(*delivered, strict=True)
            joined = b" ".join(replies)
            self._reconcile(replies, joined)
            deliveries = {"t": _times(walls, t0), "conn": list(conns), "subject": _text(subjects),
                          "sid": _text(sids), "ack": joined.decode("utf-8", "replace")}
        if answered:
            walls, conns, subjects, bodies = zip(*answered, strict=True)
            known = {body: _HOW.get(body) or _ack_how(body) for body in set(bodies)}  # bodies repeat (+ACK, empty)
            hows, reasons = zip(*map(known.__getitem__, bodies), strict=True)
            answers = {"t": _times(walls, t0), "conn": list(conns), "how": list(hows),
                       "ack": b" ".join(subjects).decode("utf-8", "replace")}
            if any(reasons):
                answers["reason"] = list(reasons)
        return events, deliveries, answers

    def _reconcile(self, replies: tuple[bytes, ...], joined: bytes) -> None:
        """Drained deliveries (`joined`: their ack subjects, space-separated): note the consumers that delivered,
        and let go of an older delivery of a message the server delivered again (its ack wait ran out; only the
        latest is owed an answer). The bulk, first deliveries from one consumer, costs two C calls per drain;
        otherwise each ack subject is read, and the held deliveries are looked through if a redelivery came."""
        k = len(replies)
        t = replies[0].split(b".")
        n = len(t)
        if (n == 9 or n >= 11) and t[1] == b"ACK":
            b = 2 if n == 9 else 4
            head = b".".join(t[:b + 2]) + b"."  # $JS.ACK.[<domain>.<account>.]<stream>.<consumer>.
            if joined.count(head) == k:  # all from that consumer
                self.delivering.add((t[b], t[b + 1]))
                if joined.count(head + b"1.") == k:  # all first deliveries: nothing older to let go
                    return
        fields = _fields(replies)
        self.delivering.update((f[0], f[1]) for f in fields if f is not None)
        held = self._held
        latest: dict[tuple[bytes, bytes, bytes], int] = {}  # message -> its latest delivery count seen
        for reply, f in zip(replies, fields, strict=True):
            if f is None:  # not an ack subject after all: nothing the server waits for
                held.pop(reply, None)
            elif f[2] != b"1" and f[2].isdigit():
                key = (f[0], f[1], f[3])
                latest[key] = max(latest.get(key, 0), int(f[2]))
        if not latest:
            return
        snapshot = list(dict(held))
        for reply, f in zip(snapshot, _fields(snapshot), strict=True):
            if f is not None and f[2].isdigit() and int(f[2]) < latest.get((f[0], f[1], f[3]), 0):
                held.pop(reply, None)

    # -- called by the connection observations, on the proxy's loop
    def _emit(self, event: Event) -> None:
        self.raw.append(event)

    def _consumer(self, cfg: Event) -> None:
        if cfg.get("stream") and cfg.get("consumer"):
            with self._lock:
                self.consumers[(str(cfg["stream"]), str(cfg["consumer"]))] = cfg
            pair = (str(cfg["stream"]).encode(), str(cfg["consumer"]).encode())
            if cfg.get("ack_policy") == "none":
                self.ack_none.add(pair)
            else:
                self.ack_none.discard(pair)

    def _closed(self, conn: ConnectionObservation) -> None:
        with self._lock:
            self.open_connections -= 1
        number = conn.number  # its deliveries not answered: the server redelivers them once their ack wait passes
        for key in [k for k, c in self._held.items() if c == number]:
            self._held.pop(key, None)
        self.last_activity = time.monotonic()
        self._emit({"kind": "nats_closed", "conn": conn.number, "wall": time.time()})


def attach(proxy: Any, observer: WireObserver) -> None:
    """Observe every connection a :class:`chaos.toxiproxy` proxy accepts from now on."""
    proxy.observe = observer.open_connection


class ObservingLinks:
    """Plain links (fault proxies with no toxics) that only observe: for runs without faults, or in front of
    an external Toxiproxy whose connections cannot be tapped. Create, use and close on one event loop."""

    def __init__(self) -> None:
        import random

        from sagaproof.chaos.toxiproxy._proxy import ProxyCollection

        self._proxies = ProxyCollection(random.Random(0))

    async def add(self, name: str, upstream: str, observer: WireObserver, listen: str = "127.0.0.1:0") -> str:
        """A link `name` listening on `listen` toward `upstream` (host:port) observed by `observer`; returns its
        listen address. A listen address that cannot be bound raises
        :class:`~chaos.toxiproxy._proxy.ApiError` (500, with the OS's reason)."""
        proxy = await self._proxies.create({"name": name, "listen": listen, "upstream": upstream})
        attach(proxy, observer)
        return str(proxy.listen)

    async def close(self) -> None:
        """Close every link and its connections; idempotent."""
        await self._proxies.close()
