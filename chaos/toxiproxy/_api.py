"""The Toxiproxy 2.x HTTP API: routes, middleware (request id, browser blocker, 25 s timeout),
handlers, status codes and bodies exactly as the reference server answers them."""

from __future__ import annotations

import asyncio
import base64
import itertools
import os
import posixpath
import time
from collections.abc import Awaitable, Callable
from urllib.parse import unquote

from sagaproof.chaos.toxiproxy import _gojson
from sagaproof.chaos.toxiproxy._http import Request, Response
from sagaproof.chaos.toxiproxy._metrics import Metrics
from sagaproof.chaos.toxiproxy._proxy import ApiError, ProxyCollection

VERSION = "2.12.0"
HANDLER_TIMEOUT = 25.0

_JSON = ("Content-Type", "application/json")
_TEXT = ("Content-Type", "text/plain; charset=utf-8")
_NOSNIFF = ("X-Content-Type-Options", "nosniff")
_VAR = object()
_XID_DIGITS = "0123456789abcdefghijklmnopqrstuv"

_ROUTES: list[tuple[tuple[object, ...], dict[str, str]]] = [
    (("proxies",), {"GET": "list_proxies", "POST": "create_proxy"}),
    (("populate",), {"POST": "populate"}),
    (
        ("proxies", _VAR),
        {"GET": "get_proxy", "POST": "update_proxy", "PATCH": "update_proxy", "DELETE": "delete_proxy"},
    ),
    (("proxies", _VAR, "toxics"), {"GET": "list_toxics", "POST": "create_toxic"}),
    (
        ("proxies", _VAR, "toxics", _VAR),
        {"GET": "get_toxic", "POST": "update_toxic", "PATCH": "update_toxic", "DELETE": "delete_toxic"},
    ),
    (("reset",), {"POST": "reset"}),
    (("version",), {"GET": "version"}),
]


class _RequestIds:
    """20-character ids in the alphabet and shape of Go's xid (time, machine, pid, counter)."""

    def __init__(self) -> None:
        self._counter = itertools.count(int.from_bytes(os.urandom(3), "big"))
        self._machine = os.urandom(3)
        self._pid = os.getpid() & 0xFFFF
        self._second = -1
        self._prefix = ""

    def next(self, now: float | None = None) -> str:
        # 96 bits (time 32, machine 24, pid 16, counter 24) -> 20 digits of base32hex, the last one
        # padded with zero bits, lower case: Go's xid. The first 14 digits (70 bits) change once a
        # second and are kept; the last 6 are the pid's last 2 bits, the counter and the padding.
        second = int(time.time() if now is None else now)
        if second != self._second:
            raw = second.to_bytes(4, "big") + self._machine + self._pid.to_bytes(2, "big") + bytes(3)
            self._second, self._prefix = second, base64.b32hexencode(raw)[:14].decode().lower()
        tail = ((self._pid & 3) << 28) | ((next(self._counter) & 0xFFFFFF) << 4)
        d = _XID_DIGITS
        return (self._prefix + d[(tail >> 25) & 31] + d[(tail >> 20) & 31] + d[(tail >> 15) & 31]
                + d[(tail >> 10) & 31] + d[(tail >> 5) & 31] + d[tail & 31])


def _error(status: int, message: str) -> Response:
    body = ('{"error":' + _gojson.encode(message) + ',"status":' + str(status) + "}\n").encode()
    return Response(status, body, [_TEXT, _NOSNIFF])


def _ok(status: int, body: str) -> Response:
    return Response(status, body.encode(), [_JSON])


def _clean_path(path: str) -> str:
    """Gorilla mux's cleanPath: normalise, keep a trailing slash."""
    if path.startswith("/") and "//" not in path and "/." not in path:
        return path  # already clean (the usual case)
    if not path:
        return "/"
    if not path.startswith("/"):
        path = "/" + path
    cleaned = posixpath.normpath(path)
    if cleaned.startswith("//"):
        cleaned = "/" + cleaned.lstrip("/")
    if path.endswith("/") and cleaned != "/":
        cleaned += "/"
    return cleaned


class Api:
    """Dispatches requests to handlers over a ProxyCollection."""

    def __init__(self, proxies: ProxyCollection, metrics: Metrics | None = None) -> None:
        self.proxies = proxies
        self.metrics = metrics
        self._ids = _RequestIds()

    async def __call__(self, request: Request) -> Response:
        # Route on the path as sent, decoding each segment on its own: a name with "/", "?", "%"
        # or "." in it is addressed with that character percent-encoded, so every proxy and
        # toxic that can be created can also be fetched, changed and deleted.
        raw = request.path
        cleaned = _clean_path(raw)
        if cleaned != raw:
            return Response(301, b"", [("Location", cleaned)])
        parts = raw.strip("/").split("/") if raw != "/" else []
        segments = [unquote(part) for part in parts] if "%" in raw else parts
        if raw.endswith("/") and raw != "/":
            segments.append("")  # "/proxies/" does not match "/proxies"
        match = self._match(segments)
        if match is None and segments == ["metrics"] and self.metrics is not None:
            match = ({request.method: "serve_metrics"}, [])  # any method, as the reference's handler
        if match is None:
            return Response(404, b"404 page not found\n", [_TEXT, _NOSNIFF])
        methods, args = match
        handler_name = methods.get(request.method)
        if handler_name is None:
            return Response(405, b"")
        request_id = ("X-Toxiproxy-Request-Id", self._ids.next())
        if request.headers.get("user-agent", "").startswith("Mozilla/"):
            return Response(403, b"User agent not allowed\n", [_TEXT, _NOSNIFF, request_id])
        handler: Callable[..., Awaitable[Response]] = getattr(self, handler_name)
        try:
            # a timeout scope, not wait_for: on Python 3.11 wait_for runs the handler in a task of its
            # own, one more trip round the event loop for every request
            async with asyncio.timeout(HANDLER_TIMEOUT):
                response = await handler(request, *args)
        except TimeoutError:
            response = Response(503, b"")
        except ApiError as exc:
            response = _error(exc.status, exc.message)
        except _gojson.DecodeError as exc:
            response = _error(400, f"bad request body: {exc}")
        except Exception as exc:  # never a traceback to the client; the reference answers 500
            response = _error(500, str(exc) or type(exc).__name__)
        response.headers.append(request_id)
        return response

    @staticmethod
    def _match(segments: list[str]) -> tuple[dict[str, str], list[str]] | None:
        for pattern, methods in _ROUTES:
            if len(pattern) != len(segments):
                continue
            args: list[str] = []
            for want, got in zip(pattern, segments, strict=True):
                if want is _VAR:
                    if not got:
                        break
                    args.append(got)
                elif want != got:
                    break
            else:
                return methods, args
        return None

    # ---- proxies -----------------------------------------------------------------------------
    async def list_proxies(self, request: Request) -> Response:
        items = sorted(self.proxies.proxies.items())
        return _ok(200, "{" + ",".join(f"{_gojson.encode(n)}:{p.to_json()}" for n, p in items) + "}")

    async def create_proxy(self, request: Request) -> Response:
        proxy = await self.proxies.create(_gojson.decode(request.body))
        return _ok(201, proxy.to_json())

    async def get_proxy(self, request: Request, name: str) -> Response:
        return _ok(200, self.proxies.get(name).to_json())

    async def update_proxy(self, request: Request, name: str) -> Response:
        self.proxies.get(name)
        proxy = await self.proxies.update(name, _gojson.decode(request.body))
        return _ok(200, proxy.to_json())

    async def delete_proxy(self, request: Request, name: str) -> Response:
        await self.proxies.delete(name)
        return Response(204)

    async def populate(self, request: Request) -> Response:
        done, error = await self.proxies.populate(_gojson.decode(request.body))
        listed = "[" + ",".join(p.to_json() for p in done) + "]" if done else "null"
        if error is not None:
            body = (
                '{"error":'
                + _gojson.encode(error.message)
                + f',"status":{error.status},"proxies":{listed}}}\n'
            )
            return Response(error.status, body.encode(), [_TEXT, _NOSNIFF])
        return _ok(201, '{"proxies":' + listed + "}")

    async def reset(self, request: Request) -> Response:
        await self.proxies.reset()
        return Response(204)

    async def version(self, request: Request) -> Response:
        return Response(
            200,
            ('{"version": "' + VERSION + '"}\n').encode(),
            [("Content-Type", "application/json;charset=utf-8")],
        )

    async def serve_metrics(self, request: Request) -> Response:
        assert self.metrics is not None
        body, content_type = self.metrics.render()
        return Response(200, body, [("Content-Type", content_type)])

    # ---- toxics ------------------------------------------------------------------------------
    async def list_toxics(self, request: Request, name: str) -> Response:
        return _ok(200, self.proxies.get(name).toxics_json())

    async def create_toxic(self, request: Request, name: str) -> Response:
        proxy = self.proxies.get(name)
        body = _gojson.decode(request.body)
        async with proxy.lock:
            toxic = await proxy.add_toxic(body)
        return _ok(200, toxic.to_json())

    async def get_toxic(self, request: Request, name: str, toxic_name: str) -> Response:
        toxic = self.proxies.get(name).find_toxic(toxic_name)
        if toxic is None:
            raise ApiError(404, "toxic not found")
        return _ok(200, toxic.to_json())

    async def update_toxic(self, request: Request, name: str, toxic_name: str) -> Response:
        proxy = self.proxies.get(name)
        if proxy.find_toxic(toxic_name) is None:
            raise ApiError(404, "toxic not found")
        body = _gojson.decode(request.body)
        async with proxy.lock:
            toxic = await proxy.update_toxic(toxic_name, body)
        return _ok(200, toxic.to_json())

    async def delete_toxic(self, request: Request, name: str, toxic_name: str) -> Response:
        proxy = self.proxies.get(name)
        async with proxy.lock:
            await proxy.remove_toxic(toxic_name)
        return Response(204)
