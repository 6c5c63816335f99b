"""`system.chaos`: fault context managers by service name, over real fault proxies, that always heal."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import tomllib
import urllib.request
from pathlib import Path

import nats
import pytest
from sagaproof.harness.config import load_system_file, parse_system
from sagaproof.harness.env.system import System
from sagaproof.harness.errors import ConfigError

from tests.conftest import MINI


async def _rtt(url: str) -> float:
    """Seconds for one request/reply through `url` (the client connects through the service's proxy)."""
    nc = await nats.connect(url, connect_timeout=2, allow_reconnect=False, max_reconnect_attempts=0)
    try:
        async def echo(msg) -> None:
            await msg.respond(b"pong")

        await nc.subscribe("probe.echo", cb=echo)
        await nc.flush()
        t0 = time.monotonic()
        await nc.request("probe.echo", b"ping", timeout=5)
        return time.monotonic() - t0
    finally:
        await nc.close()


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory):
    with System(load_system_file(MINI), report_dir=tmp_path_factory.mktemp("r"), chaos_links=True) as s:
        yield s


def test_every_service_reaches_nats_through_its_own_proxy(system):
    proxies = system.proxies.proxies()
    for name, svc in system.services.items():
        assert name in proxies
        assert proxies[name]["listen"].split(":")[1] in svc.nats_url
        assert str(system.nats.nodes[0].client_port) in proxies[name]["upstream"]


def test_latency_applies_while_active_and_heals(system):
    url = system.services["alpha"].nats_url
    base = system.loop.run(_rtt(url))
    with system.chaos.latency("alpha", ms=150):
        slow = system.loop.run(_rtt(url))
        assert len(system.proxies.toxics("alpha")) == 2
    assert system.proxies.toxics("alpha") == [], "leaving the block removes the toxics"
    assert slow >= 0.3, f"a round trip under 150 ms latency each way took {slow * 1000:.0f} ms"
    assert base < slow  # the healthy link was not already slow
    assert system.proxies.toxics("alpha") == []
    kinds = [f["kind"] for f in system.chaos.log]
    assert "latency" in kinds and system.chaos.log[-1]["duration"] is not None


def test_partition_refuses_connections_and_heals_even_on_error(system):
    url = system.services["beta"].nats_url
    with pytest.raises(RuntimeError, match="inside"):
        with system.chaos.partition("beta"):
            port = int(url.rsplit(":", 1)[1])
            with pytest.raises(ConnectionRefusedError):  # the proxy is down: no way to NATS
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
            raise RuntimeError("inside")
    assert system.proxies.proxies()["beta"]["enabled"] is True
    assert system.loop.run(_rtt(url)) < 1.0


def test_kill_restarts_with_the_same_port(system):
    gamma = system.services["gamma"]
    pid, port = gamma.pid, gamma.port
    system.chaos.kill("gamma", restart_after=0.1)
    assert gamma.pid != pid and gamma.port == port
    assert gamma.http.get("/health").status == 200


def test_unknown_service_is_a_clear_error(system):
    with pytest.raises(ConfigError, match="there is no service named 'gama'; the services are alpha, beta"):
        with system.chaos.latency("gama", ms=1):
            pass


def test_a_cluster_node_can_be_cut_off_from_its_peers(tmp_path: Path):
    raw = tomllib.loads((MINI / "sagaproof.toml").read_text())
    raw["nats"]["cluster"] = 3
    spec = parse_system(raw, MINI / "sagaproof.toml")

    def routes(node) -> int:
        """How many peers this node has routes to (route pooling opens several connections per peer)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{node.http_port}/routez", timeout=2) as r:
            return len({route["remote_id"] for route in json.loads(r.read()).get("routes") or []})

    def wait_routes(node, want, timeout=20.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (n := routes(node)) == want:
                return n
            time.sleep(0.1)
        return routes(node)

    with System(spec, report_dir=tmp_path, chaos_links=True) as system:
        node2 = system.nats.nodes[2]
        assert wait_routes(node2, 2) == 2
        with system.chaos.isolate_nats_node(2):
            assert wait_routes(node2, 0) == 0, "node 2 still has routes to its peers"
        assert wait_routes(node2, 2) == 2, "node 2 did not rejoin its peers after the cut healed"
        asyncio.run(asyncio.sleep(0))
