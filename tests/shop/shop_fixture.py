"""Helpers that run the example shop for real: a nats-server with JetStream and the four services
as separate processes (each in its own process group), plus helpers to kill, restart and observe
them.  Nothing is mocked; every test gets a fresh broker and fresh data directories."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[2]
SHOP_DIR = ROOT / "examples" / "shop"
NATS_SERVER = Path(sys.executable).parent / "nats-server"
SERVICES = ("order", "payment", "inventory", "shipping")
STREAM = "SHOP"



def load_shop_module(name: str) -> ModuleType:
    """Import one of the example's plain modules (workload, invariants) under a ``shop_`` name."""
    if f"shop_{name}" not in sys.modules:
        spec = importlib.util.spec_from_file_location(f"shop_{name}", SHOP_DIR / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    return sys.modules[f"shop_{name}"]


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy.  Polling is the only option here: the
    things we wait on (a log line, a service's state) have no event to subscribe to."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)


_REAPER = None


def _watch(proc: subprocess.Popen[bytes]) -> None:
    """Register the process group with sagaproof's reaper, so it dies even if the test run is killed."""
    global _REAPER
    from sagaproof.harness.env.reaper import Reaper

    if _REAPER is None:
        _REAPER = Reaper()
        _REAPER.start()
    _REAPER.add_group(proc.pid)


def _kill_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


class NatsServer:
    """A nats-server with JetStream on a free loopback port."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.starts = 0
        self.port = self._start("-1")
        self.url = f"nats://127.0.0.1:{self.port}"

    def _start(self, port: str) -> int:
        self.starts += 1
        log = self.workdir / f"nats.{self.starts}.log"
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [str(NATS_SERVER), "-a", "127.0.0.1", "-p", port, "-js", "-sd", str(self.workdir / "jetstream")],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        _watch(self.proc)
        match = wait_for(lambda: re.search(rb"Listening for client connections on 127\.0\.0\.1:(\d+)",
                                           log.read_bytes()), 10, "nats-server to listen")
        wait_for(lambda: b"Server is ready" in log.read_bytes(), 10, "nats-server to be ready")
        return int(match.group(1))

    def stop(self) -> None:
        """SIGKILL the broker (JetStream's file store keeps what it acked)."""
        _kill_group(self.proc, signal.SIGKILL)
        self.proc.wait(5)

    def restart(self) -> None:
        """Start the broker again on the same port and store."""
        self.stop()
        self._start(str(self.port))


@dataclass
class Service:
    """One shop service process; ``port`` is read back from its log (it binds port 0)."""

    name: str
    env: dict[str, str]
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0
    starts: int = 0
    logs: list[Path] = field(default_factory=list)

    def start(self, extra_env: dict[str, str] | None = None) -> None:
        self.starts += 1
        log = self.workdir / f"{self.name}.{self.starts}.log"
        self.logs.append(log)
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, f"{self.name}.py"], cwd=SHOP_DIR, env={**self.env, **(extra_env or {})},
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        _watch(self.proc)

    def wait_ready(self, timeout: float = 10) -> None:
        """Wait until the service listens and its /health says it is connected and consuming."""
        self.wait_listening(timeout)
        wait_for(lambda: self._healthy(), timeout, f"{self.name} to be ready")

    def wait_listening(self, timeout: float = 10) -> None:
        """Wait until the service's HTTP server is up (it may still be connecting to NATS)."""
        log = self.logs[-1]

        def port() -> int | None:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n{log.read_text()[-2000:]}")
            m = re.search(r"HTTP on 127\.0\.0\.1:(\d+)", log.read_text())
            return int(m.group(1)) if m else None

        self.port = wait_for(port, timeout, f"{self.name} to listen")

    def _healthy(self) -> bool:
        try:
            return requests.get(self.url("/health"), timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path: str) -> Any:
        return requests.get(self.url(path), timeout=5).json()

    def state(self) -> dict[str, Any]:
        return self.get("/state")

    def kill(self) -> None:
        """SIGKILL the service's whole process group (no chance to clean up)."""
        assert self.proc is not None
        _kill_group(self.proc, signal.SIGKILL)
        self.proc.wait(5)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        _kill_group(self.proc, signal.SIGTERM)
        try:
            self.proc.wait(3)
        except subprocess.TimeoutExpired:
            _kill_group(self.proc, signal.SIGKILL)
            self.proc.wait(5)

    def restart(self, extra_env: dict[str, str] | None = None) -> None:
        self.kill()
        self.start(extra_env)
        self.wait_ready()


class Shop:
    """The four services on one broker.  ``env`` is added to every service's environment."""

    def __init__(self, workdir: Path, nats: NatsServer, env: dict[str, str]) -> None:
        self.nats = nats
        base = {k: v for k, v in os.environ.items() if not k.startswith("SHOP_")}
        self.services = {
            name: Service(name, {**base, "SHOP_PORT": "0", "NATS_URL": nats.url,
                                 "DATA_DIR": str(workdir / name), **env}, workdir)
            for name in SERVICES
        }

    def __getitem__(self, name: str) -> Service:
        return self.services[name]

    def start(self, only: tuple[str, ...] = SERVICES) -> None:
        for name in only:
            self.services[name].start()
        for name in only:
            self.services[name].wait_ready()

    def stop(self) -> None:
        for service in self.services.values():
            service.stop()

    # -- the order API

    def place(self, body: dict[str, Any], retry_for: float = 0) -> dict[str, Any]:
        """POST /orders; with ``retry_for`` keep retrying (same body, so same order_id) while the
        order service is down."""
        deadline = time.monotonic() + retry_for
        while True:
            try:
                response = requests.post(self["order"].url("/orders"), json=body, timeout=5)
                assert response.status_code in (200, 201), response.text
                return response.json()
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def orders(self) -> dict[str, dict[str, Any]]:
        return self["order"].state()["orders"]

    def wait_terminal(self, order_ids: list[str], timeout: float) -> dict[str, dict[str, Any]]:
        def done() -> dict[str, dict[str, Any]] | None:
            orders = self.orders()
            if all(orders.get(o, {}).get("status") in ("COMPLETED", "CANCELLED") for o in order_ids):
                return orders
            return None

        try:
            return wait_for(done, timeout, "orders to become terminal", interval=0.1)
        except AssertionError:
            orders = self.orders()
            pending = [o for o in order_ids if orders.get(o, {}).get("status") not in ("COMPLETED", "CANCELLED")]
            raise AssertionError(f"{len(pending)} of {len(order_ids)} orders not terminal after {timeout}s, "
                                 f"e.g. {pending[:3]}") from None

    def as_system(self) -> Any:
        """The shape sagaproof hands to invariants: ``system.services[name].http.get(path)``."""
        def http(service: Service) -> Any:
            return SimpleNamespace(get=lambda path: requests.get(service.url(path), timeout=5))

        return SimpleNamespace(services={n: SimpleNamespace(http=http(s)) for n, s in self.services.items()})

    # -- the broker

    def events(self) -> list[dict[str, Any]]:
        """Every event stored in the SHOP stream, in stream order."""
        return asyncio.run(_read_stream(self.nats.url))

    def publish(self, subject: str, event: dict[str, Any], msg_id: str | None = None) -> None:
        """Publish into JetStream directly, with a fresh Nats-Msg-Id unless one is given."""
        asyncio.run(_publish(self.nats.url, subject, event, msg_id or str(uuid.uuid4())))

    def idle(self, consumer: str) -> bool:
        """True when the durable consumer has nothing left to deliver and nothing unacked."""
        info = asyncio.run(_consumer_info(self.nats.url, consumer))
        return info.num_pending == 0 and info.num_ack_pending == 0

    def wait_idle(self, consumers: tuple[str, ...] = SERVICES, timeout: float = 15) -> None:
        for name in consumers:
            wait_for(lambda n=name: self.idle(n) and self[n].state()["outbox_unsent"] == 0, timeout,
                     f"{name} to drain its consumer and outbox", interval=0.1)


async def _read_stream(url: str) -> list[dict[str, Any]]:
    import nats
    from nats.js.api import AckPolicy, ConsumerConfig

    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(STREAM)
        events: list[dict[str, Any]] = []
        if info.state.messages == 0:
            return events
        sub = await js.pull_subscribe_bind(
            stream=STREAM,
            consumer=(await js.add_consumer(STREAM, ConsumerConfig(ack_policy=AckPolicy.NONE,
                                                                   inactive_threshold=10))).name)
        while len(events) < info.state.messages:
            for msg in await sub.fetch(500, timeout=2):
                events.append(json.loads(msg.data) | {"_subject": msg.subject})
        return events
    finally:
        await nc.close()


async def _publish(url: str, subject: str, event: dict[str, Any], msg_id: str) -> None:
    import nats

    nc = await nats.connect(url)
    try:
        await nc.jetstream().publish(subject, json.dumps(event).encode(), headers={"Nats-Msg-Id": msg_id})
    finally:
        await nc.close()


async def _consumer_info(url: str, consumer: str) -> Any:
    import nats

    nc = await nats.connect(url)
    try:
        return await nc.jetstream().consumer_info(STREAM, consumer)
    finally:
        await nc.close()


class TcpProxy:
    """A loopback TCP proxy for one service's NATS link, with two faults: ``cut()`` closes every
    connection (the client sees a disconnect), ``stall`` set to True silently drops all bytes both
    ways while connections stay open (only the client's pings can notice)."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.stall = False
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=2)
            except OSError:
                continue
            with self._lock:
                self._conns += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                if not self.stall:
                    dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.close()

    def cut(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
        for sock in conns:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        self.cut()
