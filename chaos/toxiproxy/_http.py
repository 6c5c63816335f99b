"""A small HTTP/1.1 server on an asyncio protocol (keep-alive, Content-Length and chunked bodies).

Just enough HTTP for the Toxiproxy API: one request at a time per connection, a request head
(request line and headers) up to `MAX_HEAD` bytes and a body up to `MAX_BODY` bytes, responses
always with a Content-Length (except 1xx/204/304), idle connections closed after `IDLE_TIMEOUT`
seconds, and every request read within `READ_TIMEOUT` seconds, like the reference server's Go
http.Server settings. Requests over a limit or malformed get the API's JSON error body
(`{"error": ..., "status": ...}`: 431, 413 or 400) like every other error, and the connection
is closed.

The bytes are read by a protocol (`Connection`) that cuts whole requests out of its buffer and hands
them to the connection's one task, which calls the handler and writes the answer: a request costs one
wake-up of that task and no stream machinery (the API's cost per request is what creating and deleting
proxies costs, issue 24).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import cast

MAX_HEAD = 64 * 1024
MAX_BODY = 8 * 1024 * 1024
READ_TIMEOUT = 15.0
IDLE_TIMEOUT = 60.0
DISCARD_LIMIT = 64 * 1024 * 1024  # what is read and dropped after refusing a request
DISCARD_TIMEOUT = 2.0


@dataclass
class Request:
    method: str
    target: str
    version: str
    headers: dict[str, str]
    body: bytes = b""

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0].split("#", 1)[0]


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)


Handler = Callable[[Request], Awaitable[Response]]


class _BadRequest(Exception):
    status = 400


class _TooLarge(_BadRequest):
    status = 413


class _HeadTooLarge(Exception):
    pass


class _Incomplete(_BadRequest):
    pass


def error_response(status: int, message: str) -> Response:
    """The API's error body: `{"error":"...","status":N}` and a newline, labelled text/plain as the reference does."""
    body = (json.dumps({"error": message, "status": status}, separators=(",", ":")) + "\n").encode()
    return Response(
        status, body, [("Content-Type", "text/plain; charset=utf-8"), ("X-Content-Type-Options", "nosniff")]
    )


_STATUS_LINES = {status.value: f"HTTP/1.1 {status.value} {status.phrase}" for status in HTTPStatus}


def _status_line(status: int) -> str:
    line = _STATUS_LINES.get(status)
    return line if line is not None else f"HTTP/1.1 {status} Unknown"


def _declared_length(headers: dict[str, str]) -> int:
    """The Content-Length (0 when absent or chunked); raises for a bad or over-limit one."""
    length_text = headers.get("content-length")
    if length_text is None or "chunked" in headers.get("transfer-encoding", "").lower():
        return 0
    try:
        length = int(length_text)
    except ValueError as exc:
        raise _BadRequest("bad content-length") from exc
    if length < 0:
        raise _BadRequest("bad content-length")
    if length > MAX_BODY:
        raise _TooLarge(f"request body too large: {length} bytes, the limit is {MAX_BODY}")
    return length


def _parse_head(raw: bytes) -> Request:
    try:
        text = raw.decode("latin-1")
    except UnicodeDecodeError as exc:  # pragma: no cover - latin-1 decodes anything
        raise _BadRequest("bad encoding") from exc
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not parts[0].isalpha():
        raise _BadRequest("malformed request line")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise _BadRequest("malformed header")
        key = name.lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return Request(method=parts[0], target=parts[1], version=parts[2], headers=headers)


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def http_date(now: float | None = None) -> str:
    """The Date header's IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), as email.utils.formatdate(usegmt=True)
    writes it, without importing the email package (about 1 MB of the server's memory)."""
    t = time.gmtime(now)
    return (f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year:04d} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT")


_date_now: tuple[int, str] = (-1, "")


def _current_date() -> str:
    """http_date() of now, made once a second."""
    global _date_now
    second = int(time.time())
    if second != _date_now[0]:
        _date_now = (second, http_date(second))
    return _date_now[1]


def _serialize(resp: Response, keep_alive: bool) -> bytes:
    status = resp.status
    head = [_status_line(status)]
    has_length = False
    for name, value in resp.headers:
        head.append(f"{name}: {value}")
        has_length = has_length or name.lower() == "content-length"
    head.append("Date: " + _current_date())
    if status != 204 and status != 304 and status >= 200 and not has_length:
        head.append(f"Content-Length: {len(resp.body)}")
    if not keep_alive:
        head.append("Connection: close")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + resp.body



_RESUME_BELOW = MAX_HEAD + MAX_BODY  # buffered bytes above which reading pauses while a request is served
_CHUNK_LINE_LIMIT = MAX_HEAD  # a chunk-size line (with extensions) longer than this is refused


def _chunked_body(buf: bytearray, pos: int) -> tuple[bytes, int] | None:
    """A whole chunked body (and its trailers) from `buf` at `pos`: (body, end), or None while incomplete."""
    parts: list[bytes] = []
    total = 0
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            if len(buf) - pos > _CHUNK_LINE_LIMIT:
                raise _BadRequest("bad chunk size")
            return None
        try:
            size = int(bytes(buf[pos:eol]).split(b";", 1)[0].strip(), 16)
        except ValueError as exc:
            raise _BadRequest("bad chunk size") from exc
        if size < 0:
            raise _BadRequest("bad chunk size")
        pos = eol + 2
        if size == 0:
            while True:  # trailers until an empty line
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    return None
                empty = eol == pos
                pos = eol + 2
                if empty:
                    return b"".join(parts), pos
        total += size
        if total > MAX_BODY:
            raise _TooLarge(f"request body too large: the limit is {MAX_BODY} bytes")
        if len(buf) < pos + size + 2:
            return None
        parts.append(bytes(buf[pos : pos + size]))
        pos += size + 2


class HttpConnection(asyncio.Protocol):
    """One API connection: the protocol buffers what arrives; its task takes whole requests out of the
    buffer, calls the handler and writes each answer, one request at a time.

    Timers: one per connection, looked at only when it fires (a request moves `_due`, it does not start
    and cancel a timer of its own). While the task waits for a request head the connection may idle for
    IDLE_TIMEOUT; a body must arrive within READ_TIMEOUT of its head; a refused request's remaining input
    is read and dropped for at most DISCARD_TIMEOUT. When the time is up the connection is closed.
    """

    def __init__(self, handler: Handler, tasks: set[asyncio.Task[None]]) -> None:
        self._handler = handler
        self._tasks = tasks
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._eof = False
        self._lost = False
        self._reading_paused = False
        self._writing_paused = False
        self._waiter: asyncio.Future[None] | None = None  # the task waiting for bytes, end of input or close
        self._drain_waiter: asyncio.Future[None] | None = None
        self._discard_left = -1  # >= 0 while a refused request's input is being read and dropped
        self._head: Request | None = None  # a request whose body has not all arrived
        self._body_length = 0
        self._chunked = False
        self._due: float | None = None  # when the connection is closed unless the task moves on first
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    # ---- protocol callbacks -----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's
        task = self._loop.create_task(self._serve())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def data_received(self, data: bytes) -> None:
        if self._discard_left >= 0:
            self._discard_left -= len(data)
            if self._discard_left < 0:
                self._close()
            return
        self._buf += data
        if len(self._buf) > _RESUME_BELOW and not self._reading_paused and self._transport is not None:
            self._reading_paused = True
            self._transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self._eof = True
        if self._discard_left >= 0:
            self._close()
        self._wake()
        return True  # keep our sending side open: an answer may still be due

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._wake()
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # ---- helpers --------------------------------------------------------------------------
    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self) -> None:
        self._waiter = self._loop.create_future()
        await self._waiter

    def _close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def _set_due(self, due: float | None) -> None:
        """Close the connection at `due` unless it is moved first; a later time costs nothing."""
        self._due = due
        if due is not None and (self._timer is None or due < self._timer_at) and not self._lost:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = due
            self._timer = self._loop.call_at(due, self._fire)

    def _fire(self) -> None:
        self._timer = None
        due = self._due
        if due is not None and self._loop.time() >= due:
            self._close()  # the waiting task sees the close and ends
            return
        self._timer_at = due if due is not None else self._loop.time() + IDLE_TIMEOUT
        self._timer = self._loop.call_at(self._timer_at, self._fire)

    async def _write(self, data: bytes) -> None:
        if self._lost or self._transport is None:
            raise ConnectionResetError("the client went away")
        self._transport.write(data)
        if self._writing_paused:
            self._drain_waiter = self._loop.create_future()
            await self._drain_waiter
            if self._lost:
                raise ConnectionResetError("the client went away")

    # ---- requests ---------------------------------------------------------------------------
    def _take(self) -> Request | None:
        """The next whole request cut out of the buffer, or None while it has not all arrived."""
        buf = self._buf
        request = self._head
        if request is None:
            end = buf.find(b"\r\n\r\n")
            if end > MAX_HEAD or (end < 0 and len(buf) - 3 > MAX_HEAD):
                raise _HeadTooLarge(
                    f"request head too large: the request line and headers are limited to {MAX_HEAD} bytes"
                )
            if end < 0:
                return None
            request = _parse_head(bytes(buf[:end]))
            self._body_length = _declared_length(request.headers)  # refuses an over-limit body before inviting it
            self._chunked = "chunked" in request.headers.get("transfer-encoding", "").lower()
            del buf[: end + 4]
            if request.headers.get("expect", "").lower() == "100-continue" and self._transport is not None:
                self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            if not self._chunked and not self._body_length:
                return request  # nothing to read: the usual GET and DELETE
            self._head = request
            self._set_due(self._loop.time() + READ_TIMEOUT)
        if self._chunked:
            found = _chunked_body(buf, 0)
            if found is None:
                return None
            request.body, used = found
        else:
            if len(buf) < self._body_length:
                return None
            used = self._body_length
            request.body = bytes(buf[:used])
        del buf[:used]
        self._head = None
        return request

    async def _next(self) -> Request | None:
        """The next request; None when the client closed, went quiet or sent nothing more."""
        self._set_due(self._loop.time() + IDLE_TIMEOUT)
        while True:
            request = self._take()
            if request is not None:
                self._due = None  # served: no time limit while the handler runs
                if self._reading_paused and len(self._buf) <= _RESUME_BELOW and self._transport is not None:
                    self._reading_paused = False
                    self._transport.resume_reading()
                return request
            if self._lost or self._eof:
                if self._head is not None:
                    raise _Incomplete("incomplete body")
                return None
            await self._wait()

    async def _serve(self) -> None:
        try:
            while True:
                try:
                    request = await self._next()
                except _HeadTooLarge as exc:
                    await self._reject(error_response(431, str(exc)))
                    return
                except _BadRequest as exc:
                    text = str(exc) if exc.status == 413 else f"malformed HTTP request: {exc}"
                    await self._reject(error_response(exc.status, text))
                    return
                if request is None:
                    return
                connection = request.headers.get("connection", "").lower()
                keep_alive = "close" not in connection and (
                    request.version == "HTTP/1.1" or "keep-alive" in connection
                )
                response = await self._handler(request)
                if request.method == "HEAD":
                    response.body = b""
                await self._write(_serialize(response, keep_alive))
                if not keep_alive:
                    return
        except (ConnectionError, OSError, asyncio.CancelledError):
            return  # the client went away, or the server is closing: end quietly
        finally:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._close()

    async def _reject(self, response: Response) -> None:
        """Answer an unreadable request and end the connection without losing the answer.

        Closing a socket with unread input sends a reset that can destroy the response before the
        client reads it, so the rest of the request is read and discarded first (bounded in bytes
        and time), after the response has been sent and our side shut for writing.
        """
        transport = self._transport
        if transport is None or self._lost:
            return
        transport.write(_serialize(response, False))
        if transport.can_write_eof():
            transport.write_eof()
        if self._eof:
            return
        self._discard_left = DISCARD_LIMIT - len(self._buf)
        self._buf.clear()
        if self._discard_left < 0:
            return
        if self._reading_paused:
            self._reading_paused = False
            transport.resume_reading()
        self._set_due(self._loop.time() + DISCARD_TIMEOUT)
        while not self._lost:
            await self._wait()
