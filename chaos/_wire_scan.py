"""The NATS client protocol scanner of the wire observer (:mod:`sagaproof.chaos.observe`): what each direction of a
service's link carries, read from its control lines on the data path (payloads it does not need are skipped,
never copied; a stream that is not NATS is given up on)."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sagaproof.chaos.observe import WireObserver

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

    def _scan(self, data: bytes, pos: int, limit: int) -> tuple[int, bool]:  # noqa: C901, PLR0912, PLR0915 - the data path: one loop, no calls per frame (issue 25)
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

    def _scan(self, data: bytes, pos: int, limit: int) -> tuple[int, bool]:  # noqa: C901, PLR0912, PLR0915 - the data path: one loop, no calls per frame (issue 25)
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
