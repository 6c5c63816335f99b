"""Many clients connecting at once: the proxy's listen queue is as long as the system allows
(net.core.somaxconn, as the reference server asks for), so 1,000 connections opened at the same
moment are all accepted on their first SYN and all carry data, on asyncio's loop and on uvloop.

A connection attempt the listener's queue had no room for is not refused on Linux: its SYN is
dropped and sent again a second later. The kernel counts that retransmission in the client
socket's TCP_INFO (`tcpi_total_retrans`), which the test reads as soon as each connect completes,
before any data is sent; no time is measured. The proxy's event loop is held while the SYNs are
sent, so the queue alone must hold them all, on either loop."""

from __future__ import annotations

import errno
import resource
import selectors
import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest
from chaos_testkit import Env, somaxconn

pytestmark = pytest.mark.parametrize("env", ["asyncio", "uvloop"], indirect=True)

N = 1000
TCPI_TOTAL_RETRANS = 100  # byte offset of tcpi_total_retrans in Linux's struct tcp_info
BOUND = 120.0  # s: a bound on the waits so that a broken proxy fails the test instead of hanging it


@pytest.fixture
def room_for_n() -> Iterator[None]:
    """Skip (saying why) when the system could not hold N connections at once through a proxy; raise
    the open-file limit for the test if it must, and put it back after."""
    if somaxconn() < N + 24:
        pytest.skip(f"net.core.somaxconn is {somaxconn()}: a listen queue cannot hold {N} connections here")
    need = 4 * N + 256  # client, accepted, upstream and echo sockets all live in this process
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            pytest.skip(f"the open-file limit is {hard}: {need} sockets are needed")
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _syn_retransmits(sock: socket.socket) -> int:
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    return int(struct.unpack_from("I", info, TCPI_TOTAL_RETRANS)[0])


def test_a_thousand_connections_at_once_are_all_accepted_first_time(room_for_n: None, env: Env) -> None:
    addr = env.proxy()
    socks: list[socket.socket] = []
    sel = selectors.DefaultSelector()
    # The proxy's loop is held while every SYN is sent, so the listen queue alone must hold them
    # all (as when a busy server cannot accept for a moment); it is let go before any is waited for.
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        held.set()
        release.wait(BOUND)

    env.loop.loop.call_soon_threadsafe(hold)
    assert held.wait(BOUND), "the proxy's event loop never ran"
    try:
        for _ in range(N):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(sock)
            sock.setblocking(False)
            sock.connect_ex(addr)
            sel.register(sock, selectors.EVENT_WRITE)
        release.set()
        failures: dict[str, int] = {}
        retransmitted = 0
        pending = N
        deadline = time.monotonic() + BOUND
        while pending and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=1.0):
                sock = key.fileobj  # type: ignore[assignment]
                sel.unregister(sock)
                pending -= 1
                err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    name = errno.errorcode.get(err, str(err))
                    failures[name] = failures.get(name, 0) + 1
                elif _syn_retransmits(sock):
                    retransmitted += 1
        assert pending == 0, f"{pending} of {N} connects never completed"
        assert failures == {}, f"connects failed: {failures}"
        assert retransmitted == 0, f"{retransmitted} of {N} connection attempts were dropped and sent again"
        # and every one of them is proxied: a byte goes through and comes back on each
        for sock in socks:
            sock.setblocking(True)
            sock.settimeout(BOUND)
            sock.sendall(b"x")
        echoed = sum(1 for sock in socks if sock.recv(1) == b"x")
        assert echoed == N
    finally:
        release.set()
        sel.close()
        for sock in socks:
            sock.close()
