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
import re
import threading
import time
from collections import deque
from typing import Any

__all__ = ["ConnectionObservation", "ObservingLinks", "WireObserver", "attach", "parse_ack_subject", "wire_rows"]

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
    fields = _ack_fields(subject)
    if fields is None:
        return None
    return dict(zip(("stream", "consumer", "delivered", "stream_seq", "consumer_seq", "pending"), fields, strict=True))


MAX_QUEUED = 8 * 1024 * 1024  # bytes passed on but not read yet; past this, reading catches up at once
READ_SLICE = 64 * 1024  # bytes read per turn of the loop


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


_GLUE = MAX_CONTROL_LINE + _NEEDED_PAYLOAD + 2  # enough of the next chunk to finish any frame a chunk cut short
_LINE_CACHE = 1024  # control lines remembered per direction (those without a reply subject, which repeat)
_NEVER = b"\x00\x00 not a control line \x00\x00"  # matches no NATS frame; the repeat path's initial line
_WANTS = (_ACK, *_API_CREATE, _NEXT)  # upstream subjects read beyond the bare fact of a publish
# The two frames of every JetStream message, read by one regular expression each (any other line goes the
# general way, which reads these the same); the ack subject is kept whole, as the key of a held delivery:
# a delivery: op, subject, sid, reply (the ack subject), [header size], size
_DELIVERY = re.compile(rb"(H?MSG) (\S+) (\S+) (\$JS\.ACK\.\S+) (?:(\d+) )?(\d{1,9})\r\n").match
# an answer without a reply subject: ack subject, size
_ANSWER = re.compile(rb"PUB (\$JS\.ACK\.\S+) +(\d{1,5})\r\n").match


def _fields(acks: Any) -> list[tuple[bytes, bytes, bytes, bytes] | None]:
    """(stream, consumer, delivered, stream_seq) of each ack subject, None for one that is not one."""
    out: list[tuple[bytes, bytes, bytes, bytes] | None] = []
    for ack in acks:
        t = ack.split(b".")
        n = len(t)
        b = 2 if n == 9 else 4
        out.append((t[b], t[b + 1], t[b + 2], t[b + 3]) if (n == 9 or n >= 11) and t[1] == b"ACK" else None)
    return out


class _Scanner:
    """Incremental reader of one direction's frames: control lines only, payloads skipped without copying.

    A chunk is read where it lies; only a frame cut by the chunk's end is carried over (its head, never the
    whole chunk). The bulk of the traffic costs one C call per frame: a control line without a reply subject
    (a core message, a plain publish) is remembered, and a run of frames with the same control line (same
    subject and size) is stepped over by `startswith`, counted at the end of the run. Other lines are
    remembered up to :data:`_LINE_CACHE`, looked up per frame. :meth:`feed` returns whether the bytes held
    any activity; a stream that is not NATS is given up on (``broken``), the bytes untouched.
    """

    __slots__ = ("_partial", "_skip", "_cache", "_last", "_step", "_subject", "conn", "broken")

    def __init__(self, conn: ConnectionObservation) -> None:
        self._partial = b""  # the head of a frame the last chunk cut short
        self._skip = 0  # payload bytes still to come of a frame not needed
        self._cache: dict[bytes, tuple[int, bytes | None, bool]] = {}  # line -> (frame length, counted subject, active)
        self._last = _NEVER  # the last remembered line read, and its frame length and subject
        self._step = len(_NEVER)
        self._subject: bytes | None = None
        self.conn = conn
        self.broken = False

    def feed(self, data: bytes) -> bool:
        if self.broken:
            return True
        n = len(data)
        pos = 0
        if self._skip:
            if n <= self._skip:
                self._skip -= n
                return False
            pos = self._skip
            self._skip = 0
        active = False
        if self._partial:
            partial = self._partial
            self._partial = b""
            head = partial + data[pos:pos + _GLUE]  # the cut frame, whole (it fits: line + needed payload)
            lp = len(partial)
            end, active = self._scan(head, 0, lp)
            if self.broken:
                return True
            if end < 0:  # still cut short: the chunk was all of it (else the frame would not fit in _GLUE)
                if n - pos > _GLUE:
                    self.broken = True
                    return True
                return active
            pos += end - lp
            if pos >= n:
                self._skip = pos - n
                return active
        end, more = self._scan(data, pos, n)
        if self.broken:
            return True
        if end > n:
            self._skip = end - n
        return active or more

    def _scan(self, data: bytes, pos: int, limit: int) -> tuple[int, bool]:  # pragma: no cover - interface
        """Read the frames of `data` that start before `limit`, from `pos`: returns (where the next frame
        starts, perhaps past the end of `data`; or -1 with the cut frame kept in `_partial`, activity)."""
        raise NotImplementedError

    def _cut(self, data: bytes, pos: int, line: bool) -> int:
        """The frame at `pos` is cut by the end of `data` (in its control `line`, or in a payload that is read):
        keep its head for the next chunk, or give up on a stream with no control line in MAX_CONTROL_LINE."""
        if line and len(data) - pos >= MAX_CONTROL_LINE:
            self.broken = True  # not NATS (or corrupt): stop reading, never touch the bytes
        else:
            self._partial = data[pos:]
        return -1

    def _remember(self, line: bytes, entry: tuple[int, bytes | None, bool]) -> None:
        cache = self._cache
        if len(cache) >= _LINE_CACHE:
            cache.clear()
        cache[line] = entry


class _Downstream(_Scanner):
    """Server -> service: JetStream deliveries (a reply on an ack subject) recorded, core messages counted per
    subject (inboxes left out), status-only header messages (no messages, timeouts, heartbeats) ignored."""

    __slots__ = ("_core",)

    def __init__(self, conn: ConnectionObservation, core: dict[bytes, int]) -> None:
        super().__init__(conn)
        self._core = core

    def _scan(self, data: bytes, pos: int, limit: int) -> tuple[int, bool]:
        find = data.find
        starts = data.startswith
        cache = self._cache
        core = self._core
        obs = self.conn.observer
        number = self.conn.number
        ack_none, held, queue = obs.ack_none, obs._held, obs._deliveries.append
        clock = obs.clock
        delivery = _DELIVERY
        last, step, subject = self._last, self._step, self._subject
        run = 0  # frames of `last` in a row, not counted yet
        active = False
        while pos < limit:
            if starts(last, pos):
                pos += step
                run += 1
                continue
            m = delivery(data, pos)
            if m is not None:
                op, subj, sid, reply, hdr, size = m.groups()
                if (hdr is None) == (op == b"MSG"):  # else not a NATS frame: read (and given up on) below
                    if not ack_none or (_fields((reply,))[0] or ())[:2] not in ack_none:  # ack policy none: no answer
                        held[reply] = number
                    queue((clock, number, subj, sid, reply))
                    active = True
                    pos = m.end() + int(size) + 2
                    continue
            nl = find(b"\n", pos, pos + MAX_CONTROL_LINE)
            if nl < 0:
                pos = self._cut(data, pos, True)
                break
            line = data[pos:nl + 1]
            entry = cache.get(line)
            if entry is None:
                parts = line.split()
                if not parts:
                    pos = nl + 1
                    continue
                op = parts[0]
                if op not in _OPS:
                    op = op.upper()
                if op not in _SIZED:
                    pos = nl + 1  # INFO, PING, PONG, +OK, -ERR: not activity
                    continue
                try:
                    size = int(parts[-1])
                except ValueError:
                    size = -1
                if size < 0 or size > MAX_PAYLOAD or len(parts) < 3:
                    self.broken = True  # not NATS (or corrupt): stop reading, never touch the bytes
                    break
                hmsg = op == b"HMSG"
                n = len(parts)
                reply = parts[3] if (n == 6 if hmsg else n == 5) else None
                if reply is not None and reply.startswith(_ACK):  # a JetStream delivery
                    tokens = reply.split(b".")
                    nt = len(tokens)
                    if nt == 9 or nt >= 11:
                        b = 2 if nt == 9 else 4
                        if (tokens[b], tokens[b + 1]) not in ack_none:
                            held[reply] = number
                        queue((clock, number, parts[1], parts[2], reply))
                    active = True
                    pos = nl + 3 + size
                    continue
                if hmsg and n >= 5 and parts[-1] == parts[-2]:
                    entry = (nl + 3 + size - pos, None, False)  # headers only: a status (no messages, timeout)
                else:
                    entry = (nl + 3 + size - pos, None if parts[1].startswith(_INBOX) else parts[1], size > 0)
                if reply is not None:  # a reply subject (an inbox, unique per request): counted, not remembered
                    if entry[1] is not None:
                        core[entry[1]] = core.get(entry[1], 0) + 1
                    active = active or entry[2]
                    pos += entry[0]
                    continue
                self._remember(line, entry)
            if run and subject is not None:
                core[subject] = core.get(subject, 0) + run
            last = line
            step, subject, act = entry
            run = 1
            pos += step
            if act:
                active = True
        if run and subject is not None:
            core[subject] = core.get(subject, 0) + run
        self._last, self._step, self._subject = last, step, subject
        return pos, active or self.broken


class _Upstream(_Scanner):
    """Service -> server: subscriptions, the CONNECT line, consumer create requests and answers on ack
    subjects (read with their payload); pull requests are not activity, every other publish is."""

    def _scan(self, data: bytes, pos: int, limit: int) -> tuple[int, bool]:
        find = data.find
        starts = data.startswith
        cache = self._cache
        obs = self.conn.observer
        number = self.conn.number
        held_pop, queue = obs._held.pop, obs._answers.append
        clock = obs.clock
        answer = _ANSWER
        last, step = self._last, self._step
        active = False
        while pos < limit:
            if starts(last, pos):
                pos += step
                continue
            m = answer(data, pos)
            if m is not None:
                subject, size = m.groups()
                end = m.end()
                payload = b""
                if size != b"0":
                    start = end
                    end += int(size)
                    if end + 2 > len(data):
                        pos = self._cut(data, pos, False)  # read again with its payload when the rest has come
                        break
                    payload = data[start:end] if end - start <= _NEEDED_PAYLOAD else b""
                if not payload or not payload.lstrip().startswith(b"+WPI"):  # in progress: still held
                    held_pop(subject, None)
                queue((clock, number, subject, payload if len(payload) <= 512 else payload[:512]))
                active = True
                pos = end + 2
                continue
            nl = find(b"\n", pos, pos + MAX_CONTROL_LINE)
            if nl < 0:
                pos = self._cut(data, pos, True)
                break
            line = data[pos:nl + 1]
            entry = cache.get(line)
            if entry is not None:
                last = line
                step = entry[0]
                pos += step
                active = True
                continue
            parts = line.split()
            if not parts:
                pos = nl + 1
                continue
            op = parts[0]
            if op not in _OPS:
                op = op.upper()
            if op == b"PUB" or op == b"HPUB":
                try:
                    size = int(parts[-1])
                except ValueError:
                    size = -1
                if size < 0 or size > MAX_PAYLOAD or len(parts) < 3:
                    self.broken = True  # not NATS (or corrupt): stop reading, never touch the bytes
                    break
                end = nl + 3 + size
                subject = parts[1]
                if not subject.startswith(_WANTS):  # an ordinary publish
                    active = True
                    if len(parts) == (4 if op == b"HPUB" else 3):  # no reply subject: remembered
                        self._remember(line, (end - pos, None, True))
                        last = line
                        step = end - pos
                    pos = end
                    continue
                if subject.startswith(_NEXT):  # a pull request: asking is not activity, what it brings is
                    pos = end
                    continue
                payload = b""
                if size <= _NEEDED_PAYLOAD:
                    if end > len(data):
                        pos = self._cut(data, pos, False)  # read again with its payload when the rest has come
                        break
                    payload = data[nl + 1:nl + 1 + size]
                    if op == b"HPUB":
                        hdr = int(parts[-2]) if len(parts) >= 4 and parts[-2].isdigit() else 0
                        payload = payload[hdr:]
                if subject.startswith(_ACK):  # an answer to a delivery
                    tokens = subject.split(b".")
                    nt = len(tokens)
                    if nt == 9 or nt >= 11:
                        if not payload or not payload.lstrip().startswith(b"+WPI"):  # in progress: still held
                            held_pop(subject, None)
                        queue((clock, number, subject, payload if len(payload) <= 512 else payload[:512]))
                elif size <= _NEEDED_PAYLOAD:
                    self.conn._create(subject, payload)
                active = True
                pos = end
                continue
            if op in _SIZED:  # MSG/HMSG do not come from a client; stepped over all the same
                try:
                    size = int(parts[-1])
                except ValueError:
                    size = -1
                if size < 0 or size > MAX_PAYLOAD or len(parts) < 3:
                    self.broken = True  # not NATS (or corrupt): stop reading, never touch the bytes
                    break
                pos = nl + 3 + size
                active = True
                continue
            pos = nl + 1
            if op == b"SUB" or op == b"UNSUB" or op == b"CONNECT":
                self.conn._control(op, parts, line)
                active = True
        self._last, self._step = last, step
        return pos, active or self.broken


class ConnectionObservation:
    """What one connection through the link showed; created by the proxy for each accepted connection."""

    def __init__(self, observer: WireObserver, number: int) -> None:
        self.observer = observer
        self.number = number
        self.up = _Upstream(self)
        self.down = _Downstream(self, observer.core_received)
        self.closed = False

    def tap(self, direction: str, sink: Any) -> Any:
        """A sink that observes chunks on their way into `sink` (the link's socket end)."""
        return _TapSink(self.up if direction == "upstream" else self.down, sink, self.observer)

    def _emit(self, kind: str, **fields: Any) -> None:
        self.observer._emit({"kind": kind, "conn": self.number, "wall": self.observer.clock, **fields})

    def _create(self, subject: bytes, body: bytes) -> None:
        cfg = _consumer_config(subject.decode("utf-8", "replace"), body)
        self.observer._consumer(cfg)
        self._emit("js_consumer", **cfg)

    def _control(self, op: bytes, parts: list[bytes], line: bytes) -> None:
        if op == b"SUB":
            if len(parts) >= 3:
                queue = parts[2].decode("utf-8", "replace") if len(parts) >= 4 else None
                self._emit("nats_sub", subject=parts[1].decode("utf-8", "replace"), queue=queue,
                           sid=parts[-1].decode("utf-8", "replace"))
        elif op == b"UNSUB":
            if len(parts) >= 2:
                self._emit("nats_unsub", sid=parts[1].decode("utf-8", "replace"),
                           max=int(parts[2]) if len(parts) >= 3 and parts[2].isdigit() else None)
        else:
            info: dict[str, Any] = {}
            try:
                raw = json.loads(line.strip()[len(b"CONNECT"):].strip())
                info = raw if isinstance(raw, dict) else {}
            except ValueError:
                pass
            self._emit("nats_connect", name=info.get("name"), user=info.get("user"),
                       lang=info.get("lang"), version=info.get("version"))

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.observer.read_queued()  # what passed before the close is read first
        self.observer._closed(self)


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


def _ack_fields(reply: str) -> tuple[str, str, int, int, int, int] | None:
    """(stream, consumer, delivered, stream_seq, consumer_seq, pending) of one ack subject (any form)."""
    t = reply.split(".")
    n = len(t)
    if (n != 9 and n < 11) or t[0] != "$JS" or t[1] != "ACK":
        return None
    b = 2 if n == 9 else 4
    try:
        return t[b], t[b + 1], int(t[b + 2]), int(t[b + 3]), int(t[b + 4]), int(t[b + 6])
    except ValueError:
        return None


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
