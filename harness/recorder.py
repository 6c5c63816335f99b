"""The event recorder: every message on the run's NATS, in order, checked against the contracts, lossless.

It connects straight to NATS (never through a fault proxy) and reads

* every JetStream stream with an ordered consumer from sequence 1, so it sees exactly what the streams
  stored, with stream sequences and the server's timestamps, and can prove it missed nothing by comparing
  the highest sequence it saw with the stream's own state at the end;
* every other subject with a core ``>`` subscription (the JetStream API, inboxes and system subjects
  excepted), for core-NATS traffic that no stream captures.

Each message becomes one history record (see docs/checks.md) appended to ``events.jsonl`` in the report
directory, and is validated by the contracts' live validator when one is given. If the recorder falls
behind (a slow-consumer error, a gap in a stream's sequence, fewer messages than the stream holds) it says
so in :attr:`Recorder.problems`, and the run fails instead of passing on partial data.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sagaproof.subjects import matches as subject_matches

_IGNORED_PREFIXES = ("$JS.", "_INBOX.", "$SYS.", "$KV.", "$O.", "_R_.")


class Recorder:
    """Records the run's history; start and stop on the system's event loop."""

    def __init__(self, urls: list[str], history_path: Path, *, t0: float,
                 validator: Any = None, producer_of: Callable[[str], str | None] | None = None,
                 on_message: Callable[[dict[str, Any]], None] | None = None, pending_limit: int = 1_000_000,
                 connect_options: dict[str, Any] | None = None, from_now: bool = False):
        self.urls = urls
        self.connect_options = dict(connect_options or {})  # credentials and TLS of an existing NATS (attach mode)
        # An existing NATS (attach mode) keeps earlier runs' messages in its streams: record only what comes after.
        self.from_now = from_now
        self.base_seq: dict[str, int] = {}
        self.history_path = history_path
        self.t0 = t0  # wall-clock time (time.time()) of the run's start; records carry t = seconds since
        self.validator = validator
        self.producer_of = producer_of or (lambda subject: None)
        self.on_message = on_message
        self.pending_limit = pending_limit
        self.records: list[dict[str, Any]] = []
        self.violations: list[dict[str, Any]] = []
        self.problems: list[str] = []
        self.per_stream: dict[str, int] = {}  # messages recorded per stream, to compare with the stream
        self.last_seq: dict[str, int] = {}
        self.stream_subjects: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        self._file: Any = None
        self._nc: Any = None
        self._seq = 0
        self.messages = 0

    # ------------------------------------------------------------------ records
    def now(self) -> float:
        """Seconds since the run started (the `t` of records)."""
        return time.time() - self.t0

    def add(self, record: dict[str, Any]) -> None:
        """Append a record (message, fault or phase) to the history; thread-safe."""
        with self._lock:
            self._seq += 1
            record.setdefault("seq", self._seq)
            self.records.append(record)
            if self._file is not None:
                self._file.write(json.dumps(record, separators=(",", ":"), default=str) + "\n")

    def _on_message(self, subject: str, data: bytes, headers: dict[str, str] | None, stream: str | None,
                    stream_seq: int | None, t: float) -> None:
        try:
            parsed = json.loads(data) if data else None
        except ValueError:
            parsed = None
        producer = self.producer_of(subject)
        record: dict[str, Any] = {
            "kind": "message", "t": round(t, 6), "subject": subject, "stream": stream, "stream_seq": stream_seq,
            "producer": producer, "headers": dict(headers or {}), "data": parsed, "size": len(data),
        }
        if parsed is None and data:
            record["raw"] = data[:2048].decode("utf-8", "replace")
        self.add(record)
        self.messages += 1
        if self.validator is not None:
            for v in self.validator.validate(subject, data, headers):
                d = v.to_dict() if hasattr(v, "to_dict") else dict(v.__dict__)
                d.setdefault("t", record["t"])
                d.setdefault("seq", record["seq"])
                self.violations.append(d)
        if self.on_message is not None:
            self.on_message(record)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Connect, subscribe to every stream and to core traffic; returns once subscribed."""
        import nats

        self.history_path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.history_path, "w", buffering=1, encoding="utf-8")

        async def error_cb(exc: Exception) -> None:
            if "slow consumer" in str(exc).lower() or type(exc).__name__ == "SlowConsumerError":
                self.problems.append(f"the recorder fell behind (slow consumer: {exc}); messages may be missing")

        self._nc = await nats.connect(servers=self.urls, error_cb=error_cb, max_reconnect_attempts=-1,
                                      reconnect_time_wait=0.2, pending_size=256 * 1024 * 1024, name="sagaproof-recorder",
                                      **self.connect_options)
        js = self._nc.jetstream()
        streams = await js.streams_info()
        for info in streams:
            name = info.config.name
            self.stream_subjects[name] = list(info.config.subjects or [])
            base = info.state.last_seq if self.from_now else 0
            self.base_seq[name] = base
            self.last_seq[name] = base
            start_at = None
            if base:
                from nats.js.api import ConsumerConfig, DeliverPolicy

                start_at = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=base + 1)

            def make_cb(stream: str) -> Callable[[Any], Any]:
                async def cb(msg: Any) -> None:
                    # The ordered consumer re-creates itself on a gap; a gap that stays shows in drain().
                    seq = msg.metadata.sequence.stream
                    self.last_seq[stream] = max(self.last_seq.get(stream, 0), seq)
                    self.per_stream[stream] = self.per_stream.get(stream, 0) + 1
                    ts = msg.metadata.timestamp.timestamp() if msg.metadata.timestamp else time.time()
                    self._on_message(msg.subject, msg.data, msg.headers, stream, seq, ts - self.t0)
                return cb

            await js.subscribe(">", stream=name, ordered_consumer=True, cb=make_cb(name), config=start_at,
                               pending_msgs_limit=self.pending_limit, pending_bytes_limit=512 * 1024 * 1024)

        async def core_cb(msg: Any) -> None:
            subject = msg.subject
            if subject.startswith(_IGNORED_PREFIXES):
                return
            for subjects in self.stream_subjects.values():
                if any(subject_matches(p, subject) for p in subjects):
                    return  # recorded from its stream, with its sequence
            self._on_message(subject, msg.data, msg.headers, None, None, self.now())

        await self._nc.subscribe(">", cb=core_cb, pending_msgs_limit=self.pending_limit,
                                 pending_bytes_limit=512 * 1024 * 1024)
        await self._nc.flush()

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait until every stream's last sequence has been recorded, then verify nothing was lost."""
        js = self._nc.jetstream()
        deadline = time.monotonic() + timeout
        targets: dict[str, tuple[int, int]] = {}
        for name in list(self.last_seq):
            try:
                info = await js.stream_info(name)
                targets[name] = (info.state.last_seq, info.state.messages)
            except Exception as exc:  # noqa: BLE001
                self.problems.append(f"could not read the state of stream {name} to cross-check the recorder ({exc})")
        while time.monotonic() < deadline and any(self.last_seq.get(n, 0) < last for n, (last, _) in targets.items()):
            await asyncio.sleep(0.02)
        await self._nc.flush()
        for name, (last, count) in targets.items():
            got = self.last_seq.get(name, 0)
            if got < last:
                self.problems.append(f"the recorder saw stream {name} up to sequence {got} but the stream holds "
                                     f"sequence {last}; the history is incomplete, so the run cannot pass")
            recorded = self.per_stream.get(name, 0)
            count = min(count, last - self.base_seq.get(name, 0))  # only what arrived since the recording began
            if recorded < count:
                self.problems.append(f"the recorder holds {recorded} messages of stream {name} but the stream "
                                     f"holds {count}; the history is incomplete, so the run cannot pass")

    async def stop(self) -> None:
        """Close the connection and rewrite the history sorted by time; idempotent."""
        if self._nc is not None:
            nc, self._nc = self._nc, None
            try:
                await nc.close()
            except Exception:  # noqa: BLE001
                pass
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
            self.records.sort(key=lambda r: (r.get("t", 0.0), r.get("seq", 0)))
            tmp = self.history_path.with_suffix(".tmp")
            with open(tmp, "w", encoding="utf-8") as f:
                for r in self.records:
                    f.write(json.dumps(r, separators=(",", ":"), default=str) + "\n")
            tmp.replace(self.history_path)
