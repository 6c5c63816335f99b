"""An asyncio event loop with a virtual clock, and a toxic chain driven on it, for exact timing tests.

`VirtualClockLoop` is a selector loop whose `time()` only moves when nothing is ready to run: a
wait for a timer takes no real time, the clock jumps to the timer. Optionally each jump is rounded
up to a granularity (epoll waits whole milliseconds, so real timers wake late) and code can spend
"CPU time" with `spend()`, so that the toxics' make-up arithmetic is tested against late wake-ups
and per-chunk overhead, exactly and without any wall-clock bound.

`Chain` puts a real `Link` (the proxy's own chain of toxic stages) between a feeding test and a
recording sink, on that loop.
"""

from __future__ import annotations

import asyncio
import math
import random
import selectors
from collections.abc import Callable, Coroutine
from typing import Any

from sagaproof.chaos.toxiproxy._link import Link, Sink
from sagaproof.chaos.toxiproxy._toxics import REGISTRY, ToxicConfig, decode_attributes


class _VirtualSelector(selectors.DefaultSelector):
    def __init__(self) -> None:
        super().__init__()
        self.loop: VirtualClockLoop | None = None

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = super().select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:
            raise RuntimeError("virtual clock: every task waits and no timer is set (deadlock)")
        assert self.loop is not None
        self.loop.jump(timeout)
        return []


class VirtualClockLoop(asyncio.SelectorEventLoop):
    """A loop whose clock starts at 0 and advances only to the next timer (rounded up to `granularity`)."""

    def __init__(self, granularity: float = 0.0) -> None:
        selector = _VirtualSelector()
        super().__init__(selector)
        selector.loop = self
        self.granularity = granularity
        self._now = 0.0

    def time(self) -> float:
        return self._now

    def jump(self, seconds: float) -> None:
        if self.granularity > 0:
            seconds = math.ceil(seconds / self.granularity - 1e-9) * self.granularity
        self._now += seconds

    def spend(self, seconds: float) -> None:
        """Model CPU time: the clock moves while the caller runs."""
        self._now += seconds


def run_virtual(main: Callable[[], Coroutine[Any, Any, Any]], granularity: float = 0.0) -> Any:
    loop = VirtualClockLoop(granularity)
    try:
        return loop.run_until_complete(main())
    finally:
        leftovers = asyncio.all_tasks(loop)  # the stages still waiting for input
        for task in leftovers:
            task.cancel()
        if leftovers:
            loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
        loop.close()


class FakeConn:
    """What a link needs of its connection: a random source and close()."""

    def __init__(self, seed: int = 1) -> None:
        self.rng = random.Random(seed)
        self.closed = False
        self.closed_at: float | None = None

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.closed_at = asyncio.get_running_loop().time()


class RecordingSink(Sink):
    """The end of a chain: records (time, bytes or None) and optionally costs time per write."""

    def __init__(self, cost: float = 0.0, stall: float = 0.0) -> None:
        self.records: list[tuple[float, bytes | None]] = []
        self.cost = cost
        self.stall = stall  # the first write blocks this long (a destination that stopped reading)
        self.event = asyncio.Event()

    def push(self, item: Any) -> None:
        loop = asyncio.get_running_loop()
        self.records.append((loop.time(), None if item is None else bytes(item[0])))
        if self.cost and isinstance(loop, VirtualClockLoop):
            loop.spend(self.cost)
        self.event.set()

    async def put(self, item: Any) -> None:
        self.push(item)
        if self.stall:
            stall, self.stall = self.stall, 0.0
            await asyncio.sleep(stall)

    @property
    def data(self) -> bytes:
        return b"".join(d for _t, d in self.records if d is not None)

    def time_of_byte(self, n: int) -> float:
        """When the n-th byte (1-based) arrived."""
        seen = 0
        for t, d in self.records:
            if d is not None:
                seen += len(d)
                if seen >= n:
                    return t
        raise AssertionError(f"only {seen} bytes arrived, not {n}")

    async def wait_bytes(self, n: int) -> None:
        while len(self.data) < n:
            self.event.clear()
            await self.event.wait()

    async def wait_eof(self) -> float:
        while not self.records or self.records[-1][1] is not None:
            self.event.clear()
            await self.event.wait()
        return self.records[-1][0]


def toxic(type_: str, stream: str = "downstream", name: str | None = None, toxicity: float = 1.0, **attrs: Any) -> ToxicConfig:
    return ToxicConfig(
        name=name or f"{type_}_{stream}_{id(attrs)}",
        type=type_,
        stream=stream,
        toxicity=toxicity,
        attributes=decode_attributes(REGISTRY[type_], attrs, None),
    )


class Chain:
    """A real Link with toxics, fed by the test, ending in a RecordingSink."""

    def __init__(self, toxics: list[ToxicConfig], sink: RecordingSink | None = None, seed: int = 1) -> None:
        self.conn = FakeConn(seed)
        self.sink = sink or RecordingSink()
        self.link = Link(self.conn, "downstream", None, self.sink)
        self.link.start(toxics)

    def feed(self, data: bytes) -> None:
        self.link.feed(data)

    def eof(self) -> None:
        self.link.feed_eof()
