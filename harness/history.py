"""The run's history: the engine's events, streamed to ``events.jsonl`` as they happen, read back incrementally.

:class:`History` is an :class:`~harness.events.EventBus` listener. Each event becomes one JSON line (its
:meth:`~harness.events.Event.to_record`: ``{"kind", "t", "seq", ...}``, ``kind`` first), written at once, so
the harness holds no copy of the history in memory and a run's memory stays flat however long it runs.
Readers (:meth:`History.records`, :class:`HistoryReader`) stream the file back, a line at a time, and can skip
the kinds they do not want without parsing them.

Writes are batched (lines joined, a buffered file): a reader's view flushes first, so it sees every record
written before it began; records reach the file at least every :data:`FLUSH_INTERVAL` seconds while records
come, and at :meth:`History.close`. A :class:`~harness.events.MessageRecorded` that carries its payload's
JSON text is written from that text (the same record as serialising its parsed ``data``, without the cost).

Records arrive almost in time order (messages carry the server's timestamp, a recorder that reconnects
after a broker restart replays older messages). :meth:`History.close` sorts the file by ``(t, seq)`` with a
bounded-memory external merge sort when anything came out of order, so the file a report or a replay reads
is in time order. The record kinds and their fields are described in ``docs/history.md`` and in the JSON
Schema ``docs/report.schema.json`` (``$defs/record``).
"""

from __future__ import annotations

import heapq
import itertools
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from sagaproof.harness.events import Event, MessageRecorded

__all__ = ["HISTORY_VERSION", "History", "HistoryReader", "read_records", "sort_history"]

HISTORY_VERSION = 1
_SORT_CHUNK = 5_000  # records held in memory at once by the external sort
_BUFFER = 256 * 1024  # bytes of records buffered before a write to the file
_BATCH = 256  # lines joined into one write to the file object
FLUSH_INTERVAL = 0.5  # seconds: buffered records reach the file at least this often while records come


try:
    import orjson as _orjson
except ImportError:  # pragma: no cover - a dependency; without it every record goes through json.dumps
    _orjson = None  # type: ignore[assignment]
else:
    _ORJSON_OPTIONS = _orjson.OPT_NON_STR_KEYS | _orjson.OPT_PASSTHROUGH_DATETIME | _orjson.OPT_PASSTHROUGH_DATACLASS


def _dump(record: dict[str, Any]) -> str:
    """One record as compact JSON, ASCII only (as ``json.dumps(..., separators=(",", ":"), default=str)``
    writes it). orjson writes most records about ten times faster (a run's ``wire`` records hold thousands of
    rows); a record it would write differently (text beyond ASCII, an integer beyond 64 bits) goes through
    json.dumps."""
    if _orjson is not None:
        try:
            data = _orjson.dumps(record, default=str, option=_ORJSON_OPTIONS)
        except TypeError:
            pass
        else:
            if data.isascii():
                return data.decode("ascii")
    return json.dumps(record, separators=(",", ":"), default=str)


# 20 digits in a row: a number orjson might read as a float (an integer beyond 64 bits). Found by mapping every
# digit to "0" and everything else to " " (bytes.translate) and looking for twenty zeros: about five times
# cheaper than a regular expression, and a third of the parse itself.
_DIGITS = bytes(48 if 48 <= i <= 57 else 32 for i in range(256))
_LONG = b"0" * 20


def _loads(line: bytes) -> Any:
    """One JSON line, parsed by orjson (about four times faster than json.loads). What orjson refuses and json
    reads (NaN, text that is not UTF-8) goes through json.loads, and so does a line with 20 digits in a row
    (orjson reads an integer beyond 64 bits as a float; json keeps it exact)."""
    if _orjson is not None and _LONG not in line.translate(_DIGITS):
        try:
            return _orjson.loads(line)
        except _orjson.JSONDecodeError:
            pass
    return json.loads(line)


def _prefixes(kinds: Iterable[str] | None) -> tuple[bytes, ...] | None:
    if kinds is None:
        return None
    # compact (what History writes) and json.dumps' default spacing (a history written by other tools)
    return tuple(p.encode() for k in kinds for p in ('{"kind":' + json.dumps(k) + ",", '{"kind": ' + json.dumps(k) + ", "))


def read_records(path: str | Path, *, kinds: Iterable[str] | None = None, since: float | None = None,
                 until: float | None = None, limit_bytes: int | None = None) -> Iterator[dict[str, Any]]:
    """Stream the records of a history file; ``kinds`` skips other kinds without parsing them.

    ``since``/``until`` bound ``t`` (inclusive/exclusive); ``limit_bytes`` stops at that offset (what was
    written when the read began, so a reader never sees a half-written line).
    """
    prefixes = _prefixes(kinds)
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return
    loads = _orjson.loads if _orjson is not None else json.loads
    decode_error = _orjson.JSONDecodeError if _orjson is not None else ValueError
    with f:
        read = 0
        for line in f:
            if limit_bytes is not None:
                read += len(line)
                if read > limit_bytes:
                    return
            if prefixes is not None and not line.startswith(prefixes):
                continue
            if len(line) < 3:
                continue
            # _loads, inlined: this runs once per record
            if _LONG in line.translate(_DIGITS):
                rec = json.loads(line)
            else:
                try:
                    rec = loads(line)
                except decode_error:
                    rec = json.loads(line)
            if since is not None or until is not None:
                t = rec.get("t", 0.0)
                if since is not None and t < since:
                    continue
                if until is not None and t >= until:
                    continue
            yield rec


class HistoryReader:
    """A re-iterable view of a history file: each ``iter()`` streams the file again from the start."""

    def __init__(self, path: str | Path, *, kinds: Iterable[str] | None = None, since: float | None = None,
                 until: float | None = None, before_read: Callable[[], int | None] | None = None):
        self.path = Path(path)
        self.kinds = tuple(kinds) if kinds is not None else None
        self.since = since
        self.until = until
        self._before_read = before_read  # returns the byte size safe to read (the writer flushes first)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        limit = self._before_read() if self._before_read is not None else None
        return read_records(self.path, kinds=self.kinds, since=self.since, until=self.until, limit_bytes=limit)

    def of(self, *kinds: str) -> HistoryReader:
        """The same history, only records of these kinds."""
        return HistoryReader(self.path, kinds=kinds, since=self.since, until=self.until,
                             before_read=self._before_read)


class History:
    """Writes the engine's events to ``events.jsonl`` as they happen; subscribe it to the run's bus.

    Args:
        path: the history file (truncated).
        t0: wall-clock time (``time.time()``) of the run's start; records carry ``t`` = seconds since.
    """

    def __init__(self, path: str | Path, *, t0: float):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.t0 = t0
        self._file: Any = open(self.path, "w", encoding="utf-8", buffering=_BUFFER)
        self._lines: list[str] = []  # written lines not yet handed to the file (joined, _BATCH at a time)
        self._flushed_at = time.monotonic()
        self._heads: dict[tuple[str, str | None, str | None], tuple[str, str]] = {}
        self._lock = threading.Lock()
        self._seq = 0
        self._bytes = 0
        self.counts: dict[str, int] = {}
        self.max_t = 0.0
        self.last_message_t = 0.0
        self.in_order = True
        self.closed = False

    # ------------------------------------------------------------------ writing
    def now(self) -> float:
        """Seconds since the run started (the ``t`` of records)."""
        return round(time.time() - self.t0, 6)

    def __call__(self, event: Event) -> None:
        """The bus listener: record every event that belongs in the history."""
        if not event.recorded:
            return
        if type(event) is MessageRecorded and event.data_json is not None:
            self._write_message(event)
        else:
            self.write(event.to_record(self.t0))

    def write(self, record: dict[str, Any]) -> None:
        """Append one record (it gets the next ``seq``); thread-safe."""
        with self._lock:
            if self.closed:
                return
            self._seq += 1
            record["seq"] = self._seq
            self._append(_dump(record) + "\n", record.get("kind", "?"), float(record.get("t") or 0.0))

    def _write_message(self, e: MessageRecorded) -> None:
        # The record event.to_record() gives, field for field and in that order, written without parsing and
        # serialising the payload again: ``data`` is the payload's own JSON text (printable ASCII). The
        # bookkeeping of _append, inlined: this runs once per message.
        t = round(e.at - self.t0, 6)
        key = (e.subject, e.stream, e.producer)
        try:
            mid, tail = self._heads[key]
        except KeyError:
            if len(self._heads) > 10_000:
                self._heads.clear()
            mid, tail = self._heads[key] = (
                f',"subject":{json.dumps(e.subject)},"stream":{json.dumps(e.stream)},"stream_seq":',
                f',"producer":{json.dumps(e.producer)},"headers":')
        seq = "null" if e.stream_seq is None else e.stream_seq
        headers = _dump(e.headers) if e.headers else "{}"
        head = f'{{"kind":"message","t":{t!r}{mid}{seq}{tail}{headers},"data":{e.data_json},"size":{e.size},"seq":'
        with self._lock:
            if self.closed:
                return
            self._seq += 1
            line = f"{head}{self._seq}}}\n"
            lines = self._lines
            lines.append(line)
            if len(lines) >= _BATCH:
                self._file.write("".join(lines))
                lines.clear()
            now = time.monotonic()
            if now - self._flushed_at >= FLUSH_INTERVAL:  # buffered, but never holding records for long
                self._flush_file()
                self._flushed_at = now
            self._bytes += len(line)
            counts = self.counts
            counts["message"] = counts.get("message", 0) + 1
            if t < self.max_t:
                self.in_order = False
            else:
                self.max_t = t
            if t > self.last_message_t:
                self.last_message_t = t

    def _append(self, line: str, kind: str, t: float) -> None:
        # under self._lock
        lines = self._lines
        lines.append(line)
        if len(lines) >= _BATCH:
            self._file.write("".join(lines))
            lines.clear()
        self._bytes += len(line)  # ASCII: json.dumps escapes everything else
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if t < self.max_t:
            self.in_order = False
        else:
            self.max_t = t
        if kind == "message" and t > self.last_message_t:
            self.last_message_t = t
        now = time.monotonic()
        if now - self._flushed_at >= FLUSH_INTERVAL:  # buffered, but never holding records for long
            self._flush_file()
            self._flushed_at = now

    def _flush_file(self) -> None:
        # under self._lock
        if self._lines:
            self._file.write("".join(self._lines))
            self._lines.clear()
        self._file.flush()

    @property
    def messages(self) -> int:
        return self.counts.get("message", 0)

    def flush(self) -> int:
        """Flush what was written; returns the file's size in bytes (what a reader may read)."""
        with self._lock:
            if not self.closed:
                self._flush_file()
            return self._bytes

    # ------------------------------------------------------------------ reading
    def records(self, *, kinds: Iterable[str] | None = None, since: float | None = None,
                until: float | None = None) -> Iterator[dict[str, Any]]:
        """Stream the records written so far (in the order written; sorted after :meth:`close`)."""
        return iter(self.reader(kinds=kinds, since=since, until=until))

    def reader(self, *, kinds: Iterable[str] | None = None, since: float | None = None,
               until: float | None = None) -> HistoryReader:
        """A re-iterable view of the history (each iteration streams the file again)."""
        return HistoryReader(self.path, kinds=kinds, since=since, until=until,
                             before_read=None if self.closed else self.flush)

    def write_slice(self, dest: str | Path, *, since: float, until: float | None = None,
                    extra_kinds: Iterable[str] = ("fault_start",)) -> int:
        """Write the records with ``since <= t < until`` to ``dest`` (a failing test's history), plus the
        ``fault_start`` records of faults still active at ``since``, sorted by time; returns the count."""
        faults_open: dict[str, dict[str, Any]] = {}
        picked: list[dict[str, Any]] = []
        for rec in self.records():
            t = rec.get("t", 0.0)
            kind = rec.get("kind")
            if t < since:
                if kind == "fault_start" and kind in extra_kinds:
                    faults_open[str((rec.get("fault") or {}).get("id"))] = rec
                elif kind == "fault_end":
                    faults_open.pop(str(rec.get("fault_id")), None)
                continue
            if until is not None and t >= until:
                continue
            picked.append(rec)
        picked = list(faults_open.values()) + picked
        picked.sort(key=lambda r: (r.get("t", 0.0), r.get("seq", 0)))
        Path(dest).parent.mkdir(parents=True, exist_ok=True)
        with open(dest, "w", encoding="utf-8") as f:
            for rec in picked:
                f.write(_dump(rec) + "\n")
        return len(picked)

    # ------------------------------------------------------------------ closing
    def sort(self) -> None:
        """Put what was written so far in time order now (the checks need it); writing goes on after."""
        with self._lock:
            if self.closed or self.in_order:
                return
            self._flush_file()
            self._file.close()
            sort_history(self.path)
            self._file = open(self.path, "a", encoding="utf-8", buffering=_BUFFER)
            self.in_order = True

    def close(self) -> None:
        """Close the file and put it in time order (external sort, bounded memory); idempotent."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            self._flush_file()
            self._file.close()
        if not self.in_order:
            sort_history(self.path)
            self.in_order = True


def sort_history(path: str | Path, chunk: int = _SORT_CHUNK) -> None:
    """Sort a history file by ``(t, seq)`` in place, holding at most ``chunk`` records in memory."""
    path = Path(path)
    tmpdir = Path(tempfile.mkdtemp(prefix="sagaproof-sort-", dir=path.parent))
    runs: list[Path] = []
    try:
        with open(path, encoding="utf-8") as f:
            while True:
                lines = list(itertools.islice(f, chunk))
                if not lines:
                    break
                keyed = []
                for line in lines:
                    if line.strip():
                        rec = json.loads(line)
                        keyed.append((float(rec.get("t") or 0.0), int(rec.get("seq") or 0), line))
                keyed.sort(key=lambda x: (x[0], x[1]))
                run = tmpdir / f"run-{len(runs)}.jsonl"
                with open(run, "w", encoding="utf-8") as out:
                    out.writelines(x[2] if x[2].endswith("\n") else x[2] + "\n" for x in keyed)
                runs.append(run)

        def keyed_lines(p: Path) -> Iterator[tuple[float, int, str]]:
            with open(p, encoding="utf-8") as f:
                for line in f:
                    rec = json.loads(line)
                    yield float(rec.get("t") or 0.0), int(rec.get("seq") or 0), line

        tmp = path.with_suffix(".sorting")
        with open(tmp, "w", encoding="utf-8") as out:
            for _, _, line in heapq.merge(*(keyed_lines(r) for r in runs)):
                out.write(line)
        os.replace(tmp, path)
    finally:
        for r in runs:
            r.unlink(missing_ok=True)
        try:
            tmpdir.rmdir()
        except OSError:
            pass
