"""Load shared by the benchmarks that push NATS traffic through links: a core pub/sub flow whose lost
messages are counted rather than waited for forever (a server cuts a slow consumer off, and core NATS
does not resend)."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import nats

STALL = 10.0  # seconds without a message arriving after which the rest count as lost


async def core_flow(pub_url: str, sub_url: str, n: int, subject: str = "bench.flow") -> tuple[float, int]:
    """Publish `n` 1 KiB messages on one connection, receive them on another; returns (messages per second
    from the first publish to the last arrival, or NaN if some were lost; how many arrived). Bounded: the
    publisher flushes every 1,000 messages, and the wait ends once nothing has arrived for :data:`STALL`."""
    sub = await nats.connect(sub_url, pending_size=256 * 1024 * 1024)
    pub = await nats.connect(pub_url, pending_size=256 * 1024 * 1024)
    got = 0
    last = time.perf_counter()
    done = asyncio.Event()

    async def on_msg(_msg: Any) -> None:
        nonlocal got, last
        got += 1
        last = time.perf_counter()
        if got >= n:
            done.set()

    s = await sub.subscribe(subject, cb=on_msg, pending_msgs_limit=n * 2, pending_bytes_limit=-1)
    await sub.flush()
    payload = os.urandom(1024)
    t0 = time.perf_counter()
    for i in range(n):
        await pub.publish(subject, payload)
        if i % 1000 == 999:
            await pub.flush(timeout=10)  # keep the publisher from outrunning the socket
    await pub.flush(timeout=10)
    last = max(last, time.perf_counter())
    while not done.is_set() and time.perf_counter() - last < STALL:
        try:
            await asyncio.wait_for(done.wait(), 0.5)
        except TimeoutError:
            pass
    rate = n / (last - t0) if got >= n else float("nan")
    await s.unsubscribe()
    await pub.close()
    await sub.close()
    return rate, got
