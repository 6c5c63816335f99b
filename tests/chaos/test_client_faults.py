"""FaultProxyClient and raw toxiproxy-python against the server; fault context managers heal;
process helpers on a real process."""

from __future__ import annotations

import threading
import time

import pytest
import sagaproof.chaos.toxiproxy as tp
from chaos_testkit import (
    RUNNING,
    Env,
    LoopThread,
    SleeperProcess,
    connect,
    recv_exactly,
    recv_until_closed,
    wait_state,
)
from sagaproof.chaos import ChaosError
from sagaproof.chaos.client import FaultProxyClient
from sagaproof.chaos.faults import Faults, ProcessControl, kill, pause
from toxiproxy import Toxiproxy
from toxiproxy.api import APIConsumer
from toxiproxy.exceptions import NotFound, ProxyExists


def addr_of(listen: str) -> tuple[str, int]:
    host, port = listen.rsplit(":", 1)
    return host, int(port)


def rtt(sock, payload: bytes = b"ping") -> float:  # noqa: ANN001
    t0 = time.monotonic()
    sock.sendall(payload)
    assert recv_exactly(sock, len(payload)) == payload
    return time.monotonic() - t0


def test_toxiproxy_python_drives_the_server(env: Env) -> None:
    host, port = env.url.removeprefix("http://").rsplit(":", 1)
    saved = (APIConsumer.host, APIConsumer.port)
    try:
        server = Toxiproxy()
        server.update_api_consumer(host, int(port))
        assert server.running() and b"2.12.0" in server.version()
        proxy = server.create(upstream=env.echo_addr, name="tp")
        assert proxy.listen.startswith("127.0.0.1:") and proxy.enabled is True
        with pytest.raises(ProxyExists):
            server.create(upstream=env.echo_addr, name="tp")
        sock = connect(addr_of(proxy.listen))
        proxy.add_toxic(type="latency", attributes={"latency": 120})
        assert set(proxy.toxics()) == {"latency_downstream"}
        assert proxy.get_toxic("latency_downstream").attributes == {"latency": 120, "jitter": 0}
        assert rtt(sock) >= 0.12
        proxy.destroy_toxic("latency_downstream")
        assert rtt(sock) < 0.05
        with proxy.down():
            _data, how = recv_until_closed(sock)
            assert how in ("eof", "reset")
            with pytest.raises(ConnectionRefusedError):
                connect(addr_of(proxy.listen), timeout=2)
        sock = connect(addr_of(proxy.listen))
        assert rtt(sock) < 0.1
        proxy.add_toxic(type="timeout", stream="upstream", attributes={"timeout": 0})
        assert server.reset() is True
        assert proxy.toxics() == {}
        created = server.populate([{"name": "pop", "upstream": env.echo_addr, "listen": "127.0.0.1:0"}])
        assert [p.name for p in created] == ["pop"]
        assert set(server.proxies()) == {"tp", "pop"}
        with pytest.raises(NotFound):
            server.get_proxy("tp").destroy_toxic("nope")
        server.destroy_all()
        assert server.proxies() == {}
    finally:
        APIConsumer.host, APIConsumer.port = saved


def test_fault_proxy_client(env: Env) -> None:
    client = FaultProxyClient(env.url)
    assert client.version() == "2.12.0" and client.running()
    listen = client.create_proxy("c", env.echo_addr)
    assert client.proxies()["c"]["listen"] == listen
    sock = connect(addr_of(listen))
    name = client.add_toxic("c", "latency", latency=100)
    assert name == "latency_downstream"
    assert rtt(sock) >= 0.1
    assert (
        client.add_toxic("c", "latency", stream="upstream", toxicity=0.0, name="idle", latency=999) == "idle"
    )
    assert [t["name"] for t in client.toxics("c")] == ["idle", "latency_downstream"]
    client.remove_toxic("c", "latency_downstream")
    client.remove_toxic("c", "idle")
    assert rtt(sock) < 0.05
    client.disable("c")
    with pytest.raises(ConnectionRefusedError):
        connect(addr_of(listen), timeout=2)
    client.enable("c")
    assert rtt(connect(addr_of(listen))) < 0.1
    client.disable("c")
    client.reset()
    assert client.proxies()["c"]["enabled"] is True
    client.delete_proxy("c")
    assert client.proxies() == {}


def test_client_errors_are_one_sentence(env: Env) -> None:
    client = FaultProxyClient(env.url)
    listen = client.create_proxy("e", env.echo_addr)
    cases = [
        (lambda: client.add_toxic("missing", "latency"), 404, "proxy not found"),
        (lambda: client.create_proxy("e", env.echo_addr), 409, "proxy already exists"),
        (lambda: client.add_toxic("e", "teleport"), 400, "invalid toxic type"),
        (lambda: client.remove_toxic("e", "nope"), 404, "toxic not found"),
        (lambda: client.create_proxy("f", env.echo_addr, listen=listen), 500, "address already in use"),
        (lambda: client.disable("missing"), 404, "proxy not found"),
        (lambda: client.enable("missing"), 404, "proxy not found"),
        (lambda: client.delete_proxy("missing"), 404, "proxy not found"),
    ]
    for call, status, text in cases:
        with pytest.raises(ChaosError) as info:
            call()
        assert info.value.status == status and text in str(info.value), str(info.value)
        assert str(info.value).count("\n") == 0
    with pytest.raises(ChaosError, match="is not of the form"):
        FaultProxyClient("localhost:8474")
    dead = FaultProxyClient("http://127.0.0.1:1")
    with pytest.raises(ChaosError, match="no Toxiproxy server answers"):
        dead.add_toxic("x", "latency")
    with pytest.raises(ChaosError, match="no Toxiproxy server answers"):
        dead.proxies()


def test_two_servers_from_two_threads(env: Env) -> None:
    loop2 = LoopThread()
    other = loop2.run(tp.serve(seed=2))
    try:
        clients = [FaultProxyClient(env.url), FaultProxyClient(other.url)]
        errors: list[BaseException] = []

        def work(i: int) -> None:
            try:
                for n in range(15):
                    clients[i].create_proxy(f"s{i}_{n}", env.echo_addr)
                    clients[i].add_toxic(f"s{i}_{n}", "noop")
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(i,)) for i in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not errors
        assert all(n.startswith("s0_") for n in clients[0].proxies()) and len(clients[0].proxies()) == 15
        assert all(n.startswith("s1_") for n in clients[1].proxies()) and len(clients[1].proxies()) == 15
    finally:
        loop2.run(other.close())
        loop2.stop()


def test_fault_context_managers_always_heal(env: Env) -> None:
    client = FaultProxyClient(env.url)
    faults = Faults(client)
    listen = client.create_proxy("svc", env.echo_addr)
    sock = connect(addr_of(listen))
    with faults.latency("svc", ms=60):
        assert rtt(sock) >= 0.12  # both directions
    assert client.toxics("svc") == []
    with pytest.raises(RuntimeError), faults.throttle("svc", kbps=1):
        assert len(client.toxics("svc")) == 2
        raise RuntimeError("user code failed")
    assert client.toxics("svc") == []
    with faults.partition("svc"):
        _data, how = recv_until_closed(sock)
        assert how in ("eof", "reset")
        with pytest.raises(ConnectionRefusedError):
            connect(addr_of(listen), timeout=2)
    sock = connect(addr_of(listen))
    with faults.partition("svc", mode="timeout"):
        sock.sendall(b"void")
        assert recv_until_closed(sock, limit=0.3) == (b"", "timeout")
    assert recv_until_closed(sock)[1] in ("eof", "reset")  # healing a timeout closes held connections
    with faults.cut("svc"):
        sock = connect(addr_of(listen))
        sock.sendall(b"x")
        assert recv_until_closed(sock) == (b"", "reset")
    sock = connect(addr_of(listen))
    with faults.slice("svc", average_size=4, size_variation=0, delay_us=0):
        assert rtt(sock, b"0123456789" * 10) < 1
    with (
        faults.drop("svc", "a.>", 0.5),
        faults.duplicate("svc"),
        faults.delay_messages("svc"),
        faults.reorder("svc", direction="upstream"),
    ):
        assert {t["type"] for t in client.toxics("svc")} == {
            "nats_drop",
            "nats_duplicate",
            "nats_delay",
            "nats_reorder",
        }
    with faults.latency("svc", ms=1):
        client.reset()  # healed by someone else meanwhile: exit must not fail
    assert client.toxics("svc") == []
    for bad in (
        lambda: faults.latency("svc", ms=-1),
        lambda: faults.latency("svc", ms=1, direction="sideways"),
        lambda: faults.drop("svc", probability=2),
        lambda: faults.partition("svc", mode="unplug"),
    ):
        with pytest.raises(ChaosError):
            with bad():
                pass


def test_process_helpers_on_a_real_process() -> None:
    proc = SleeperProcess()
    try:
        assert isinstance(proc, ProcessControl)
        seen: list[str] = []
        watcher = threading.Timer(0.05, lambda: seen.append(wait_state(proc, {"T"}, 0.2)))
        watcher.start()
        pause(proc, 0.4)
        watcher.join()
        assert seen == ["T"] and wait_state(proc, RUNNING) in RUNNING
        first = proc.proc.pid
        kill(proc, restart_after=0.1)
        assert proc.starts == 2 and proc.proc.pid != first and wait_state(proc, RUNNING) in RUNNING
        with pytest.raises(ChaosError):
            pause(proc, -1)
    finally:
        proc.stop()
