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

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["ConnectionObservation", "ObservingLinks", "WireObserver", "attach", "parse_ack_subject"]

MAX_CONTROL_LINE = 4096
MAX_PAYLOAD = 64 * 1024 * 1024
_NEEDED_PAYLOAD = 64 * 1024  # API requests and acks we read are small; bigger ones are skipped

_ACK = b"$JS.ACK."
_API_CREATE = (b"$JS.API.CONSUMER.CREATE.", b"$JS.API.CONSUMER.DURABLE.CREATE.")
_NEXT = b"$JS.API.CONSUMER.MSG.NEXT."
_INBOX = (b"_INBOX.", b"_R_.", b"$JS.", b"$SYS.")
_OPS = frozenset((b"MSG", b"PUB", b"HMSG", b"HPUB", b"SUB", b"UNSUB", b"PING", b"PONG", b"CONNECT", b"INFO",
                  b"+OK", b"-ERR"))
_SIZED = frozenset((b"MSG", b"PUB", b"HMSG", b"HPUB"))

Event = dict[str, Any]


def parse_ack_subject(subject: str) -> dict[str, Any] | None:
    """The fields of a JetStream ack subject, or None if it is not one.

    ``$JS.ACK.<stream>.<consumer>.<delivered>.<stream_seq>.<consumer_seq>.<ts>.<pending>`` (9 tokens) or
    ``$JS.ACK.<domain>.<account_hash>.<stream>.<consumer>.<delivered>.<stream_seq>.<consumer_seq>.<ts>.<pending>
    [.<random>]`` (11 or 12 tokens).

    >>> parse_ack_subject("$JS.ACK.SHOP.order.2.17.40.1700000000000000000.3")["stream_seq"]
    17
    """
    tokens = subject.split(".")
    if len(tokens) < 9 or tokens[0] != "$JS" or tokens[1] != "ACK":
        return None
    base = 2 if len(tokens) == 9 else 4
    if len(tokens) - base < 7:
        return None
    try:
        return {"stream": tokens[base], "consumer": tokens[base + 1], "delivered": int(tokens[base + 2]),
                "stream_seq": int(tokens[base + 3]), "consumer_seq": int(tokens[base + 4]),
                "pending": int(tokens[base + 6])}
    except ValueError:
        return None


_D, _A = "d", "a"  # compact observations: a delivery, an answer
MAX_QUEUED = 8 * 1024 * 1024  # bytes passed on but not read yet; past this, reading catches up at once
READ_SLICE = 64 * 1024  # bytes read per turn of the loop


def _ack_key(subject: bytes) -> tuple[bytes, bytes, bytes] | None:
    """(stream, consumer, stream_seq) of an ack subject, as bytes, without converting anything."""
    tokens = subject.split(b".")
    n = len(tokens)
    if n == 9:
        return tokens[2], tokens[3], tokens[5]
    if n >= 11:
        return tokens[4], tokens[5], tokens[7]
    return None


def _ack_how(payload: bytes) -> tuple[str, str | None]:
    p = payload.strip()
    if not p or p.startswith(b"+ACK"):
        return "ack", None
    if p.startswith(b"-NAK"):
        return "nak", None
    if p.startswith(b"+WPI"):
        return "wpi", None
    if p.startswith(b"+TERM"):
        reason = p[5:].strip().decode("utf-8", "replace") or None
        return "term", reason
    if p.startswith(b"+NXT"):
        return "next", None
    return "ack", None  # the server treats an unknown body as an ack


def _consumer_config(api_subject: str, body: bytes) -> Event:
    """The parts of a consumer create/update request that matter for delivery guarantees."""
    tokens = api_subject.split(".")
    durable_form = tokens[3] == "DURABLE"
    stream = tokens[5] if durable_form and len(tokens) > 5 else (tokens[4] if len(tokens) > 4 else None)
    name = tokens[6] if durable_form and len(tokens) > 6 else (tokens[5] if not durable_form and len(tokens) > 5 else None)
    try:
        doc = json.loads(body) if body else {}
    except ValueError:
        doc = {}
    raw_cfg = doc.get("config") if isinstance(doc, dict) else None
    cfg: dict[str, Any] = raw_cfg if isinstance(raw_cfg, dict) else {}
    filters = cfg.get("filter_subjects") or ([cfg["filter_subject"]] if cfg.get("filter_subject") else [])
    if not filters and not durable_form and len(tokens) > 6:  # CREATE.<stream>.<consumer>.<filter...>
        filters = [".".join(tokens[6:])]
    ack_wait = cfg.get("ack_wait")
    return {
        "api": "durable_create" if durable_form else "create",
        "stream": (doc.get("stream_name") if isinstance(doc, dict) else None) or stream,
        "consumer": cfg.get("durable_name") or cfg.get("name") or name,
        "durable": bool(cfg.get("durable_name") or durable_form),
        "filter_subjects": [str(f) for f in filters],
        "ack_policy": cfg.get("ack_policy") or "none",
        "ack_wait": (ack_wait / 1e9) if isinstance(ack_wait, int | float) else 30.0,
        "max_deliver": cfg.get("max_deliver", -1),
        "deliver_subject": cfg.get("deliver_subject"),
        "deliver_group": cfg.get("deliver_group"),
        "deliver_policy": cfg.get("deliver_policy") or "all",
    }


class _Scanner:
    """Incremental reader of one direction's control lines; calls `handle(op, parts, payload, size)` per frame.

    `payload` is the frame's payload when its subject starts with one of `wants`, else None (skipped, not
    copied); for CONNECT it is the whole line. :meth:`feed` returns whether the bytes held any activity.
    """

    __slots__ = ("_partial", "_skip", "_handle", "_wants", "_core", "broken")

    def __init__(self, handle: Callable[[bytes, list[bytes], bytes | None, int], bool],
                 wants: tuple[bytes, ...] = (), core: dict[bytes, int] | None = None) -> None:
        self._partial = b""
        self._skip = 0
        self._handle = handle
        self._wants = wants  # subject prefixes of frames `handle` must see (with their payload, upstream)
        self._core = core  # downstream: count plain MSGs per subject here instead of calling `handle`
        self.broken = False

    def feed(self, data: bytes) -> bool:
        if self.broken:
            return True
        pos = 0
        n = len(data)
        if self._skip:
            if n <= self._skip:
                self._skip -= n
                return False
            pos = self._skip
            self._skip = 0
        if self._partial:
            data = self._partial + data[pos:]
            self._partial = b""
            pos = 0
            n = len(data)
        handle = self._handle
        wants = self._wants
        core = self._core
        active = False
        while pos < n:
            nl = data.find(b"\n", pos, pos + MAX_CONTROL_LINE)
            if nl < 0:
                if n - pos >= MAX_CONTROL_LINE:
                    self.broken = True  # not NATS (or corrupt): stop reading, never touch the bytes
                    return True
                self._partial = data[pos:]
                return active
            parts = data[pos:nl].split()
            start = pos
            pos = nl + 1
            if not parts:
                continue
            op = parts[0]
            if op not in _OPS:
                op = op.upper()
            if op in _SIZED:
                try:
                    size = int(parts[-1])
                except ValueError:
                    self.broken = True
                    return True
                if size < 0 or size > MAX_PAYLOAD or len(parts) < 3:
                    self.broken = True
                    return True
                end = pos + size + 2
                # Fast paths for the bulk of the traffic, without a call per frame.
                if core is not None and op == b"MSG" and (len(parts) == 4 or not parts[3].startswith(_ACK)):
                    subject = parts[1]
                    if not subject.startswith(_INBOX):
                        core[subject] = core.get(subject, 0) + 1
                    active = active or size > 0
                elif core is None and not parts[1].startswith(wants):
                    active = True  # an ordinary publish
                elif wants and size <= _NEEDED_PAYLOAD:
                    if end > n:
                        self._partial = data[start:]  # re-read the control line with its payload next time
                        return active
                    active |= handle(op, parts, data[pos:pos + size], size)
                else:
                    active |= handle(op, parts, None, size)
                if end > n:
                    self._skip = end - n
                    return active
                pos = end
            else:
                active |= handle(op, parts, data[start:nl] if op == b"CONNECT" else None, 0)
        return active


class ConnectionObservation:
    """What one connection through the link showed; created by the proxy for each accepted connection."""

    def __init__(self, observer: WireObserver, number: int) -> None:
        self.observer = observer
        self.number = number
        self.held: dict[tuple[bytes, bytes, bytes], bytes] = {}  # (stream, consumer, stream_seq) -> delivered
        self.up = _Scanner(self._upstream, (_ACK, *_API_CREATE, _NEXT))
        self.down = _Scanner(self._downstream, (), observer.core_received)
        self.closed = False

    def tap(self, direction: str, sink: Any) -> Any:
        """A sink that observes chunks on their way into `sink` (the link's socket end)."""
        return _TapSink(self.up if direction == "upstream" else self.down, sink, self.observer)

    def _emit(self, kind: str, **fields: Any) -> None:
        self.observer._emit({"kind": kind, "conn": self.number, "wall": self.observer.clock, **fields})

    # -- client -> server
    def _upstream(self, op: bytes, parts: list[bytes], payload: bytes | None, size: int) -> bool:
        if op == b"PUB" or op == b"HPUB":
            subject = parts[1]
            if subject.startswith(_NEXT):
                return False  # a pull request: asking is not activity, what it brings back is
            if subject.startswith(_ACK):
                body = payload or b""
                if op == b"HPUB" and payload is not None:
                    hdr = int(parts[-2]) if len(parts) >= 4 else 0
                    body = payload[hdr:]
                self._on_ack(subject, body)
            elif subject.startswith(_API_CREATE) and payload is not None:
                body = payload
                if op == b"HPUB":
                    hdr = int(parts[-2]) if len(parts) >= 4 else 0
                    body = payload[hdr:]
                cfg = _consumer_config(subject.decode("utf-8", "replace"), body)
                self.observer._consumer(cfg)
                self._emit("js_consumer", **cfg)
            return True
        if op == b"SUB":
            if len(parts) >= 3:
                queue = parts[2].decode() if len(parts) >= 4 else None
                self._emit("nats_sub", subject=parts[1].decode("utf-8", "replace"), queue=queue,
                           sid=parts[-1].decode("utf-8", "replace"))
            return True
        if op == b"UNSUB":
            if len(parts) >= 2:
                self._emit("nats_unsub", sid=parts[1].decode("utf-8", "replace"),
                           max=int(parts[2]) if len(parts) >= 3 and parts[2].isdigit() else None)
            return True
        if op == b"CONNECT":
            info: dict[str, Any] = {}
            try:
                raw = json.loads(payload[len(b"CONNECT"):].strip()) if payload else {}
                info = raw if isinstance(raw, dict) else {}
            except ValueError:
                pass
            self._emit("nats_connect", name=info.get("name"), user=info.get("user"),
                       lang=info.get("lang"), version=info.get("version"))
            return True
        return False  # PING, PONG

    def _on_ack(self, subject: bytes, body: bytes) -> None:
        key = _ack_key(subject)
        if key is None:
            return
        if not body.lstrip().startswith(b"+WPI"):  # in progress: still held
            self.held.pop(key, None)
            self.observer._held.pop(key, None)
        self.observer.raw.append((_A, self.observer.clock, self.number, subject, body[:512]))

    # -- server -> client
    def _downstream(self, op: bytes, parts: list[bytes], payload: bytes | None, size: int) -> bool:
        if op == b"MSG" or op == b"HMSG":
            hmsg = op == b"HMSG"
            n = len(parts)
            reply = parts[3] if (n == 6 if hmsg else n == 5) else None
            if reply is not None and reply.startswith(_ACK):
                tokens = reply.split(b".")
                n = len(tokens)
                if n == 9 or n >= 11:
                    b = 2 if n == 9 else 4
                    obs = self.observer
                    pair = (tokens[b], tokens[b + 1])
                    key = (tokens[b], tokens[b + 1], tokens[b + 3])
                    obs.delivering.add(pair)
                    if pair not in obs.ack_none:
                        self.held[key] = obs._held[key] = tokens[b + 2]
                    obs.raw.append((_D, obs.clock, self.number, parts[1], parts[2], reply))
                return True
            if hmsg and n >= 5 and parts[-1] == parts[-2]:
                return False  # headers only: a status (no messages, timeout, idle heartbeat)
            subject = parts[1]
            if not subject.startswith(_INBOX):  # counted, not recorded one by one: core traffic can be heavy
                core = self.observer.core_received
                core[subject] = core.get(subject, 0) + 1
            return size > 0
        return False  # INFO, PING, PONG, +OK, -ERR

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.observer.read_queued()  # what passed before the close is read first
        self.observer._closed(self)


class _TapSink:
    """Passes each chunk on unchanged, then queues it to be read when the link's loop has a moment: observing
    never delays the bytes. EOF (None) passes straight through."""

    __slots__ = ("_scanner", "_inner", "_observer")

    def __init__(self, scanner: _Scanner, inner: Any, observer: WireObserver) -> None:
        self._scanner = scanner
        self._inner = inner
        self._observer = observer

    def push(self, item: Any) -> None:
        """The link's reading side hands a chunk over without waiting (no toxics on the link)."""
        self._inner.push(item)
        if item is not None:
            self._take(item[0])

    async def put(self, item: Any) -> None:
        await self._inner.put(item)
        if item is not None:
            self._take(item[0])

    def full(self) -> bool:
        return bool(self._inner.full())

    def _take(self, data: Any) -> None:
        # A chunk may be a memoryview of a larger read (toxics on the link); the scanner reads bytes.
        self._observer._take(self._scanner, data if type(data) is bytes else bytes(data))


class WireObserver:
    """Everything seen on one service's link, over all its connections.

    :meth:`drain` hands over the observations (dicts, oldest first) from any thread. The live view for
    quiescence: :attr:`open_connections`, :attr:`ever_connected`, :meth:`held` (deliveries the service has not
    answered), :attr:`last_activity` (``time.monotonic()`` of the last frame that was activity),
    :meth:`core_counts` and :meth:`delivering_consumers`.
    """

    def __init__(self, service: str) -> None:
        self.service = service
        self.raw: deque[Any] = deque()  # observations not drained yet: dicts, or compact tuples on the data path
        self.problems: list[str] = []
        self.last_activity = time.monotonic()
        self.open_connections = 0
        self.ever_connected = False
        self.connections = 0
        self.consumers: dict[tuple[str, str], Event] = {}  # (stream, consumer) -> observed config
        self.ack_none: set[tuple[bytes, bytes]] = set()  # (stream, consumer) created with ack policy none
        self.delivering: set[tuple[bytes, bytes]] = set()  # (stream, consumer) that delivered to the service
        self.core_received: dict[bytes, int] = {}  # subject -> messages delivered on core subscriptions
        self._held: dict[tuple[bytes, bytes, bytes], bytes] = {}  # written on the proxy's loop only
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
        snapshot = dict(self._held)  # one C-level copy: safe while the proxy's loop writes
        return {(s.decode(), c.decode(), int(q)): int(d) for (s, c, q), d in snapshot.items()}

    def delivering_consumers(self) -> set[tuple[str, str]]:
        """(stream, consumer) of every consumer that delivered to the service."""
        return {(s.decode(), c.decode()) for s, c in set(self.delivering)}

    def drain(self) -> list[Event]:
        """The observations since the last drain, oldest first, as dicts (see the module docstring)."""
        events, deliveries, answers = self.drain_rows()
        service = self.service
        out = list(events)
        for wall, conn, subject, sid, stream, consumer, delivered, seq, cseq, pending in deliveries:
            out.append({"kind": "delivery", "conn": conn, "subject": subject, "sid": sid, "stream": stream,
                        "consumer": consumer, "delivered": delivered, "stream_seq": seq, "consumer_seq": cseq,
                        "pending": pending, "wall": wall, "service": service})
        for wall, conn, how, stream, consumer, delivered, seq, reason in answers:
            event = {"kind": "ack", "conn": conn, "how": how, "stream": stream, "consumer": consumer,
                     "delivered": delivered, "stream_seq": seq, "wall": wall, "service": service}
            if reason:
                event["reason"] = reason
            out.append(event)
        out.sort(key=lambda e: e["wall"])
        return out

    def drain_rows(self) -> tuple[list[Event], list[list[Any]], list[list[Any]]]:
        """The observations since the last drain, compactly: (other events as dicts, deliveries as rows
        ``[wall, conn, subject, sid, stream, consumer, delivered, stream_seq, consumer_seq, pending]``, answers
        as rows ``[wall, conn, how, stream, consumer, delivered, stream_seq, reason]``), each oldest first."""
        events: list[Event] = []
        deliveries: list[list[Any]] = []
        answers: list[list[Any]] = []
        raw = self.raw
        service = self.service
        while raw:
            item = raw.popleft()
            if isinstance(item, dict):
                item["service"] = service
                events.append(item)
                continue
            t = (item[5] if item[0] == _D else item[3]).decode("utf-8", "replace").split(".")
            n = len(t)
            if n != 9 and n < 11:
                continue
            b = 2 if n == 9 else 4
            try:
                if item[0] == _D:
                    deliveries.append([item[1], item[2], item[3].decode("utf-8", "replace"),
                                       item[4].decode("utf-8", "replace"), t[b], t[b + 1], int(t[b + 2]),
                                       int(t[b + 3]), int(t[b + 4]), int(t[b + 6])])
                else:
                    how, reason = _ack_how(item[4])
                    answers.append([item[1], item[2], how, t[b], t[b + 1], int(t[b + 2]), int(t[b + 3]), reason])
            except ValueError:
                continue
        return events, deliveries, answers

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
        for key in conn.held:  # the server redelivers them elsewhere once their ack wait passes
            self._held.pop(key, None)
        conn.held.clear()
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

    async def add(self, name: str, upstream: str, observer: WireObserver) -> str:
        """A link `name` toward `upstream` (host:port) observed by `observer`; returns its listen address."""
        proxy = await self._proxies.create({"name": name, "listen": "127.0.0.1:0", "upstream": upstream})
        attach(proxy, observer)
        return str(proxy.listen)

    async def close(self) -> None:
        """Close every link and its connections; idempotent."""
        await self._proxies.close()
