"""Every service reaches NATS through an observed link: its embedded fault proxy (tapped), or, in front of an
external Toxiproxy whose connections cannot be tapped, a plain observing link chained before it."""

from __future__ import annotations

import subprocess
import time
import tomllib
from pathlib import Path

import requests
from sagaproof.harness.config import parse_system
from sagaproof.harness.env.nats_server import free_port
from sagaproof.harness.session.handle import running

from tests.conftest import MINI, SAGAPROOF


def wait_until(cond, timeout: float = 20.0):  # noqa: ANN001, ANN201
    deadline = time.monotonic() + timeout
    while not (out := cond()):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)
    return out


def test_fault_proxies_are_observed_in_place(tmp_path: Path) -> None:
    spec = parse_system(tomllib.loads((MINI / "sagaproof.toml").read_text()), MINI / "sagaproof.toml")
    with running(spec, report_dir=tmp_path, chaos_links=True) as system:
        assert system.broker._links is None  # no extra hop: the fault proxies themselves are tapped
        for name in system.services:
            assert system.system.proxy_server.proxies.get(name).observe is not None
        assert {r["service"] for r in system.history() if r["kind"] == "nats_connect"} == set(system.services)
        with system.chaos.cut("alpha"):
            wait_until(lambda: system.broker.observers["alpha"].connections >= 2)  # it reconnected
        wait_until(lambda: system.broker.observers["alpha"].open_connections == 1)


def test_an_external_toxiproxy_gets_an_observing_link_in_front(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen([*SAGAPROOF, "toxiproxy", "--port", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: _up(f"http://127.0.0.1:{port}/version"))
        raw = tomllib.loads((MINI / "sagaproof.toml").read_text())
        raw["chaos"] = {"toxiproxy_url": f"http://127.0.0.1:{port}"}
        spec = parse_system(raw, MINI / "sagaproof.toml")
        with running(spec, report_dir=tmp_path, chaos_links=True) as system:
            external = requests.get(f"http://127.0.0.1:{port}/proxies", timeout=5).json()
            assert set(external) == set(system.services)
            for name in system.services:  # service -> observing link -> the external proxy -> NATS
                assert system.broker.upstreams[name] == external[name]["listen"]
            connects = {r["service"] for r in system.history() if r["kind"] == "nats_connect"}
            assert connects == set(system.services)
            with system.chaos.latency("alpha", ms=10):
                pass
    finally:
        proc.terminate()
        proc.wait(15)


def _up(url: str) -> bool:
    try:
        requests.get(url, timeout=1)
        return True
    except requests.ConnectionError:
        return False
