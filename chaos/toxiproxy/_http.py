"""A small HTTP/1.1 server on asyncio streams (keep-alive, Content-Length and chunked bodies).

Just enough HTTP for the Toxiproxy API: one request at a time per connection, a request head
(request line and headers) up to `MAX_HEAD` bytes and a body up to `MAX_BODY` bytes, responses
always with a Content-Length (except 1xx/204/304), idle connections closed after `IDLE_TIMEOUT`
seconds, and every request read within `READ_TIMEOUT` seconds, like the reference server's Go
http.Server settings. Requests over a limit or malformed get the API's JSON error body
(`{"error": ..., "status": ...}`: 431, 413 or 400) like every other error, and the connection
is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus

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


def error_response(status: int, message: str) -> Response:
    """The API's error body: `{"error":"...","status":N}` and a newline, labelled text/plain as the reference does."""
    body = (json.dumps({"error": message, "status": status}, separators=(",", ":")) + "\n").encode()
    return Response(
        status, body, [("Content-Type", "text/plain; charset=utf-8"), ("X-Content-Type-Options", "nosniff")]
    )


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        parts: list[bytes] = []
        total = 0
        while True:
            size_line = await reader.readuntil(b"\r\n")
            try:
                size = int(size_line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _BadRequest("bad chunk size") from None
            if size == 0:
                # trailers until an empty line
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                return b"".join(parts)
            total += size
            if total > MAX_BODY:
                raise _TooLarge(f"request body too large: the limit is {MAX_BODY} bytes")
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
    length = _declared_length(headers)
    return await reader.readexactly(length) if length else b""


def _declared_length(headers: dict[str, str]) -> int:
    """The Content-Length (0 when absent or chunked); raises for a bad or over-limit one."""
    length_text = headers.get("content-length")
    if length_text is None or "chunked" in headers.get("transfer-encoding", "").lower():
        return 0
    try:
        length = int(length_text)
    except ValueError:
        raise _BadRequest("bad content-length") from None
    if length < 0:
        raise _BadRequest("bad content-length")
    if length > MAX_BODY:
        raise _TooLarge(f"request body too large: {length} bytes, the limit is {MAX_BODY}")
    return length


async def _reject(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, response: Response) -> None:
    """Answer an unreadable request and end the connection without losing the answer.

    Closing a socket with unread input sends a reset that can destroy the response before the
    client reads it, so the rest of the request is read and discarded first (bounded in bytes
    and time), after the response has been sent and our side shut for writing.
    """
    with contextlib.suppress(Exception):
        writer.write(_serialize(response, False))
        await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DISCARD_TIMEOUT
        discarded = 0
        while discarded < DISCARD_LIMIT and loop.time() < deadline:
            data = await asyncio.wait_for(reader.read(65536), max(0.0, deadline - loop.time()))
            if not data:
                break
            discarded += len(data)


def _parse_head(raw: bytes) -> Request:
    try:
        text = raw.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes anything
        raise _BadRequest("bad encoding") from None
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
    head = [f"HTTP/1.1 {resp.status} {_reason(resp.status)}"]
    names = {name.lower() for name, _ in resp.headers}
    head.extend(f"{name}: {value}" for name, value in resp.headers)
    head.append("Date: " + _current_date())
    if resp.status not in (204, 304) and resp.status >= 200 and "content-length" not in names:
        head.append(f"Content-Length: {len(resp.body)}")
    if not keep_alive:
        head.append("Connection: close")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + resp.body


class _IdleTimer:
    """Closes a connection that has waited IDLE_TIMEOUT for the next request head. One timer per
    connection, looked at only when it fires: a request sets `due`, it does not start and cancel a
    timer of its own (which was the largest cost of a request's Python after the write)."""

    __slots__ = ("_loop", "_writer", "due", "_handle")

    def __init__(self, loop: asyncio.AbstractEventLoop, writer: asyncio.StreamWriter) -> None:
        self._loop = loop
        self._writer = writer
        self.due: float | None = loop.time() + IDLE_TIMEOUT  # None while a request is being served
        self._handle = loop.call_at(self.due, self._fire)

    def _fire(self) -> None:
        due = self.due
        if due is not None and self._loop.time() >= due:
            self._writer.close()  # the pending read ends at once; the connection is over
            return
        self._handle = self._loop.call_at(due if due is not None else self._loop.time() + IDLE_TIMEOUT, self._fire)

    def cancel(self) -> None:
        self._handle.cancel()


async def serve_connection(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, handler: Handler
) -> None:
    """Serve requests on one connection until the client closes, errs or idles out."""
    loop = asyncio.get_running_loop()
    idle = _IdleTimer(loop, writer)
    try:
        while True:
            try:
                idle.due = loop.time() + IDLE_TIMEOUT
                raw = await reader.readuntil(b"\r\n\r\n")
                idle.due = None
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            except asyncio.LimitOverrunError:
                message = f"request head too large: the request line and headers are limited to {MAX_HEAD} bytes"
                await _reject(reader, writer, error_response(431, message))
                return
            try:
                request = _parse_head(raw[:-4])
                length = _declared_length(request.headers)  # refuse an over-limit body before inviting it
                if request.headers.get("expect", "").lower() == "100-continue":
                    writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                if length or "chunked" in request.headers.get("transfer-encoding", "").lower():
                    async with asyncio.timeout(READ_TIMEOUT):  # a scope, not wait_for (no task per call)
                        request.body = await _read_body(reader, request.headers)
                else:
                    request.body = b""  # nothing to read: no timer to set and cancel
            except _BadRequest as exc:
                text = str(exc) if exc.status == 413 else f"malformed HTTP request: {exc}"
                await _reject(reader, writer, error_response(exc.status, text))
                return
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
                await _reject(reader, writer, error_response(400, "malformed HTTP request: incomplete body"))
                return
            except (TimeoutError, ConnectionError):
                return
            connection = request.headers.get("connection", "").lower()
            keep_alive = "close" not in connection and (
                request.version == "HTTP/1.1" or "keep-alive" in connection
            )
            response = await handler(request)
            if request.method == "HEAD":
                response.body = b""
            writer.write(_serialize(response, keep_alive))
            await writer.drain()
            if not keep_alive:
                return
    except (ConnectionError, OSError):
        return
    finally:
        idle.cancel()
        with contextlib.suppress(Exception):
            writer.close()
