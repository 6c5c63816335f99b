"""Helpers for the chaos tests: an asyncio loop in a thread (as the harness runs the server),
a TCP echo server, socket helpers, and a real nats-server process."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import requests
import sagaproof.chaos.toxiproxy as tp


class LoopThread:
    """An event loop running in a daemon thread (asyncio's, or `factory`'s such as uvloop's)."""

    def __init__(self, factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop) -> None:
        self.loop = factory()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 20.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


async def start_echo() -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    # a listen queue as long as the system allows, so that many connections dialed at once all get in
    return await asyncio.start_server(handle, "127.0.0.1", 0, backlog=somaxconn())


def somaxconn() -> int:
    """net.core.somaxconn: the longest listen queue the system allows."""
    return int(Path("/proc/sys/net/core/somaxconn").read_text())


async def start_closer(greeting: bytes = b"bye") -> asyncio.Server:
    """An upstream that sends `greeting` and closes the connection at once."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(greeting)
        await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


async def start_recorder() -> tuple[asyncio.Server, list[bytearray]]:
    """An upstream that records what each connection sent it and never answers."""
    received: list[bytearray] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buf = bytearray()
        received.append(buf)
        try:
            while data := await reader.read(65536):
                buf += data
        except (ConnectionError, OSError):
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, received


class Env:
    """A running server plus an echo upstream; helpers to create proxies and connect."""

    def __init__(self, loop: LoopThread, server: tp.ToxiproxyServer, echo: asyncio.Server) -> None:
        self.loop = loop
        self.server = server
        self.url = server.url
        self.echo = echo
        self.echo_addr = f"127.0.0.1:{echo.sockets[0].getsockname()[1]}"
        self.http = requests.Session()
        self.closer = loop.run(start_closer())
        self.closer_addr = f"127.0.0.1:{self.closer.sockets[0].getsockname()[1]}"
        self.recorder, self.recorded = loop.run(start_recorder())
        self.recorder_addr = f"127.0.0.1:{self.recorder.sockets[0].getsockname()[1]}"

    def api(self, method: str, path: str, **kw: Any) -> requests.Response:
        return self.http.request(method, self.url + path, timeout=30, **kw)

    def proxy(self, name: str = "echo", **extra: Any) -> tuple[str, int]:
        body = {"name": name, "listen": "127.0.0.1:0", "upstream": self.echo_addr, **extra}
        resp = self.api("POST", "/proxies", json=body)
        assert resp.status_code == 201, resp.text
        host, port = resp.json()["listen"].rsplit(":", 1)
        return host, int(port)

    def toxic(
        self, proxy: str, type_: str, stream: str = "downstream", toxicity: float = 1.0, **attributes: Any
    ) -> dict[str, Any]:
        resp = self.api(
            "POST",
            f"/proxies/{proxy}/toxics",
            json={"type": type_, "stream": stream, "toxicity": toxicity, "attributes": attributes},
        )
        assert resp.status_code == 200, resp.text
        return resp.json()


def recv_until_closed(sock: socket.socket, limit: float = 5.0) -> tuple[bytes, str]:
    """Read until EOF or error; returns (data, how) with how in eof|reset|timeout."""
    sock.settimeout(limit)
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return data, "eof"
            data += chunk
    except ConnectionResetError:
        return data, "reset"
    except TimeoutError:
        return data, "timeout"


_OPEN: list[socket.socket] = []


def connect(addr: tuple[str, int], timeout: float = 5.0) -> socket.socket:
    """A client socket to `addr`; whatever a test leaves open is closed by `close_sockets()`."""
    sock = socket.create_connection(addr, timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    _OPEN.append(sock)
    return sock


def close_sockets() -> None:
    while _OPEN:
        _OPEN.pop().close()


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        data = sock.recv(n - len(buf))
        if not data:
            break
        buf += data
    return buf


NATS_BIN = Path(sys.executable).parent / "nats-server"


class NatsServer:
    """A real nats-server process on a loopback port picked by itself."""

    def __init__(self, tmp: Path) -> None:
        self.proc = subprocess.Popen(
            [str(NATS_BIN), "-a", "127.0.0.1", "-p", "-1", "-js", "-sd", str(tmp / "js")],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.port = 0
        deadline = time.monotonic() + 10
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            found = re.search(r"Listening for client connections on 127\.0\.0\.1:(\d+)", line)
            if found:
                self.port = int(found.group(1))
            if "Server is ready" in line:
                break
        if not self.port:
            self.stop()
            raise RuntimeError("nats-server did not start")
        # keep draining its output so it never blocks on a full pipe
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        with self.proc.stdout:  # closed once the server has exited and its output ended
            for _line in self.proc.stdout:
                pass

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class SleeperProcess:
    """A real OS process implementing ProcessControl with signals."""

    def __init__(self) -> None:
        self.proc = self._spawn()
        self.starts = 1

    @staticmethod
    def _spawn() -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])

    def state(self) -> str:
        if self.proc.poll() is not None:
            return "dead"
        return Path(f"/proc/{self.proc.pid}/stat").read_text().split(")")[1].split()[0]

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(5)

    def restart(self) -> None:
        if self.proc.poll() is None:
            self.stop()
        self.proc = self._spawn()
        self.starts += 1

    def pause(self) -> None:
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(5)


def wait_state(proc: SleeperProcess, accept: set[str], timeout: float = 1.0) -> str:
    """Poll /proc until the state is one of `accept` (signals are delivered asynchronously)."""
    deadline = time.monotonic() + timeout
    state = proc.state()
    while state not in accept and time.monotonic() < deadline:
        time.sleep(0.005)
        state = proc.state()
    return state


RUNNING = {"S", "R", "D"}
