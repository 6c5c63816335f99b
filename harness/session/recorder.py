"""The event recorder: every message on the run's NATS, in order, checked against the contracts, lossless.

It connects straight to NATS (never through a fault proxy) and reads

* every JetStream stream with an ordered consumer from sequence 1, so it sees exactly what the streams
  stored, with stream sequences and the server's timestamps, and can prove it missed nothing by comparing
  the highest sequence it saw with the stream's own state at the end;
* every other subject with a core ``>`` subscription (the JetStream API, inboxes, system subjects and the
  streams' own subjects excepted), for core-NATS traffic that no stream captures.

Each message is emitted as a :class:`~harness.events.MessageRecorded` event (the history writes it to
``events.jsonl``; the recorder keeps no copy), and is validated by the contracts' live validator when one is
given (a :class:`~harness.events.ContractViolated` event per violation). The recorder survives broker
restarts and reconnects: its connections reconnect forever, and its ordered consumers notice a silent
stream within a second (short idle heartbeats) and resume from the next sequence they have not seen. If it
falls behind (a slow-consumer error, a gap in a stream's sequence, fewer messages than the stream holds)
or cannot record a message, it says so (:attr:`Recorder.problems` and a
:class:`~harness.events.RecorderProblem` event), and the run fails instead of passing on partial data.

It keeps up with the streams (``benchmarks/recorder_throughput.py`` measures it against a bare nats-py
consumer): a stream's messages are recorded as nats-py parses them, without a queue and a callback task per
message; each payload is parsed once (orjson where it reads exactly as ``json.loads`` does), shared by the
event, the validator (a per-subject check that the message conforms, details only for one that does not)
and the history (which writes the payload's own JSON text); the core subscription leaves what it ignores
before nats-py builds a message object, and with embedded NATS it connects as a user the server never
sends stream messages or JetStream deliveries (JetStream delivers a stream message under its own subject,
so a ``>`` subscription would otherwise receive each one twice more: published, and delivered).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from typing import Any

from sagaproof.harness.events import ContractViolated, Event, MessageRecorded, RecorderProblem

from sagaproof.subjects import matches as subject_matches

_IGNORED_PREFIXES = ("$JS.", "_INBOX.", "$SYS.", "$KV.", "$O.", "_R_.")
_IGNORED_PREFIXES_B = tuple(p.encode() for p in _IGNORED_PREFIXES)
IDLE_HEARTBEAT = 0.5  # seconds; an ordered consumer that misses two resumes from its next sequence
_CACHE_LIMIT = 100_000  # distinct subjects remembered (subjects with ids in them are unbounded)

__all__ = ["Recorder", "subject_matches"]


def _consumed_on_read(cfg: Any) -> bool:
    """Whether a consumer of the recorder's own on this stream would be refused or take messages from the
    services: a work queue (JetStream allows one consumer per subject there, acknowledging explicitly)."""
    retention = getattr(cfg, "retention", None)
    return str(getattr(retention, "value", retention)).lower() == "workqueue"

_V1_TOKENS = 9  # tokens of a JetStream delivery's reply subject without domain and account hash

_fast_loads: Callable[[bytes], Any] | None
try:
    from orjson import JSONDecodeError as _FastDecodeError
    from orjson import loads as _fast_loads
except ImportError:  # pragma: no cover - a dependency; without it json.loads reads every payload
    _fast_loads = None
# orjson reads integers beyond 64 bits as floats where json.loads keeps them exact: a payload with a run of 19
# or more digits anywhere (strings included, to be safe) is read by json.loads. One pass over the payload's
# bytes answers that and whether it is printable ASCII: digits become "0", other printable ASCII "a", every
# other byte 1 (a regular expression would cost as much as orjson saves).
_CLASSES = bytes(0x30 if 0x30 <= b <= 0x39 else 0x61 if 0x20 <= b <= 0x7E else 1 for b in range(256))
_LONG_RUN = b"0" * 19


def _parse(data: bytes) -> tuple[Any, str | None]:
    """``(json.loads(data), text)``: the same value and the same errors (ValueError) as ``json.loads``, about
    four times faster (orjson reads what it reads exactly as json.loads does; what it refuses or might read
    differently - NaN, numbers beyond 64 bits or a double's range, UTF-16, a BOM, lone surrogates - goes to
    json.loads); ``text`` is the payload as a str when it can stand in a JSON line as it is (printable ASCII:
    no line breaks, control characters or other encodings), else None."""
    scan = data.translate(_CLASSES)
    value: Any
    if _fast_loads is not None and _LONG_RUN not in scan:
        try:
            value = _fast_loads(data)
        except _FastDecodeError:
            value = json.loads(data)
    else:
        value = json.loads(data)
    return value, (data.decode("ascii") if b"\x01" not in scan else None)


def _client_class() -> type:
    """nats-py's client, with one shortcut: the core ``>`` subscription's messages that the recorder leaves
    alone anyway (JetStream deliveries and API traffic, inboxes, subjects that streams store) are dropped
    before nats-py builds a message object and queues it for the callback. Everything else is nats-py's own
    path; if nats-py ever stops calling ``_process_msg``, the callback's own check still skips them."""
    global _CLIENT
    if _CLIENT is None:
        from nats.aio.client import Client

        class RecorderClient(Client):
            _skip_sid: int | None = None
            _skip: Callable[[bytes], bool] | None = None

            def skip_for(self, sid: int, skip: Callable[[bytes], bool]) -> None:
                self._skip, self._skip_sid = skip, sid

            async def _process_msg(self, sid: int, subject: bytes, reply: bytes, data: bytes,
                                   headers: bytes) -> None:
                if sid == self._skip_sid and self._skip is not None and self._skip(subject):
                    self.stats["in_msgs"] += 1
                    self.stats["in_bytes"] += len(data)
                    return
                await super()._process_msg(sid, subject, reply, data, headers)

        _CLIENT = RecorderClient
    return _CLIENT


_CLIENT: type | None = None


class _Direct:
    """Stands in for a JetStream subscription's pending queue: each message nats-py hands over is recorded
    at once, in the task that reads the socket, instead of being queued for a task that awaits a callback.
    A stream's messages cannot be dropped by the recorder this way (nothing queues up to overflow; a
    recorder that is slow slows the stream's delivery through JetStream flow control), and nats-py's
    ordered-consumer bookkeeping (sequences, flow control, heartbeats, resets) runs before this as it did.
    Only the queue operations nats-py uses on a subscription with a callback are provided."""

    def __init__(self, sub: Any, handle: Callable[[Any], None], failed: Callable[[BaseException], None]):
        self._sub = sub
        self._handle = handle
        self._failed = failed

    def put_nowait(self, msg: Any) -> None:
        self._sub._pending_size -= len(msg.data)  # what nats-py's queue reader does when it takes a message
        try:
            self._handle(msg)
        except Exception as exc:  # noqa: BLE001 - never into nats-py's reading task; the run learns of it
            self._failed(exc)

    def qsize(self) -> int:
        return 0

    def empty(self) -> bool:
        return True

    def full(self) -> bool:
        return False

    def task_done(self) -> None:
        pass

    async def join(self) -> None:
        return None

    async def get(self) -> Any:
        await asyncio.get_running_loop().create_future()  # never: nothing waits in this queue

    def get_nowait(self) -> Any:
        raise asyncio.QueueEmpty


def _deliver_directly(psub: Any, handle: Callable[[Any], None], failed: Callable[[BaseException], None]) -> bool:
    """Record a JetStream subscription's messages as nats-py parses them (see :class:`_Direct`). Messages
    queued before the switch are recorded first, in order. If nats-py's subscription does not look as
    expected, nothing changes (its callback records them, a little slower); returns whether it switched."""
    sub: Any = getattr(psub, "_sub", None)
    queue = getattr(sub, "_pending_queue", None)
    if sub is None or not isinstance(queue, asyncio.Queue) or not isinstance(getattr(sub, "_pending_size", None), int):
        return False
    sub._pending_queue = _Direct(sub, handle, failed)
    while not queue.empty():  # arrived before the switch: in order, before any that come after it
        msg = queue.get_nowait()
        sub._pending_size -= len(msg.data)
        try:
            handle(msg)
        except Exception as exc:  # noqa: BLE001
            failed(exc)
        queue.task_done()
    return True


class Recorder:
    """Records the run's history by emitting events; start and stop on the system's event loop.

    Args:
        urls: NATS URLs (direct, with credentials).
        emit: where events go (the run's ``EventBus.emit``).
        validator: a ``contracts.LiveValidator``, or None.
        producer_of: subject -> the one service that declares sending it, or None.
        on_message: called with each :class:`MessageRecorded` (after it was emitted), e.g. to track sagas.
        connect_options: credentials and TLS of an existing NATS (attach mode).
        from_now: record only what arrives after the start (an existing NATS keeps earlier runs' messages).
        core: ``(urls, denied)``: where the core ``>`` subscription connects (a second connection), as a user
            the server never sends the ``denied`` subjects (embedded NATS: ``System.recorder_core``), so that
            stream messages do not reach it at all. Used only when every denied subject that is not JetStream's
            or an inbox's is stored by a stream the recorder reads (else a message could be neither stored
            nor seen); otherwise, and with None, the core subscription shares the streams' connection and the
            recorder leaves those subjects out itself.
    """

    def __init__(self, urls: list[str], emit: Callable[[Event], None], *, validator: Any = None,
                 producer_of: Callable[[str], str | None] | None = None,
                 on_message: Callable[[MessageRecorded], None] | None = None, pending_limit: int = 1_000_000,
                 connect_options: dict[str, Any] | None = None, from_now: bool = False,
                 core: tuple[list[str], list[str]] | None = None):
        self.urls = urls
        self.emit = emit
        self.connect_options = dict(connect_options or {})
        self.from_now = from_now
        self.base_seq: dict[str, int] = {}
        self.validator = validator
        self.producer_of = producer_of or (lambda subject: None)
        self.on_message = on_message
        self.pending_limit = pending_limit
        self.problems: list[str] = []
        self.violations = 0
        self.per_stream: dict[str, int] = {}  # messages recorded per stream, to compare with the stream
        self.last_seq: dict[str, int] = {}
        self.cross_checked: set[str] = set()  # the streams whose state the last drain compared the history with
        self.stream_subjects: dict[str, list[str]] = {}
        # Streams read as their messages are published (the core subscription), never through a consumer of the
        # recorder's: a work queue, where a consumer of its own would be refused or take messages from the
        # services. Their messages are counted to cross-check with the stream's sequence at the end.
        self.published_streams: dict[str, list[str]] = {}
        self.published: dict[str, int] = {}
        self._published_of: dict[str, str | None] = {}
        self.work_queues: dict[str, dict[str, Any]] = {}  # at drain: each work queue's sequences and leftovers
        self.late_streams: dict[str, list[str]] = {}  # created by the services after the recording began
        # Streams that copy others (a mirror, sources): facts, not read (their messages are recorded once, from
        # where they were published).
        self.copies: dict[str, dict[str, Any]] = {}
        self.reconnects = 0
        self.messages = 0
        self.last_message_at = time.monotonic()
        self._lock = threading.Lock()
        self._nc: Any = None
        self._core_nc: Any = None
        self.core = core
        self.core_connection = False  # whether the core subscription has its own, server-filtered connection
        self._producers: dict[str, str | None] = {}
        self._skip_cache: dict[bytes, bool] = {}
        # a validator that can take the body the recorder parsed already (contracts.LiveValidator)
        self._validator_takes_body = bool(getattr(validator, "accepts_parsed_body", False))
        self._has_quick = callable(getattr(validator, "quick", None))  # per-subject fast "conforms" check
        self._quick: dict[str, Any] = {}

    # ------------------------------------------------------------------ records
    def _problem(self, text: str) -> None:
        with self._lock:
            if text in self.problems:
                return
            self.problems.append(text)
        self.emit(RecorderProblem(text))

    def _producer(self, subject: str) -> str | None:
        try:
            return self._producers[subject]
        except KeyError:
            if len(self._producers) > _CACHE_LIMIT:
                self._producers.clear()
            who = self._producers[subject] = self.producer_of(subject)
            return who

    def _on_message(self, subject: str, data: bytes, headers: dict[str, str] | None, stream: str | None,
                    stream_seq: int | None, at: float) -> None:
        # The payload is parsed once: the event carries it, the validator checks it, and when its text can
        # stand in a JSON line unchanged the history writes that text instead of serialising it again.
        parsed: Any = None
        text: str | None = None
        raw: str | None = None
        ok = False
        if data:
            try:
                parsed, text = _parse(data)
                ok = True
            except ValueError:
                raw = data[:2048].decode("utf-8", "replace")
        event = MessageRecorded.fast(subject, stream, stream_seq, self._producer(subject),
                                     dict(headers) if headers else {}, parsed, len(data), raw, at, text)
        self.messages += 1
        self.last_message_at = time.monotonic()
        self.emit(event)
        validator = self.validator
        if validator is not None:
            quick: Any = None
            violations: Any
            if ok and self._has_quick:
                try:
                    quick = self._quick[subject]
                except KeyError:
                    if len(self._quick) > _CACHE_LIMIT:
                        self._quick.clear()
                    quick = self._quick[subject] = validator.quick(subject)
            if quick is not None and quick(parsed):
                violations = ()  # conforms: the validator would find nothing
            elif ok and self._validator_takes_body:
                violations = validator.validate(subject, data, headers, body=parsed)
            else:
                violations = validator.validate(subject, data, headers)
            for v in violations:
                d: dict[str, Any] = v.to_dict() if hasattr(v, "to_dict") else dict(v.__dict__)
                d.setdefault("stream", stream)
                d.setdefault("stream_seq", stream_seq)
                self.violations += 1
                self.emit(ContractViolated(d, at=at))
        if self.on_message is not None:
            self.on_message(event)

    def _skip_core(self, subject: bytes) -> bool:
        """Whether the core ``>`` subscription leaves a subject alone: the JetStream API and deliveries,
        inboxes, system subjects, and subjects a stream stores (recorded from the stream, with its sequence)."""
        try:
            return self._skip_cache[subject]
        except KeyError:
            pass
        if subject.startswith(_IGNORED_PREFIXES_B):
            skip = True  # not cached: inbox subjects are unique
        else:
            text = subject.decode("utf-8", "replace")
            skip = any(subject_matches(p, text) for subjects in self.stream_subjects.values() for p in subjects)
            if len(self._skip_cache) > _CACHE_LIMIT:
                self._skip_cache.clear()
            self._skip_cache[subject] = skip
        return skip

    def _covered(self, denied: list[str]) -> bool:
        """Whether every denied subject is ignored anyway or stored by one of the streams being read."""
        patterns = [p for subjects in self.stream_subjects.values() for p in subjects]
        for d in denied:
            if d.startswith(_IGNORED_PREFIXES):
                continue
            wide = ">" in d.split(".")
            if not any(p == d or ((not wide or p.split(".")[-1] == ">") and subject_matches(p, d)) for p in patterns):
                return False
        return True

    def _stream_error(self, stream: str) -> Callable[[BaseException], None]:
        def failed(exc: BaseException) -> None:
            self._problem(f"the recorder could not record a message of stream {stream} ({type(exc).__name__}: "
                          f"{exc}); the history is incomplete, so the run cannot pass")
        return failed

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Connect, subscribe to every stream and to core traffic; returns once subscribed."""

        async def error_cb(exc: Exception) -> None:
            if "slow consumer" in str(exc).lower() or type(exc).__name__ == "SlowConsumerError":
                self._problem(f"the recorder fell behind (slow consumer: {exc}); messages may be missing")

        async def reconnected_cb() -> None:
            self.reconnects += 1

        async def connect(urls: list[str], name: str, cls: type) -> Any:
            nc = cls()
            await nc.connect(servers=urls, error_cb=error_cb, reconnected_cb=reconnected_cb,
                             max_reconnect_attempts=-1, reconnect_time_wait=0.2,
                             pending_size=256 * 1024 * 1024, name=name, **self.connect_options)
            return nc

        from nats.aio.client import Client

        core_apart = self.core is not None
        # the core subscription's connection gets the client that drops what it leaves alone early
        self._nc = await connect(self.urls, "sagaproof-recorder", Client if core_apart else _client_class())
        js = self._nc.jetstream()
        streams = await js.streams_info()
        for info in streams:
            await self._subscribe_stream(js, info)

        published_of = self._published_stream if self.published_streams else None

        async def core_cb(msg: Any) -> None:
            subject = msg.subject
            if self._skip_core(subject.encode()):
                return  # only reached when the client could not leave it out before building the message
            reply = msg.reply
            if reply and reply.startswith("$JS.ACK."):
                return  # a JetStream delivery to a service (of a stream not read from its own consumer), not a publish
            if published_of is not None:
                stream = published_of(subject)
                if stream is not None:
                    self.published[stream] += 1
            self._on_message(subject, msg.data, msg.headers, None, None, time.time())

        if self.core is not None and self._covered(self.core[1]):
            self._core_nc = await connect(self.core[0], "sagaproof-recorder-core", _client_class())
            self.core_connection = True

        core = self._core_nc or self._nc
        sub = await core.subscribe(">", cb=core_cb, pending_msgs_limit=self.pending_limit,
                                   pending_bytes_limit=512 * 1024 * 1024)
        if hasattr(core, "skip_for"):  # (not if the filtered user could not be used after all: core_cb skips)
            core.skip_for(sub._id, self._skip_core)
        await core.flush()
        if core is not self._nc:
            await self._nc.flush()

    @property
    def connections(self) -> list[Any]:
        """Its NATS connections (a restarted broker holds the services until these are back: env.links)."""
        return [nc for nc in (self._nc, self._core_nc) if nc is not None]

    async def _subscribe_stream(self, js: Any, info: Any) -> None:
        """Read one stream from its ordered consumer (a mirror or source, or a stream consumed on read, is
        noted and left to other means)."""
        name = info.config.name
        cfg = info.config
        if cfg.mirror is not None or cfg.sources:
            self.copies[name] = {"mirror": getattr(cfg.mirror, "name", None),
                                 "sources": [getattr(src, "name", None) for src in cfg.sources or []]}
            return
        base = info.state.last_seq if self.from_now else 0
        if _consumed_on_read(cfg):
            self.published_streams[name] = list(cfg.subjects or [])
            self.published[name] = 0
            self.base_seq[name] = base
            return
        self.stream_subjects[name] = list(cfg.subjects or [])
        self.base_seq[name] = base
        self.last_seq[name] = base
        start_at = None
        if base:
            from nats.js.api import ConsumerConfig, DeliverPolicy

            start_at = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=base + 1)

        on_msg = self._stream_handler(name)

        async def cb(msg: Any, on_msg: Callable[[Any], None] = on_msg) -> None:
            on_msg(msg)

        psub = await js.subscribe(">", stream=name, ordered_consumer=True, cb=cb, config=start_at,
                                  idle_heartbeat=IDLE_HEARTBEAT,
                                  pending_msgs_limit=self.pending_limit, pending_bytes_limit=512 * 1024 * 1024)
        _deliver_directly(psub, on_msg, self._stream_error(name))

    def _stream_handler(self, stream: str) -> Callable[[Any], None]:
        """What is done with each message the ordered consumer of `stream` delivers (the data path)."""
        per_stream = self.per_stream
        last_seq = self.last_seq
        record = self._on_message

        def handle(msg: Any) -> None:
            # The ordered consumer re-creates itself on a gap or after missed heartbeats (a broker
            # restart), from the next sequence it has not delivered; a gap that stays shows in drain().
            tokens = msg.reply.split(".")
            if len(tokens) == _V1_TOKENS:  # $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ns>.<pending>
                seq = int(tokens[5])
                ts = int(tokens[7]) / 1e9
            else:  # with a domain and account hash: let nats-py read it
                md = msg.metadata
                seq = md.sequence.stream
                ts = md.timestamp.timestamp() if md.timestamp else time.time()
            if seq <= last_seq.get(stream, 0):
                return  # delivered again after a consumer reset: recorded already
            last_seq[stream] = seq
            per_stream[stream] = per_stream.get(stream, 0) + 1
            record(msg.subject, msg.data, msg.headers, stream, seq, ts)
        return handle

    async def _late_streams(self, js: Any) -> None:
        """Streams the services created after the recording began: their messages were recorded from their
        publishes (the core subscription); a work queue among them is judged from its sequences like the others."""
        try:
            infos = await js.streams_info()
        except Exception:  # noqa: BLE001 - the broker may be away; the known streams are still cross-checked
            return
        known = set(self.stream_subjects) | set(self.published_streams) | set(self.copies)
        for info in infos:
            name = info.config.name
            if name in known:
                continue
            self.late_streams[name] = list(info.config.subjects or [])
            if _consumed_on_read(info.config):
                self.published_streams[name] = list(info.config.subjects or [])
                self.base_seq[name] = 0  # (its publishes were not counted: no count to cross-check)

    def _published_stream(self, subject: str) -> str | None:
        """The work-queue stream that stores ``subject`` (read from its publishes), if any."""
        try:
            return self._published_of[subject]
        except KeyError:
            found = next((name for name, ps in self.published_streams.items()
                          if any(subject_matches(p, subject) for p in ps)), None)
            if len(self._published_of) > _CACHE_LIMIT:
                self._published_of.clear()
            self._published_of[subject] = found
            return found

    async def drain(self, timeout: float = 15.0) -> None:
        """Wait until every stream's last sequence has been recorded, then verify nothing was lost."""
        if self._nc is None:
            return
        js = self._nc.jetstream()
        deadline = time.monotonic() + timeout
        await self._late_streams(js)
        targets: dict[str, tuple[int, int]] = {}
        for name in list(self.last_seq):
            while True:
                try:
                    info = await js.stream_info(name)
                    targets[name] = (info.state.last_seq, info.state.messages)
                    break
                except Exception as exc:  # noqa: BLE001 - the broker may be coming back from a restart
                    if time.monotonic() >= deadline:
                        self._problem(f"could not read the state of stream {name} to cross-check the recorder "
                                      f"({exc}); the history may be incomplete")
                        break
                    await asyncio.sleep(0.2)
        while time.monotonic() < deadline and any(self.last_seq.get(n, 0) < last for n, (last, _) in targets.items()):
            await asyncio.sleep(0.02)
        for nc in (self._nc, self._core_nc):
            if nc is None:
                continue
            try:
                await nc.flush(timeout=5)
            except Exception:  # noqa: BLE001 - a flush that fails shows as missing messages below
                pass
        for name in list(self.published_streams):
            try:
                info = await js.stream_info(name)
            except Exception as exc:  # noqa: BLE001 - the broker may be down: say so, never end the run
                self._problem(f"could not read the state of work-queue stream {name} to cross-check the recorder "
                              f"({exc}); the history may be incomplete")
                continue
            stored = info.state.last_seq - self.base_seq.get(name, 0)
            self.work_queues[name] = await _queue_state(js, name, info, self.base_seq.get(name, 0))
            if name not in self.published:
                continue  # created after the recording began: its publishes were recorded, not counted
            wait_until = min(deadline, time.monotonic() + 5)
            while self.published.get(name, 0) < stored and time.monotonic() < wait_until:
                await asyncio.sleep(0.02)
            if self.published.get(name, 0) < stored:
                self._problem(f"the recorder saw {self.published.get(name, 0)} messages published on work-queue "
                              f"stream {name} but the stream stored {stored}; the history is incomplete, so the "
                              f"run cannot pass")
        for name, (last, count) in targets.items():
            self.cross_checked.add(name)
            got = self.last_seq.get(name, 0)
            if got < last:
                self._problem(f"the recorder saw stream {name} up to sequence {got} but the stream holds "
                              f"sequence {last}; the history is incomplete, so the run cannot pass")
            recorded = self.per_stream.get(name, 0)
            count = min(count, last - self.base_seq.get(name, 0))  # only what arrived since the recording began
            if recorded < count:
                self._problem(f"the recorder holds {recorded} messages of stream {name} but the stream "
                              f"holds {count}; the history is incomplete, so the run cannot pass")

    async def stop(self) -> None:
        """Close the connection; idempotent."""  # (see _queue_state below for the work queues' end state)
        for attr in ("_core_nc", "_nc"):
            nc = getattr(self, attr)
            if nc is None:
                continue
            setattr(self, attr, None)
            try:
                await nc.close()
            except Exception:  # noqa: BLE001
                pass


LEFTOVERS_READ = 2000  # messages still in a work queue at the end that are read (without consuming them)


async def _queue_state(js: Any, name: str, info: Any, base: int) -> dict[str, Any]:
    """A work queue at the end of a run, read without consuming anything: its sequences (every one from
    ``base + 1`` to ``last_seq`` was stored) and the messages still in it (never acknowledged, or left by a
    limit), each read by sequence (``STREAM.MSG.GET``), at most :data:`LEFTOVERS_READ` of them."""
    state = info.state
    leftovers: list[dict[str, Any]] = []
    seq = max(state.first_seq or 0, base + 1)
    tries = 0
    while seq <= state.last_seq and len(leftovers) < min(state.messages, LEFTOVERS_READ) and tries < 4 * LEFTOVERS_READ:
        tries += 1
        try:
            msg = await js.get_msg(name, seq)
        except Exception:  # noqa: BLE001 - acknowledged (removed) since: not a leftover
            seq += 1
            continue
        data: Any = None
        try:
            data = json.loads(msg.data) if msg.data else None
        except ValueError:
            pass
        leftovers.append({"seq": seq, "subject": msg.subject, "data": data})
        seq += 1
    return {"stream": name, "retention": "workqueue", "first_seq": base + 1, "last_seq": state.last_seq,
            "messages": state.messages, "leftovers": leftovers,
            "limits": {"max_age": getattr(info.config, "max_age", None), "max_msgs": getattr(info.config, "max_msgs", None),
                       "max_bytes": getattr(info.config, "max_bytes", None)}}
