"""NATS message toxics on a real nats-server: drop, duplicate, delay, reorder; the stream stays valid."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any

import nats
import pytest
from chaos_testkit import Env, NatsServer
from sagaproof.chaos.toxiproxy._nats import NatsParser, subject_matches

Body = Callable[[str, str], Awaitable[None]]


def run_nats(env: Env, nats_server: NatsServer, body: Callable[..., Awaitable[None]]) -> None:
    """Create proxy 'svc' to the nats-server and run `body(proxied_url, direct_url)` with a time bound."""
    host, port = env.proxy("svc", upstream=nats_server.addr)
    asyncio.run(asyncio.wait_for(body(f"nats://{host}:{port}", f"nats://{nats_server.addr}"), 30))


async def collect(nc: Any, subject: str) -> tuple[list[bytes], asyncio.Queue]:
    got: list[bytes] = []
    queue: asyncio.Queue = asyncio.Queue()

    async def cb(msg: Any) -> None:
        got.append(msg.data)
        await queue.put(msg)

    await nc.subscribe(subject, cb=cb)
    await nc.flush()
    return got, queue


async def wait_for_count(got: list, n: int, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while len(got) < n and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)  # polled: the callback has no event to await


def test_subject_patterns() -> None:
    assert subject_matches("orders.*", "orders.created")
    assert not subject_matches("orders.*", "orders.created.v1")
    assert subject_matches("orders.>", "orders.created.v1")
    assert not subject_matches("orders.>", "orders")
    assert subject_matches("*.created", "payments.created")
    assert subject_matches("", "anything.at.all") and subject_matches(">", "a")
    assert not subject_matches("a.b", "a.c")


def test_parser_handles_any_split() -> None:
    hdr = b"NATS/1.0\r\nA: b\r\n\r\n"
    stream = (
        b'INFO {"server_id":"x"}\r\nPING\r\nPONG\r\n+OK\r\n-ERR \'Unknown\'\r\n'
        b"MSG orders.1 1 5\r\nhello\r\nMSG orders.2 1 _INBOX.a 3\r\nabc\r\n"
        b"HMSG orders.3 2 %d %d\r\n%sworld\r\nMSG empty 1 0\r\n\r\n" % (len(hdr), len(hdr) + 5, hdr)
    )
    whole = NatsParser("downstream").feed(stream)
    assert b"".join(f.data for f in whole) == stream
    assert [f.subject for f in whole if f.subject] == ["orders.1", "orders.2", "orders.3", "empty"]
    rng = random.Random(5)
    for _ in range(50):
        parser = NatsParser("downstream")
        frames = []
        pos = 0
        while pos < len(stream):
            step = rng.randint(1, 9)
            frames += parser.feed(stream[pos : pos + step])
            pos += step
        assert [(f.data, f.subject) for f in frames] == [(f.data, f.subject) for f in whole]
    up = NatsParser("upstream").feed(
        b"CONNECT {}\r\nPUB a.b 2\r\nhi\r\nHPUB a.c _R 12 14\r\nNATS/1.0\r\n\r\nhi\r\nSUB a.* 1\r\n"
    )
    assert [f.subject for f in up] == [None, "a.b", "a.c", None]


def test_drop_upstream_publish(env: Env, nats_server: NatsServer) -> None:
    async def body(proxied: str, direct: str) -> None:
        sub = await nats.connect(direct)
        pub = await nats.connect(proxied)
        got, _q = await collect(sub, "orders.>")
        env.toxic("svc", "nats_drop", stream="upstream", subject="orders.created", probability=1.0)
        await pub.publish("orders.created", b"lost")
        await pub.publish("orders.paid", b"kept")
        await pub.publish("orders.created", b"lost-too", headers={"K": "v"})
        await pub.flush()  # PING/PONG through the proxy: the connection is healthy
        await wait_for_count(got, 1)
        env.api("DELETE", "/proxies/svc/toxics/nats_drop_upstream")
        await pub.publish("orders.created", b"after")
        await pub.flush()
        await wait_for_count(got, 2)
        await asyncio.sleep(0.1)
        assert got == [b"kept", b"after"]
        await pub.close()
        await sub.close()

    run_nats(env, nats_server, body)


def test_duplicate_downstream_delivery(env: Env, nats_server: NatsServer) -> None:
    async def body(proxied: str, direct: str) -> None:
        sub = await nats.connect(proxied)
        pub = await nats.connect(direct)
        got, _q = await collect(sub, "pay.*")
        env.toxic("svc", "nats_duplicate", stream="downstream", subject="pay.*", probability=1.0)
        for i in range(5):
            await pub.publish("pay.x", b"m%d" % i, headers={"i": str(i)} if i % 2 else None)
        await pub.flush()
        await wait_for_count(got, 10)
        await asyncio.sleep(0.1)
        assert got == [b"m0", b"m0", b"m1", b"m1", b"m2", b"m2", b"m3", b"m3", b"m4", b"m4"]
        env.api("DELETE", "/proxies/svc/toxics/nats_duplicate_downstream")
        await pub.publish("pay.x", b"once")
        await pub.flush()
        await wait_for_count(got, 11)
        await asyncio.sleep(0.1)
        assert got[10:] == [b"once"]
        rtt = await sub.rtt()
        assert rtt < 1.0
        await pub.close()
        await sub.close()

    run_nats(env, nats_server, body)


def test_delay_reorders_and_reorder_swaps(env: Env, nats_server: NatsServer) -> None:
    async def body(proxied: str, direct: str) -> None:
        sub = await nats.connect(proxied)
        pub = await nats.connect(direct)
        got, _q = await collect(sub, "ev.>")
        env.toxic("svc", "nats_delay", stream="downstream", subject="ev.slow", probability=1.0, delay=300)
        await pub.publish("ev.slow", b"first")
        await pub.publish("ev.fast", b"second")
        await pub.flush()
        await wait_for_count(got, 2)
        assert got == [b"second", b"first"]
        env.api("DELETE", "/proxies/svc/toxics/nats_delay_downstream")
        env.toxic("svc", "nats_reorder", stream="downstream", subject="ev.r", probability=1.0)
        got.clear()
        for name in (b"a", b"b", b"c", b"d"):
            await pub.publish("ev.r", name)
        await pub.flush()
        await wait_for_count(got, 4)
        assert got == [b"b", b"a", b"d", b"c"]
        await pub.close()
        await sub.close()

    run_nats(env, nats_server, body)


def test_messages_split_over_many_reads(env: Env, nats_server: NatsServer) -> None:
    big = bytes(range(256)) * 400  # 100 KiB: several 32 KiB reads

    async def body(proxied: str, direct: str) -> None:
        sub = await nats.connect(direct)
        pub = await nats.connect(proxied)
        got, _q = await collect(sub, "big.>")
        # slicer first, so the message toxic sees frames cut into small pieces
        env.toxic("svc", "slicer", stream="upstream", average_size=7, size_variation=3)
        env.toxic("svc", "nats_drop", stream="upstream", subject="big.drop")
        for i in range(3):
            await pub.publish("big.drop", big)
            await pub.publish("big.keep", big + b"%d" % i)
        await pub.flush(timeout=10)
        await wait_for_count(got, 3, timeout=15)
        assert got == [big + b"0", big + b"1", big + b"2"]
        await pub.close()
        await sub.close()

    run_nats(env, nats_server, body)


def test_probability_is_per_message(env: Env, nats_server: NatsServer) -> None:
    async def body(proxied: str, direct: str) -> None:
        sub = await nats.connect(direct)
        pub = await nats.connect(proxied)
        got, _q = await collect(sub, "p.>")
        env.toxic("svc", "nats_drop", stream="upstream", subject="p.>", probability=0.5)
        for i in range(60):
            await pub.publish("p.x", b"%d" % i)
        await pub.flush()
        await asyncio.sleep(0.2)
        assert 10 <= len(got) <= 50, len(got)
        await pub.close()
        await sub.close()

    run_nats(env, nats_server, body)


def test_dropped_jetstream_publish_times_out(env: Env, nats_server: NatsServer) -> None:
    async def body(proxied: str, direct: str) -> None:
        nc = await nats.connect(proxied)
        js = nc.jetstream()
        await js.add_stream(name="ORDERS", subjects=["orders.>"])
        env.toxic("svc", "nats_drop", stream="upstream", subject="orders.>")
        with pytest.raises(nats.errors.TimeoutError):
            await js.publish("orders.one", b"x", timeout=0.5)
        env.api("DELETE", "/proxies/svc/toxics/nats_drop_upstream")
        ack = await js.publish("orders.two", b"y", timeout=2)
        assert ack.seq == 1  # the dropped one never reached the stream
        await nc.close()

    run_nats(env, nats_server, body)


def test_an_observed_link_with_toxics_reads_big_messages(env: Env, nats_server: NatsServer) -> None:
    """Reads over 32 KiB enter a toxic chain as views of the read; the observer (chaos.observe) still reads them."""
    from sagaproof.chaos.observe import WireObserver, attach

    host, port = env.proxy("obs", upstream=nats_server.addr)
    observer = WireObserver("obs")
    attach(env.server.proxies.get("obs"), observer)
    for stream in ("upstream", "downstream"):
        env.toxic("obs", "latency", stream=stream, latency=0)
    payloads = [bytes([i]) * 200_000 for i in range(5)]

    async def body(proxied: str, direct: str) -> None:
        nc = await nats.connect(proxied)
        got, _queue = await collect(nc, "big.data")
        pub = await nats.connect(direct)
        for payload in payloads:
            await pub.publish("big.data", payload)
        await pub.flush()
        await wait_for_count(got, len(payloads), timeout=20)
        assert got == payloads
        await nc.close()
        await pub.close()

    asyncio.run(asyncio.wait_for(body(f"nats://{host}:{port}", f"nats://{nats_server.addr}"), 60))
    env.loop.run(asyncio.sleep(0.1))  # let the observer read what it queued, on the proxy's loop
    assert observer.problems == []
    assert observer.core_received.get(b"big.data") == len(payloads)
