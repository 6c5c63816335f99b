"""Bringing a real system up and down: NATS, service processes, probes, and no orphans on any way out."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import tomllib
from pathlib import Path

import pytest
from sagaproof.harness.config import load_system_file, parse_system
from sagaproof.harness.env.system import System
from sagaproof.harness.errors import ServiceCrashed

from tests.conftest import MINI, SAGAPROOF, pid_alive, port_free


def _all_pids_and_ports(report_dir: Path) -> tuple[list[int], list[int]]:
    data = json.loads((report_dir / "system.json").read_text())
    pids = [s["pid"] for s in data["services"]] + [n["pid"] for n in data["nats"]]
    ports = [s["port"] for s in data["services"]] + [n["client_port"] for n in data["nats"]]
    return pids, ports


def _wait_gone(pids: list[int], timeout: float = 10.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [p for p in pids if pid_alive(p)]
        if not alive:
            return []
        time.sleep(0.05)
    return [p for p in pids if pid_alive(p)]


def test_normal_exit_leaves_nothing(tmp_path: Path):
    with System(load_system_file(MINI), report_dir=tmp_path) as system:
        pids, ports = _all_pids_and_ports(tmp_path)
        assert all(pid_alive(p) for p in pids)
        assert system.services["alpha"].http.get("/health").status == 200
        run_dir = system.run_dir
    assert _wait_gone(pids) == []
    assert all(port_free(p) for p in ports)
    assert not run_dir.exists()
    for name in ("alpha", "beta", "gamma", "delta", "nats"):
        assert (tmp_path / "logs" / f"{name}.log").stat().st_size > 0


def test_exception_inside_leaves_nothing(tmp_path: Path):
    with pytest.raises(RuntimeError, match="boom"):
        with System(load_system_file(MINI), report_dir=tmp_path):
            pids, ports = _all_pids_and_ports(tmp_path)
            raise RuntimeError("boom")
    assert _wait_gone(pids) == []
    assert all(port_free(p) for p in ports)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["ctrl-c", "sigterm", "sigkill"])
def test_harness_killed_or_interrupted_leaves_nothing(tmp_path: Path, sig: int):
    report = tmp_path / "report"
    proc = subprocess.Popen([*SAGAPROOF, "up", str(MINI), "--report-dir", str(report)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not (report / "system.json").exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the system did not come up"
            time.sleep(0.05)
        time.sleep(0.2)
        pids, ports = _all_pids_and_ports(report)
        reaper = json.loads((report / "system.json").read_text())["reaper_pid"]
        assert all(pid_alive(p) for p in pids)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "Traceback" not in err
    if sig == signal.SIGINT:
        assert proc.returncode in (0, 130)
    elif sig == signal.SIGTERM:
        assert proc.returncode == 143
    assert _wait_gone(pids + [reaper]) == [], "a process the harness started outlived it"
    assert all(port_free(p) for p in ports)


def test_service_that_exits_at_start_is_reported_with_its_log(tmp_path: Path):
    raw = tomllib.loads((MINI / "sagaproof.toml").read_text())
    raw["services"]["beta"]["env"]["EXIT_AT_START"] = "3"
    spec = parse_system(raw, MINI / "sagaproof.toml")
    with pytest.raises(ServiceCrashed) as info:
        with System(spec, report_dir=tmp_path):
            pass
    msg = str(info.value)
    assert "service 'beta' exited with code 3 during start-up" in msg
    assert "failing on purpose at start-up" in msg  # the last lines of its log
    assert str(tmp_path / "logs" / "beta.log") in msg
    pids, _ = _all_pids_and_ports_if_any(tmp_path)
    assert _wait_gone(pids) == []


def _all_pids_and_ports_if_any(report_dir: Path) -> tuple[list[int], list[int]]:
    if (report_dir / "system.json").exists():
        return _all_pids_and_ports(report_dir)
    return [], []


def test_probe_timeout_is_reported_and_cli_exits_3(tmp_path: Path):
    system_dir = tmp_path / "sys"
    system_dir.mkdir()
    (system_dir / "svc.py").write_text((MINI / "svc.py").read_text())
    text = (MINI / "sagaproof.toml").read_text().replace(
        'SVC_NAME = "{name}" }\nready = { http = "/health" }',
        'SVC_NAME = "{name}", NEVER_READY = "1" }\nready = { http = "/health", timeout = "1s" }')
    assert "NEVER_READY" in text
    (system_dir / "sagaproof.toml").write_text(text)
    proc = subprocess.run([*SAGAPROOF, "up", str(system_dir), "--report-dir", str(tmp_path / "r")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3
    assert "service 'delta' did not become ready within 1s (waited for GET /health answering 2xx)" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_jetstream_message_survives_kill_and_restart_of_its_consumer(tmp_path: Path):

    import nats

    raw = tomllib.loads((MINI / "sagaproof.toml").read_text())
    raw["services"]["alpha"]["env"]["HOLD"] = "1.5"  # holds each message 1.5 s before acking
    spec = parse_system(raw, MINI / "sagaproof.toml")
    with System(spec, report_dir=tmp_path) as system:
        async def publish() -> None:
            nc = await nats.connect(system.nats_url)
            await nc.jetstream().publish("work.alpha", b"precious-1")
            await nc.close()

        system.loop.run(publish())
        time.sleep(0.5)  # alpha has the message in hand, not acked
        alpha = system.services["alpha"]
        old_pid = alpha.pid
        alpha.kill()
        assert not pid_alive(old_pid)
        assert alpha.http.base_url  # same port after restart
        alpha.restart()
        assert alpha.pid != old_pid
        deadline = time.monotonic() + 15
        seen: list[str] = []
        while time.monotonic() < deadline and "precious-1" not in seen:
            seen = alpha.http.get("/state").json()["seen"]
            time.sleep(0.1)
        assert seen == ["precious-1"], "the unacked message was not redelivered after kill -9 and restart"


def test_pause_and_resume(tmp_path: Path):
    with System(load_system_file(MINI), report_dir=tmp_path) as system:
        beta = system.services["beta"]
        beta.pause()
        with pytest.raises(OSError):
            beta.http.get("/health", timeout=0.5)
        beta.resume()
        assert beta.http.get("/health").status == 200


def test_two_runs_at_once_do_not_collide(tmp_path: Path):
    spec = load_system_file(MINI)
    with System(spec, report_dir=tmp_path / "a") as a, System(spec, report_dir=tmp_path / "b") as b:
        ports_a = {s.port for s in a.services.values()} | {a.nats.nodes[0].client_port}
        ports_b = {s.port for s in b.services.values()} | {b.nats.nodes[0].client_port}
        assert not ports_a & ports_b
        assert a.run_dir != b.run_dir
        assert a.nats.password != b.nats.password
        for s in (*a.services.values(), *b.services.values()):
            assert s.http.get("/health").status == 200


def test_nats_requires_the_run_credentials(tmp_path: Path):
    import asyncio

    import nats

    with System(load_system_file(MINI), report_dir=tmp_path) as system:
        port = system.nats.nodes[0].client_port

        async def stray() -> None:
            await nats.connect(f"nats://127.0.0.1:{port}", allow_reconnect=False, max_reconnect_attempts=0,
                               connect_timeout=2)

        with pytest.raises(Exception):  # noqa: B017 - nats-py raises its own authorization error type
            asyncio.run(stray())


def test_three_node_cluster_replicates_streams(tmp_path: Path):
    import nats

    raw = tomllib.loads((MINI / "sagaproof.toml").read_text())
    raw["nats"]["cluster"] = 3
    spec = parse_system(raw, MINI / "sagaproof.toml")
    with System(spec, report_dir=tmp_path) as system:
        assert len(system.nats.nodes) == 3
        assert len(set(system.broker.upstreams.values())) == 3  # services spread over the nodes

        async def info() -> int:
            nc = await nats.connect(system.nats.urls[1])
            si = await nc.jetstream().stream_info("MINI")
            await nc.close()
            return si.config.num_replicas

        assert system.loop.run(info()) == 3
        system.restart_nats(2)
        assert system.services["gamma"].http.get("/health").status == 200


def test_an_existing_nats_url_is_used_and_nothing_is_started(tmp_path: Path):
    from sagaproof.harness.env.nats_server import NatsCluster
    from sagaproof.harness.env.reaper import Reaper

    reaper = Reaper()
    reaper.start()
    external = NatsCluster(tmp_path / "ext", tmp_path / "extlogs", reaper=reaper)
    try:
        external.start()
        raw = tomllib.loads((MINI / "sagaproof.toml").read_text())
        raw["nats"]["url"] = external.client_url(0, credentials=False)
        raw["nats"]["user"] = external.user
        raw["nats"]["password"] = external.password
        spec = parse_system(raw, MINI / "sagaproof.toml")
        with System(spec, report_dir=tmp_path / "r") as system:
            assert system.nats is None
            assert system.nats_url == external.url
            assert not (tmp_path / "r" / "logs" / "nats.log").exists()
            assert system.services["alpha"].http.get("/health").status == 200
        assert external.nodes[0].process.running, "the harness must not stop a NATS it did not start"
    finally:
        external.stop()
        reaper.close()


def test_toxiproxy_command_serves_toxiproxy_clients(tmp_path: Path):
    from sagaproof.harness.env.nats_server import free_port

    port = free_port()
    proc = subprocess.Popen([*SAGAPROOF, "toxiproxy", "--port", str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        import requests
        from toxiproxy import Toxiproxy

        deadline = time.monotonic() + 20
        while True:
            try:
                requests.get(f"http://127.0.0.1:{port}/version", timeout=1)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
                time.sleep(0.05)
        client = Toxiproxy()
        client.update_api_consumer("127.0.0.1", port)
        proxy = client.create(upstream=f"127.0.0.1:{free_port()}", name="api", listen="127.0.0.1:0")
        proxy.add_toxic(type="latency", attributes={"latency": 100})
        assert [t.name for t in proxy.toxics().values()] == ["latency_downstream"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
