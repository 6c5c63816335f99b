"""Ports that cannot collide: chosen outside the ephemeral range, locked against every other sagaproof process on
the host, and a process whose port another program took at start is started again on another port."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sagaproof.harness.config import load_system_file
from sagaproof.harness.env import ports
from sagaproof.harness.env.nats_server import free_port
from sagaproof.harness.env.system import System
from sagaproof.harness.events import EventBus, PortRetried, ServiceStarting
from sagaproof.harness.history import History

from tests.conftest import MINI, SAGAPROOF, SHOP


def _outside(port: int, low: int, high: int) -> bool:
    return port >= 1024 and not low <= port <= high


# ------------------------------------------------------------------------------------------ the choice


def test_the_ephemeral_and_reserved_ranges_are_read_from_the_kernel_files(tmp_path: Path) -> None:
    (tmp_path / "range").write_text("20000\t50000\n")
    (tmp_path / "reserved").write_text("8080,10000-10004,65535\n")
    assert ports.ephemeral_range(tmp_path / "range") == (20000, 50000)
    assert ports.ephemeral_range(tmp_path / "missing") == ports.FALLBACK_EPHEMERAL
    (tmp_path / "bad").write_text("nonsense\n")
    assert ports.ephemeral_range(tmp_path / "bad") == ports.FALLBACK_EPHEMERAL
    assert ports.reserved_ports(tmp_path / "reserved") == {8080, 10000, 10001, 10002, 10003, 10004, 65535}
    assert ports.reserved_ports(tmp_path / "missing") == set()

    chosen = ports.candidates((20000, 50000), {8080, 10000, 10001, 10002, 10003, 10004, 65535})
    assert chosen[0] == 10005 and chosen[-1] == 65534
    assert not [p for p in chosen if 20000 <= p <= 50000 or p < 1024]
    # an ephemeral range that leaves too little above 10000: the ports from 1024 up are used
    wide = ports.candidates((10000, 65500), set())
    assert wide[0] == 1024 and 9999 in wide and 10000 not in wide and 65501 in wide


def test_the_ports_handed_out_are_outside_this_hosts_ephemeral_range(tmp_path: Path) -> None:
    low, high = ports.ephemeral_range()
    reserved = ports.reserved_ports()
    chooser = ports.Allocator(tmp_path)
    taken = [chooser.take() for _ in range(50)]
    assert len(set(taken)) == 50
    assert all(_outside(p, low, high) and p not in reserved for p in taken), (low, high, taken)
    # what tests and benchmarks use for servers of their own (it was a port-0 port, from the ephemeral range)
    assert _outside(free := free_port(), low, high), free
    assert ports._try_lock(ports.lock_dir(), free) is None  # and kept locked while its server starts
    # the random order is not the sequential one (two processes do not walk the same way)
    assert taken != sorted(taken)


def test_the_shared_lock_directory_is_sticky_and_world_writable() -> None:
    directory = ports.lock_dir()
    st = os.lstat(directory)
    assert stat.S_ISDIR(st.st_mode)
    if os.environ.get(ports.DIR_ENV) is None and st.st_uid == os.getuid():
        assert stat.S_IMODE(st.st_mode) == 0o1777


_HOLDER = """
import sys
from pathlib import Path
from sagaproof.harness.env import ports
from sagaproof.harness.env.nats_server import free_port
chooser = ports.Allocator(Path(sys.argv[1]), order="sequential")
print(chooser.take(), flush=True)
sys.stdin.read()
"""


def test_a_port_locked_by_another_process_is_skipped_and_freed_when_that_process_dies(tmp_path: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(tmp_path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        held = int(holder.stdout.readline())
        assert (tmp_path / f"{held}.lock").exists()
        # the same (sequential) order: without the lock this process would be handed the same port
        mine = ports.Allocator(tmp_path, order="sequential")
        got = mine.take()
        assert got != held
        assert ports._try_lock(tmp_path, held) is None  # still held by the other process
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
        holder.stdin.close()
    fd = ports._try_lock(tmp_path, held)  # its holder died: the kernel let the lock go
    assert fd is not None
    os.close(fd)
    mine.release(got)


def test_a_port_bound_by_a_foreign_program_is_skipped(tmp_path: Path) -> None:
    first = ports.Allocator(tmp_path, order="sequential")
    port = first.take()
    first.release(port)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as foreign:
        foreign.bind(("127.0.0.1", port))
        again = ports.Allocator(tmp_path, order="sequential")
        got = again.take()
        assert got != port
        again.release(got)


def test_a_failure_other_than_a_taken_port_is_not_retried(tmp_path: Path) -> None:
    pool = ports.Ports(ports.Allocator(tmp_path))
    calls: list[int] = []

    def use(port: int) -> int:
        calls.append(port)
        raise ValueError("bad config")

    with pytest.raises(ValueError):
        ports.with_port(pool, use)
    assert len(calls) == 1 and pool.ports == []


# ------------------------------------------------------------------------------------------ taken at start


def test_a_service_and_a_nats_node_whose_ports_are_taken_at_start_are_started_on_others(tmp_path: Path) -> None:
    """A program that is not sagaproof binds the port after it was chosen (here: the moment the process is about
    to start): the process fails to bind, is started again on another port, and the history says so."""
    bus = EventBus()
    history = History(tmp_path / "events.jsonl", t0=time.time())
    bus.subscribe(history)
    foreign: dict[str, socket.socket] = {}
    taken: dict[str, int] = {}

    def take_it(event: object) -> None:
        if isinstance(event, ServiceStarting) and event.service in ("alpha", "nats-0") \
                and event.service not in foreign:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", event.port))
            foreign[event.service] = s
            taken[event.service] = event.port

    bus.subscribe(take_it)
    try:
        with System(load_system_file(MINI), report_dir=tmp_path / "report", bus=bus) as system:
            alpha = system.services["alpha"]
            assert alpha.port != taken["alpha"]
            assert alpha.http.get("/health").status == 200
            assert system.nats is not None
            assert system.nats.nodes[0].client_port != taken["nats-0"]
            manifest = json.loads((tmp_path / "report" / "system.json").read_text())
            assert {s["name"]: s["port"] for s in manifest["services"]}["alpha"] == alpha.port
    finally:
        for s in foreign.values():
            s.close()
    history.close()
    records = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    retries = {r["process"]: r for r in records if r["kind"] == "port_retry"}
    assert set(retries) == {"alpha", "nats-0"}, retries
    assert retries["alpha"]["port"] == taken["alpha"]
    assert retries["alpha"]["new_port"] == alpha.port
    assert "address already in use" in retries["alpha"]["reason"].lower()
    assert retries["nats-0"]["port"] == taken["nats-0"]
    assert "started again on port" in retries["alpha"]["line"]
    import jsonschema_rs  # the records follow docs/report.schema.json

    schema = json.loads((Path(__file__).resolve().parents[2] / "docs" / "report.schema.json").read_text())
    valid = jsonschema_rs.validator_for({"$schema": schema["$schema"], "$defs": schema["$defs"],
                                         "$ref": "#/$defs/records/port_retry"})
    assert all(valid.is_valid(r) for r in retries.values())


def test_a_service_that_fails_for_another_reason_is_not_moved(tmp_path: Path) -> None:
    import tomllib

    from sagaproof.harness.config import parse_system
    from sagaproof.harness.errors import ServiceCrashed

    data = tomllib.loads((MINI / "sagaproof.toml").read_text())
    data["services"] = {"alpha": data["services"]["alpha"]}
    data["services"]["alpha"]["env"]["EXIT_AT_START"] = "4"
    bus = EventBus()
    seen: list[object] = []
    bus.subscribe(seen.append)
    with pytest.raises(ServiceCrashed):
        System(parse_system(data, MINI / "sagaproof.toml"), report_dir=tmp_path, bus=bus).start()
    assert not [e for e in seen if isinstance(e, PortRetried)]
    assert len([e for e in seen if isinstance(e, ServiceStarting) and e.service == "alpha"]) == 1


# ------------------------------------------------------------------------------------------ two runs at once


@pytest.mark.slow
def test_two_runs_started_at_once_with_the_same_port_order_both_pass(tmp_path: Path) -> None:
    """Both runs walk the candidates in the same (sequential) order, so each wants the same ports: only the
    lock keeps them apart. Both must pass, on disjoint ports outside the ephemeral range."""
    env = dict(os.environ, **{ports.ORDER_ENV: "sequential"})
    runs = [subprocess.Popen([*SAGAPROOF, "run", str(SHOP), "--seed", "1", "--sagas", "3", "--faults", "latency",
                              "--report-dir", str(tmp_path / name)], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
            for name in ("a", "b")]
    outputs = [p.communicate(timeout=300)[0] for p in runs]
    for p, out in zip(runs, outputs, strict=True):
        assert p.returncode == 0, out[-3000:]
    low, high = ports.ephemeral_range()
    used = []
    for name in ("a", "b"):
        manifest = json.loads((tmp_path / name / "system.json").read_text())
        mine = {s["port"] for s in manifest["services"]}
        mine |= {n[k] for n in manifest["nats"] for k in ("client_port", "http_port")}
        mine |= {int(s["nats_url"].rsplit(":", 1)[1]) for s in manifest["services"]}  # each service's link
        mine.add(int(manifest["proxy_api"].rsplit(":", 1)[1]))
        assert all(_outside(p, low, high) for p in mine), mine
        used.append(mine)
    assert not used[0] & used[1], used


def test_a_port_dir_that_cannot_be_used_is_a_clear_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sagaproof.harness.errors import ConfigError

    (tmp_path / "file").write_text("")
    monkeypatch.setenv(ports.DIR_ENV, str(tmp_path / "file"))
    with pytest.raises(ConfigError, match="SAGAPROOF_PORT_DIR=.*unset it"):
        ports.lock_dir()
    monkeypatch.setenv(ports.DIR_ENV, str(tmp_path / "locks"))
    assert ports.lock_dir() == tmp_path / "locks" and (tmp_path / "locks").is_dir()


def test_a_link_whose_port_is_taken_before_it_listens_is_made_on_another(tmp_path: Path) -> None:
    """The links (observing and fault proxies) bind their port themselves: a program that takes it between the
    choice and the bind makes the link listen on another port, and the caller is told."""
    from sagaproof.chaos.observe import WireObserver
    from sagaproof.harness.env.aio import LoopThread
    from sagaproof.harness.env.broker_view import _make_links

    pool = ports.Ports(ports.Allocator(tmp_path))
    loop = LoopThread()
    foreign: list[socket.socket] = []
    retried: list[tuple[int, int, str]] = []
    try:
        links = loop.run(_make_links(), timeout=15)

        def use(port: int) -> str:
            if not foreign:  # the first port given: another program binds it first
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.bind(("127.0.0.1", port))
                s.listen()
                foreign.append(s)
            return str(loop.run(links.add("svc", "127.0.0.1:9", WireObserver("svc"), f"127.0.0.1:{port}"),
                                timeout=15))

        listen = ports.with_port(pool, use, lambda old, new, why: retried.append((old, new, why)))
        assert len(retried) == 1
        old, new, why = retried[0]
        assert old == foreign[0].getsockname()[1] and "address already in use" in why
        assert listen == f"127.0.0.1:{new}" and pool.ports == [new]
        loop.run(links.close(), timeout=15)
    finally:
        for s in foreign:
            s.close()
        loop.close()
        pool.close()
