"""The examples' shared service kit: what every example service (the shop's, the trip bookings') builds on, the
same in each: a SQLite store in WAL mode with one write transaction at a time, the transactional outbox's relay
(each row published with ``Nats-Msg-Id`` and retried until JetStream acks it), a tiny JSON-over-HTTP server, and
the JetStream stream made sure of at start-up.

Each example's own module (``examples/shop/shop_common.py``, ``examples/trips/trips_common.py``) holds what
differs: its settings, its event envelope, its processed-events table and its consumer loop; it finds this
module in ``examples/_lib`` beside its own directory (copy ``_lib`` along when you copy an example).

Only the standard library and nats-py are used, so a service starts in well under a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import nats.js.errors
from nats.js.api import StreamConfig

DUPLICATE_WINDOW = 120.0  # seconds; JetStream drops a re-published Nats-Msg-Id inside this window

Event = dict[str, Any]
HttpResult = tuple[int, Any]
Route = Callable[["Request"], HttpResult]


def now_iso() -> str:
    """The current UTC time as an RFC 3339 string with milliseconds."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ------------------------------------------------------------------------------------------ store


def open_db(path: Path, schema: str) -> sqlite3.Connection:
    """Open (creating if needed) the service's SQLite database in WAL mode, with ``schema`` applied.

    WAL with ``synchronous=NORMAL`` keeps every committed transaction across a process crash
    (kill -9); only a power loss could drop the last ones.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None)  # explicit BEGIN/COMMIT, see transaction()
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(schema)
    return db


@contextlib.contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction: commits on success, rolls back on any exception."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


# ----------------------------------------------------------------------------------------- outbox


class OutboxRelay:
    """Publishes unsent outbox rows in order, each retried until JetStream acks it."""

    def __init__(self, db: sqlite3.Connection, log: logging.Logger) -> None:
        self._db = db
        self._log = log
        self._js: Any = None
        self._wake = asyncio.Event()
        self._progress = asyncio.Condition()
        row = db.execute("SELECT MIN(seq) FROM outbox WHERE sent = 0").fetchone()
        if row[0] is not None:
            self.sent_upto = row[0] - 1
        else:
            self.sent_upto = db.execute("SELECT COALESCE(MAX(seq), 0) FROM outbox").fetchone()[0]

    def attach(self, js: Any) -> None:
        """Start publishing through this JetStream context (called once NATS is connected)."""
        self._js = js
        self._wake.set()

    def kick(self) -> None:
        """Tell the relay there may be new rows."""
        self._wake.set()

    def last_seq(self) -> int:
        """The highest outbox sequence written so far."""
        seq: int = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM outbox").fetchone()[0]
        return seq

    async def flush(self) -> None:
        """Wait until every row written so far has been accepted by JetStream."""
        target = self.last_seq()
        self.kick()
        async with self._progress:
            await self._progress.wait_for(lambda: self.sent_upto >= target)

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._js is None:
                continue
            while True:
                rows = self._db.execute(
                    "SELECT seq, event_id, subject, body FROM outbox WHERE sent = 0 ORDER BY seq LIMIT 100"
                ).fetchall()
                if not rows:
                    break
                for row in rows:
                    await self._publish(row["subject"], row["body"].encode(), row["event_id"])
                    self._db.execute("UPDATE outbox SET sent = 1 WHERE seq = ?", (row["seq"],))
                    async with self._progress:
                        self.sent_upto = row["seq"]
                        self._progress.notify_all()

    async def _publish(self, subject: str, body: bytes, event_id: str) -> None:
        # Retrying with the same Nats-Msg-Id is safe: if an earlier attempt was stored and only its
        # ack got lost, JetStream drops the copy (inside its duplicate window).
        delay = 0.05
        attempt = 0
        while True:
            attempt += 1
            try:
                await self._js.publish(subject, body, timeout=2.0, headers={"Nats-Msg-Id": event_id})
                if attempt > 1:
                    self._log.info("published %s %s after %d attempts", subject, event_id, attempt)
                return
            except Exception as exc:  # any failure means "not acked yet": retry
                if attempt in (1, 10) or attempt % 100 == 0:
                    self._log.warning("publish %s %s failed (%s), retrying", subject, event_id, str(exc) or type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)


# ------------------------------------------------------------------------------------------- http


@dataclass
class Request:
    """An HTTP request as the routes see it."""

    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON; raises ``ValueError`` when it is not JSON."""
        return json.loads(self.body)


_REASONS = {200: "OK", 201: "Created", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            413: "Content Too Large", 500: "Internal Server Error", 503: "Service Unavailable"}
MAX_BODY = 1 << 20


class HttpServer:
    """A minimal HTTP/1.1 server for JSON APIs (one request per connection).

    Routes are ``(method, pattern)`` where a pattern segment ``{name}`` captures one path segment.
    """

    def __init__(self, log: logging.Logger) -> None:
        self._log = log
        self._routes: list[tuple[str, list[str], Route]] = []

    def add(self, method: str, pattern: str, fn: Route) -> None:
        self._routes.append((method, pattern.strip("/").split("/"), fn))

    async def start(self, port: int) -> asyncio.Server:
        return await asyncio.start_server(self._serve, "127.0.0.1", port, limit=65536)

    def _match(self, method: str, path: str) -> tuple[int, Route | None, dict[str, str], list[str]]:
        segments = path.strip("/").split("/")
        allowed: list[str] = []
        for route_method, pattern, fn in self._routes:
            if len(pattern) != len(segments):
                continue
            params: dict[str, str] = {}
            for want, got in zip(pattern, segments, strict=True):
                if want.startswith("{") and want.endswith("}"):
                    params[want[1:-1]] = unquote(got)
                elif want != got:
                    break
            else:
                if route_method == method:
                    return 200, fn, params, []
                allowed.append(route_method)
        return (405 if allowed else 404), None, {}, allowed

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            status, body, extra = await asyncio.wait_for(self._handle(reader), timeout=10)
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            writer.close()
            return
        except Exception:  # a broken request line or header; answer 400, keep serving
            status, body, extra = 400, {"error": "malformed HTTP request"}, {}
        payload = json.dumps(body, separators=(",", ":")).encode()
        head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}",
                "Content-Type: application/json", f"Content-Length: {len(payload)}", "Connection: close"]
        head += [f"{k}: {v}" for k, v in extra.items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()

    async def _handle(self, reader: asyncio.StreamReader) -> tuple[int, Any, dict[str, str]]:
        line = (await reader.readline()).decode("latin-1").rstrip("\r\n")
        parts = line.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            raise ValueError("bad request line")
        method, target = parts[0], parts[1]
        headers: dict[str, str] = {}
        for _ in range(100):
            raw = (await reader.readline()).decode("latin-1").rstrip("\r\n")
            if not raw:
                break
            key, _, value = raw.partition(":")
            headers[key.strip().lower()] = value.strip()
        else:
            raise ValueError("too many headers")
        length = int(headers.get("content-length", "0") or "0")
        if length < 0:
            raise ValueError("negative content-length")
        if length > MAX_BODY:
            return 413, {"error": f"request body larger than {MAX_BODY} bytes"}, {}
        body = await reader.readexactly(length) if length else b""
        path = urlsplit(target).path or "/"
        status, fn, params, allowed = self._match(method, path)
        if fn is None:
            if status == 405:
                return 405, {"error": f"{method} is not allowed on {path}"}, {"Allow": ", ".join(allowed)}
            return 404, {"error": f"no such resource: {path}"}, {}
        try:
            code, result = fn(Request(method, path, params, headers, body))
        except Exception:
            self._log.exception("%s %s failed", method, path)
            return 500, {"error": "internal error, see the service log"}, {}
        return code, result, {}


async def ensure_stream(js: Any, name: str, subjects: list[str]) -> None:
    """Make sure the stream exists (another service may create it at the same moment)."""
    try:
        await js.stream_info(name)
    except nats.js.errors.NotFoundError:
        with contextlib.suppress(nats.js.errors.BadRequestError):  # another service won the race
            await js.add_stream(StreamConfig(name=name, subjects=subjects, duplicate_window=DUPLICATE_WINDOW))
