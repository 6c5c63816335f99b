"""Server lifecycle: public API, idempotent close, seeded reproducibility, standalone command."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys

import pytest
import requests
import sagaproof.chaos.toxiproxy as tp
from chaos_testkit import Env, LoopThread, connect, recv_exactly, recv_until_closed, start_echo
from sagaproof.chaos.errors import ChaosError

from sagaproof import chaos


def test_public_api() -> None:
    assert set(tp.__all__) == {
        "VERSION",
        "ToxiproxyServer",
        "add_arguments",
        "event_loop_factory",
        "main",
        "openapi_path",
        "run_standalone",
        "serve",
        "subject_matches",
        "toxic_types",
        # the targeted windows of the nemesis (issue 20): a plan the harness registers for a link's nats_windows toxic
        "WINDOW_KINDS",
        "Window",
        "WindowPlan",
        "register_plan",
        "unregister_plan",
        # the harness's hold on a restarted broker's new connections until its recorder is back
        "hold_dials",
        "release_dials",
    }
    for name in tp.__all__:
        assert hasattr(tp, name), name
    assert chaos.ChaosError is ChaosError
    assert "nats_drop" in tp.toxic_types() and "latency" in tp.toxic_types()


def test_close_is_idempotent_and_closes_everything() -> None:
    async def body() -> None:
        echo = await start_echo()
        async with await tp.serve() as server:
            assert server.url == f"http://127.0.0.1:{server.port}" and server.port > 0
            proxy = await server.proxies.create(
                {
                    "name": "p",
                    "listen": "127.0.0.1:0",
                    "upstream": f"127.0.0.1:{echo.sockets[0].getsockname()[1]}",
                }
            )
            host, port = proxy.listen.rsplit(":", 1)
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(b"hi")
            assert await reader.readexactly(2) == b"hi"
            await server.close()
            assert await asyncio.wait_for(reader.read(), 2) == b""
            with pytest.raises(OSError):
                await asyncio.open_connection(host, int(port))
            writer.close()
        await server.close()
        echo.close()

    asyncio.run(body())


def test_api_port_in_use_is_a_chaos_error() -> None:
    async def body() -> None:
        async with await tp.serve() as first:
            with pytest.raises(ChaosError, match="cannot listen"):
                await tp.serve(port=first.port)

    asyncio.run(body())


def outcomes(seed: int) -> list[bool]:
    """Per-connection outcome of a toxicity-0.5 limit_data toxic on a fresh seeded server."""
    loop = LoopThread()
    server = loop.run(tp.serve(seed=seed))
    echo = loop.run(start_echo())
    try:
        http = requests.Session()
        body = {
            "name": "s",
            "listen": "127.0.0.1:0",
            "upstream": f"127.0.0.1:{echo.sockets[0].getsockname()[1]}",
        }
        host, port = http.post(server.url + "/proxies", json=body).json()["listen"].rsplit(":", 1)
        http.post(
            server.url + "/proxies/s/toxics",
            json={"type": "limit_data", "toxicity": 0.5, "attributes": {"bytes": 0}},
        )
        result = []
        for _ in range(16):
            sock = connect((host, int(port)))
            sock.sendall(b"x")
            try:
                result.append(sock.recv(1) == b"x")  # active: closed with nothing; inactive: the echo
            except ConnectionResetError:
                result.append(False)
            sock.close()
        return result
    finally:
        loop.run(server.close())
        echo.close()
        loop.stop()


def test_same_seed_same_fault_outcomes() -> None:
    first = outcomes(99)
    assert first == outcomes(99)
    assert 0 < sum(first) < 16


def test_standalone_command_prints_address_and_stops_on_sigterm() -> None:
    code = "import chaos.toxiproxy as t, sys; sys.exit(t.main(['--port', '0', '--seed', '5']))"
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        found = re.fullmatch(r"sagaproof toxiproxy listening on (http://127\.0\.0\.1:\d+) \(seed 5\)\n", line)
        assert found, line
        assert requests.get(found.group(1) + "/version", timeout=5).json() == {"version": tp.VERSION}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=5)


def test_standalone_command_bad_port_exits_2() -> None:
    loop = LoopThread()
    server = loop.run(tp.serve())
    try:
        code = f"import chaos.toxiproxy as t, sys; sys.exit(t.main(['--port', '{server.port}']))"
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert done.returncode == 2
        assert (
            done.stderr.startswith("error: The Toxiproxy API cannot listen on 127.0.0.1:")
            and "Traceback" not in done.stderr
        )
    finally:
        loop.run(server.close())
        loop.stop()


def test_standalone_runs_on_uvloop_unless_asked_not_to(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    import uvloop

    monkeypatch.delenv("SAGAPROOF_EVENT_LOOP", raising=False)
    assert tp.event_loop_factory() is uvloop.new_event_loop
    monkeypatch.setenv("SAGAPROOF_EVENT_LOOP", "asyncio")
    assert tp.event_loop_factory() is asyncio.new_event_loop


def test_held_dials_wait_for_their_release_while_other_upstreams_pass(env: Env) -> None:
    # A broker restart: the services' links must not reach the restarted node before the harness's recorder.
    held_addr = env.proxy("held")
    free_addr = env.proxy("free", upstream=env.closer_addr)
    tp.hold_dials(env.echo_addr)
    try:
        held = connect(held_addr)
        held.sendall(b"ping")
        # a later connection toward another upstream is dialed and answered meanwhile ...
        assert recv_until_closed(connect(free_addr))[0] == b"bye"
        # ... while the held one has not reached its upstream: nothing has come back
        held.setblocking(False)
        with pytest.raises(BlockingIOError):
            held.recv(16)
        held.setblocking(True)
    finally:
        tp.release_dials(env.echo_addr)
    held.settimeout(10)
    assert recv_exactly(held, 4) == b"ping"
