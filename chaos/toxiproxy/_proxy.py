"""Proxies and the proxy collection: listeners, upstream dialing, toxics on live connections.

Semantics follow the reference Toxiproxy server 2.12: a proxy listens only while enabled;
disabling or deleting it closes the listener and every live connection (both sockets);
changing listen or upstream restarts it; toxics are kept across disable/enable/update and
apply to live connections at once. Listen addresses are resolved when the proxy starts
(`localhost:0` is reported as `127.0.0.1:<port>`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import os
import random
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from sagaproof.chaos.toxiproxy import _gojson
from sagaproof.chaos.toxiproxy._link import Connection, Side
from sagaproof.chaos.toxiproxy._toxics import REGISTRY, ToxicConfig, decode_attributes

DIAL_TIMEOUT = 10.0
_STREAM_NONBLOCK = socket.SOCK_STREAM | getattr(socket, "SOCK_NONBLOCK", 0)
HOLD_LIMIT = 30.0  # seconds a held dial waits at most before it goes ahead anyway

# Upstream addresses ("host:port") whose new connections are held back (see hold_dials), with their holders.
_HELD: dict[str, int] = {}
_HELD_LOCK = threading.Lock()


def hold_dials(upstream: str) -> None:
    """Hold back every new connection of this process's proxies toward `upstream` until :func:`release_dials`
    (at most :data:`HOLD_LIMIT` seconds each): the client sees its connect succeed and waits, as it would
    for a slow server. The harness uses it to let its recorder back onto a restarted broker before the
    services, so that nothing they publish on reconnecting goes unrecorded. Connections already open and
    dials already under way are left alone. Holds nest: each call needs its release."""
    with _HELD_LOCK:
        _HELD[upstream] = _HELD.get(upstream, 0) + 1


def release_dials(upstream: str) -> None:
    """Let the dials held by one :func:`hold_dials` go ahead (when it was the last hold on `upstream`)."""
    with _HELD_LOCK:
        left = _HELD.get(upstream, 0) - 1
        if left > 0:
            _HELD[upstream] = left
        else:
            _HELD.pop(upstream, None)


async def _held(upstream: str) -> None:
    """Wait while dials toward `upstream` are held (at most HOLD_LIMIT seconds)."""
    limit = time.monotonic() + HOLD_LIMIT
    while upstream in _HELD and time.monotonic() < limit:
        await asyncio.sleep(0.02)
# Names are path segments of the API's URLs: capped so that the longest URL (a toxic of a proxy,
# every character percent-encoded) fits the 64 KiB request-head limit, so a proxy or toxic that
# can be created can always be fetched, changed and deleted.
MAX_NAME = 1024


@functools.cache
def listen_backlog() -> int:
    """The longest listen queue the system allows (net.core.somaxconn), as Go's listeners ask for;
    4096 (the kernel's default since Linux 5.4) when it cannot be read."""
    try:
        with open("/proc/sys/net/core/somaxconn", "rb") as f:
            value = int(f.read().strip())
    except (OSError, ValueError):
        return 4096
    return max(1, min(value, 0x7FFFFFFF))


class ApiError(Exception):
    """An API error with its HTTP status; rendered as `{"error":..., "status":...}`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def split_host_port(addr: str) -> tuple[str, str]:
    """Go's net.SplitHostPort, with its error texts."""
    if addr.startswith("["):
        end = addr.find("]")
        if end < 0:
            raise ValueError(f"address {addr}: missing ']' in address")
        host = addr[1:end]
        rest = addr[end + 1 :]
        if not rest.startswith(":"):
            raise ValueError(f"address {addr}: missing port in address")
        return host, rest[1:]
    if ":" not in addr:
        raise ValueError(f"address {addr}: missing port in address")
    host, _, port = addr.rpartition(":")
    if ":" in host:
        raise ValueError(f"address {addr}: too many colons in address")
    return host, port


def _parse_port(port: str, addr: str) -> int:
    if port == "":
        return 0
    if not port.isdigit() or int(port) > 65535:
        raise ValueError(f"address {addr}: invalid port")
    return int(port)


def join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _is_ip(host: str) -> bool:
    """Whether `host` is an IPv4 or IPv6 address (no lookup needed); inet_pton for the usual
    dotted quad, ipaddress for the rest (zones, and the forms inet_pton reads differently)."""
    if host.count(".") == 3 and host.replace(".", "").isdigit():
        try:
            socket.inet_pton(socket.AF_INET, host)
        except OSError:
            pass
        else:
            return all(len(part) == 1 or part[0] != "0" for part in host.split("."))
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


async def resolve_listen(addr: str) -> tuple[str | None, int]:
    """Resolve a listen address to (ip or None for all interfaces, port)."""
    try:
        host, port_text = split_host_port(addr) if addr else ("", "0")
        port = _parse_port(port_text, addr)
    except ValueError as exc:
        raise ApiError(500, f"listen tcp: {exc}") from exc
    if host == "":
        return None, port
    if _is_ip(host):
        return host, port
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ApiError(500, f"listen tcp: lookup {host}: no such host") from exc
    infos.sort(key=lambda info: 0 if info[0] == socket.AF_INET else 1)
    return str(infos[0][4][0]), port


def check_name(kind: str, name: str, where: str = "") -> None:
    """Refuse (400) a proxy or toxic name that no URL could address: longer than MAX_NAME
    characters, or "." or ".." (HTTP clients resolve those path segments away)."""
    if len(name) > MAX_NAME:
        raise ApiError(400, f"{kind} name too long: {len(name)} characters, at most {MAX_NAME}{where}")
    if name in (".", ".."):
        raise ApiError(400, f"{kind} name {name!r} cannot be used in a URL; choose another name{where}")


def _renderable(render: Callable[[], str]) -> str:
    """Render an object before storing it: what cannot be shown is refused, never stored."""
    try:
        text = render()
        if isinstance(text, str):
            text.encode("utf-8")  # raises on what a response could not carry
        return text
    except (ValueError, OverflowError, UnicodeError) as exc:
        raise ApiError(400, f"bad request body: {exc}") from exc


def _os_error_text(exc: OSError) -> str:
    if exc.errno is not None:
        return os.strerror(exc.errno).lower()
    return str(exc).lower()


class Proxy:
    """One named proxy: listener, upstream address, toxics and live connections."""

    def __init__(self, name: str, listen: str, upstream: str, rng: random.Random) -> None:
        self.name = name
        self.listen = listen
        self.upstream = upstream
        self.enabled = False
        self.rng = rng
        self.upstream_toxics: list[ToxicConfig] = []
        self.downstream_toxics: list[ToxicConfig] = []
        self.connections: set[Connection] = set()
        self.observe: Any = None  # connection -> observation (chaos.observe.attach), or None
        self.lock = asyncio.Lock()
        self._server: asyncio.Server | None = None
        self._had_clients = False  # whether the listener accepted anyone since it started
        self._tasks: set[asyncio.Task[Any]] = set()
        self.metrics: Any = None  # the server's Metrics when -proxy-metrics is on

    # ---- JSON -------------------------------------------------------------------------------
    def toxics(self) -> list[ToxicConfig]:
        return self.upstream_toxics + self.downstream_toxics

    def toxics_json(self) -> str:
        return "[" + ",".join(t.to_json() for t in self.toxics()) + "]"

    def to_json(self) -> str:
        return (
            f'{{"name":{_gojson.encode(self.name)},"listen":{_gojson.encode(self.listen)},'
            f'"upstream":{_gojson.encode(self.upstream)},"enabled":{"true" if self.enabled else "false"},'
            f'"Logger":{{}},"toxics":{self.toxics_json()}}}'
        )

    def find_toxic(self, name: str) -> ToxicConfig | None:
        return next((t for t in self.toxics() if t.name == name), None)

    # ---- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        """Bind the listen address; on failure raise ApiError(500) with the OS message."""
        if self.enabled:
            return
        host, port = await resolve_listen(self.listen)
        if host is None:
            family, bind_host = socket.AF_INET6, "::"
        else:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            bind_host = host
        sock = socket.socket(family, _STREAM_NONBLOCK)  # non-blocking from the start: no ioctl
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if host is None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            sock.bind((bind_host, port))
            bound_port = sock.getsockname()[1]
            # create_server calls listen() (once: we do not), with the queue asked for here, not its
            # default of 100
            self._server = await asyncio.get_running_loop().create_server(
                self._accept, sock=sock, backlog=listen_backlog()
            )
        except OSError as exc:
            sock.close()
            raise ApiError(500, f"listen tcp {join_host_port(bind_host, port)}: bind: {_os_error_text(exc)}") from exc
        self._had_clients = False
        self.listen = join_host_port(bind_host, bound_port)
        self.enabled = True

    async def stop(self) -> None:
        """Close the listener and every live connection; safe to call twice."""
        server, self._server = self._server, None
        self.enabled = False
        if server is not None:
            server.close()
        tasks = list(self._tasks)
        for conn in list(self.connections):
            tasks += [st.task for link in (conn.up, conn.down) for st in link.stages if st.task is not None]
            conn.close()
        for task in tasks:
            task.cancel()
        tasks = [t for t in tasks if not t.done() and t is not asyncio.current_task()]
        if tasks:
            await asyncio.wait(tasks, timeout=1.0)
        if server is not None and self._had_clients:  # with no client ever accepted there is nothing to wait for
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):  # not wait_for: no task of its own (Python 3.11)
                    await server.wait_closed()

    def _forget(self, conn: Connection) -> None:
        self.connections.discard(conn)
        if self.metrics is not None:
            self.metrics.link_ended(conn)

    def _accept(self) -> Side:
        """Protocol factory of the listener: each accepted client dials the upstream in its own task."""
        self._had_clients = True
        side = Side()
        task = asyncio.get_running_loop().create_task(self._dial(side))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return side

    async def _dial(self, client: Side) -> None:
        await asyncio.sleep(0)  # let the transport call connection_made first
        if not self.enabled:
            client.close(reset=False)
            return
        if _HELD and self.upstream in _HELD:
            try:
                await _held(self.upstream)
            except asyncio.CancelledError:
                client.close(reset=False)  # proxy stopped while held
                return
            if not self.enabled or client.lost or client.transport is None:
                client.close(reset=False)
                return
        try:
            host, port_text = split_host_port(self.upstream)
            port = int(port_text)
            loop = asyncio.get_running_loop()
            async with asyncio.timeout(DIAL_TIMEOUT):
                _transport, upstream = await loop.create_connection(Side, host, port)
        except (OSError, ValueError, TimeoutError):
            # Like the reference: the client saw a successful connect, now it sees a close.
            client.close(reset=False)
            return
        except asyncio.CancelledError:
            client.close(reset=False)  # proxy stopped while dialing; end quietly
            return
        if not self.enabled or client.lost or client.transport is None:
            client.close(reset=False)
            upstream.close(reset=False)
            return
        reset = any(t.type == "reset_peer" for t in self.toxics())
        conn = Connection(self, client, upstream, self.rng, reset_on_close=reset)
        self.connections.add(conn)
        conn.start(list(self.upstream_toxics), list(self.downstream_toxics))

    # ---- toxics -------------------------------------------------------------------------------
    async def _each_link(self, direction: str, op: str, arg: Any) -> None:
        async def one(conn: Connection) -> None:
            if conn.closed:
                return
            with contextlib.suppress(Exception):
                await getattr(conn.link(direction), op)(arg)

        await asyncio.gather(*(one(c) for c in list(self.connections)))

    async def add_toxic(self, body: Any) -> ToxicConfig:
        obj = _gojson.require_object(body, "main.ToxicWrapper") or {}
        stream = _gojson.get_string(obj, "stream", "downstream", "ToxicWrapper")
        name = _gojson.get_string(obj, "name", "", "ToxicWrapper")
        toxic_type = _gojson.get_string(obj, "type", "", "ToxicWrapper")
        toxicity = _gojson.get_float(obj, "toxicity", 1.0, "ToxicWrapper", bits=32)
        if stream.lower() not in ("upstream", "downstream"):
            raise ApiError(400, "stream was invalid, can be either upstream or downstream")
        if not name:
            name = f"{toxic_type}_{stream}"
        if toxic_type not in REGISTRY:
            raise ApiError(400, "invalid toxic type")
        check_name("toxic", name)
        if self.find_toxic(name) is not None:
            raise ApiError(409, "toxic already exists")
        _found, raw_attrs = _gojson.lookup(obj, "attributes")
        attributes = decode_attributes(REGISTRY[toxic_type], raw_attrs, None)
        toxic = ToxicConfig(
            name=name, type=toxic_type, stream=stream, toxicity=toxicity, attributes=attributes
        )
        _renderable(toxic.to_json)
        (self.upstream_toxics if toxic.direction == "upstream" else self.downstream_toxics).append(toxic)
        await self._each_link(toxic.direction, "add", toxic)
        return toxic

    async def update_toxic(self, name: str, body: Any) -> ToxicConfig:
        toxic = self.find_toxic(name)
        if toxic is None:
            raise ApiError(404, "toxic not found")
        obj = _gojson.require_object(body, "main.ToxicWrapper") or {}
        toxicity = _gojson.get_float(obj, "toxicity", toxic.toxicity, "ToxicWrapper", bits=32)
        _found, raw_attrs = _gojson.lookup(obj, "attributes")
        attributes = decode_attributes(toxic.runner_class, raw_attrs, toxic.attributes)
        candidate = ToxicConfig(toxic.name, toxic.type, toxic.stream, toxicity, attributes)
        _renderable(candidate.to_json)
        toxic.toxicity = toxicity
        toxic.attributes = attributes
        await self._each_link(toxic.direction, "update", name)
        return toxic

    async def remove_toxic(self, name: str) -> None:
        toxic = self.find_toxic(name)
        if toxic is None:
            raise ApiError(404, "toxic not found")
        group = self.upstream_toxics if toxic.direction == "upstream" else self.downstream_toxics
        group.remove(toxic)
        await self._each_link(toxic.direction, "remove", name)

    async def remove_all_toxics(self) -> None:
        for toxic in list(self.toxics()):
            await self.remove_toxic(toxic.name)


def decode_proxy_fields(
    obj: dict[str, Any] | None, *, name: str, listen: str, upstream: str, enabled: bool
) -> tuple[str, str, str, bool]:
    """Decode `{name, listen, upstream, enabled}` onto the given defaults."""
    if obj is None:
        return name, listen, upstream, enabled
    return (
        _gojson.get_string(obj, "name", name, "Proxy"),
        _gojson.get_string(obj, "listen", listen, "Proxy"),
        _gojson.get_string(obj, "upstream", upstream, "Proxy"),
        _gojson.get_bool(obj, "enabled", enabled, "Proxy"),
    )


class ProxyCollection:
    """All proxies of one server, by name (in creation order)."""

    def __init__(self, rng: random.Random, metrics: Any = None) -> None:
        self.rng = rng
        self.metrics = metrics
        self.proxies: dict[str, Proxy] = {}
        self.lock = asyncio.Lock()

    def _new(self, name: str, listen: str, upstream: str) -> Proxy:
        proxy = Proxy(name, listen, upstream, self.rng)
        proxy.metrics = self.metrics
        return proxy

    def get(self, name: str) -> Proxy:
        proxy = self.proxies.get(name)
        if proxy is None:
            raise ApiError(404, "proxy not found")
        return proxy

    async def create(self, body: Any) -> Proxy:
        obj = _gojson.require_object(body, "main.Proxy")
        name, listen, upstream, enabled = decode_proxy_fields(
            obj, name="", listen="", upstream="", enabled=True
        )
        if not name:
            raise ApiError(400, "missing required field: name")
        if not upstream:
            raise ApiError(400, "missing required field: upstream")
        check_name("proxy", name)
        async with self.lock:
            if name in self.proxies:
                raise ApiError(409, "proxy already exists")
            proxy = self._new(name, listen, upstream)
            _renderable(proxy.to_json)
            if enabled:
                await proxy.start()
            self.proxies[name] = proxy
            return proxy

    async def delete(self, name: str) -> None:
        async with self.lock:
            proxy = self.get(name)
            del self.proxies[name]
        async with proxy.lock:
            await proxy.stop()

    async def update(self, name: str, body: Any) -> Proxy:
        proxy = self.get(name)
        obj = _gojson.require_object(body, "main.Proxy")
        async with proxy.lock:
            _n, listen, upstream, enabled = decode_proxy_fields(
                obj, name=proxy.name, listen=proxy.listen, upstream=proxy.upstream, enabled=proxy.enabled
            )
            _renderable(lambda: _gojson.encode(listen) + _gojson.encode(upstream))
            listen_changed = False
            if listen != proxy.listen:
                listen_changed = await resolve_listen(listen) != await _resolve_quiet(proxy.listen)
            if listen_changed or upstream != proxy.upstream:
                await proxy.stop()
                proxy.listen = listen
                proxy.upstream = upstream
            if enabled != proxy.enabled:
                if enabled:
                    await proxy.start()
                else:
                    await proxy.stop()
            return proxy

    async def populate(self, body: Any) -> tuple[list[Proxy], ApiError | None]:
        if body is not None and not isinstance(body, list):
            raise ApiError(
                400,
                f"bad request body: json: cannot unmarshal {_gojson.json_kind(body)} into Go value of type []main.Proxy",
            )
        entries: list[tuple[str, str, str, bool]] = []
        for index, item in enumerate(body or [], start=1):
            obj = _gojson.require_object(item, "main.Proxy")
            name, listen, upstream, enabled = decode_proxy_fields(
                obj, name="", listen="", upstream="", enabled=True
            )
            if not name:
                raise ApiError(400, f"missing required field: name at proxy {index}")
            if not upstream:
                raise ApiError(400, f"missing required field: upstream at proxy {index}")
            check_name("proxy", name, f" at proxy {index}")
            entries.append((name, listen, upstream, enabled))
        done: list[Proxy] = []
        async with self.lock:
            for name, listen, upstream, enabled in entries:
                existing = self.proxies.get(name)
                if existing is not None:
                    same_upstream = existing.upstream == upstream
                    same_listen = existing.listen == listen
                    if not same_listen:
                        try:
                            same_listen = await resolve_listen(listen) == await _resolve_quiet(
                                existing.listen
                            )
                        except ApiError:
                            same_listen = False
                    if same_listen and same_upstream:
                        done.append(existing)
                        continue
                    async with existing.lock:
                        await existing.stop()
                    del self.proxies[name]
                proxy = self._new(name, listen, upstream)
                if enabled:
                    try:
                        await proxy.start()
                    except ApiError as exc:
                        return done, exc
                self.proxies[name] = proxy
                done.append(proxy)
        return done, None

    async def reset(self) -> None:
        for proxy in list(self.proxies.values()):
            async with proxy.lock:
                if not proxy.enabled:
                    await proxy.start()
                await proxy.remove_all_toxics()

    async def close(self) -> None:
        for proxy in list(self.proxies.values()):
            await proxy.stop()
        self.proxies.clear()


async def _resolve_quiet(listen: str) -> tuple[str | None, int] | None:
    try:
        return await resolve_listen(listen)
    except ApiError:
        return None


__all__ = ["ApiError", "Proxy", "ProxyCollection"]
