"""Connections, links and toxic stages: the data path of a proxy.

Each proxied connection has two one-way links: upstream (client -> server bytes) and
downstream (server -> client). Each socket is served by a `Side` protocol: what it reads feeds
the link that starts there, and it is the destination of the link that ends there. A link is
a chain of stages, one per toxic of that direction in insertion order, ending at the
destination socket. Every read is stamped with the event loop's clock; reads longer than 32 KiB
enter a chain as 32 KiB chunks (views of the read, not copies), as the reference server reads.

As in the reference server, stages are independent tasks joined by bounded pipes, so a toxic
can hold data (latency) while the next one works, and toxics are added, updated and removed
on live connections by re-splicing the chain: the stage before the change is interrupted and
restarted (with a fresh toxicity draw), a removed stage flushes what it holds downstream.
When a source reaches end-of-stream the EOF travels down the chain; when it reaches the end
the link's destination socket is closed (fully, not half-closed) and the other link's source,
that same socket, has ended with it: its EOF travels down its own chain, so a `slow_close` on
either link delays the close the client sees whichever side closed first, as in the reference
server (whose write loop closes its destination and whose other read loop then fails). The
connection is gone when both links have ended.

With no toxics a read is written straight to the other socket from the protocol callback: no
task, no queue and no copy. Back-pressure is the transports' own: a full destination (or a full
first pipe) pauses reading from the source until it drains.

The socket ends (`Side`, `SocketSink`) and the pipes between stages are in `_sides.py`.

Every time a toxic uses (`Stub.now`, `Stub.sleep`, `Stub.recv` timeouts, chunk stamps) comes from
the event loop's clock, so the toxics' arithmetic can be tested on a loop with a virtual clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, overload

from sagaproof.chaos.toxiproxy._sides import Chunk, Pipe, Side, Sink, SocketSink, set_linger_zero

if TYPE_CHECKING:
    from sagaproof.chaos.toxiproxy._toxics import ToxicConfig

__all__ = ["TIMEOUT", "Chunk", "Connection", "Interrupted", "Link", "Pipe", "Side", "Sink", "SocketSink", "Stage",
           "Stub", "passthrough", "set_linger_zero"]

READ_SIZE = 32 * 1024
STOP_TIMEOUT = 5.0


class Interrupted(Exception):
    """Raised inside a toxic's stage when it must stop (toxic changed or removed)."""


class _Timeout(enum.Enum):
    """Sentinel returned by `Stub.recv` when its timeout passed without a chunk.

    An enum with one member so that `item is TIMEOUT` narrows the type for mypy.
    """

    TIMEOUT = enum.auto()


TIMEOUT: Final = _Timeout.TIMEOUT

class Stub:
    """What a toxic's stage sees: its input, its output, interrupts, the clock and per-link state."""

    __slots__ = ("input", "output", "state", "conn", "rng", "interrupted", "_waiter", "direction", "_loop", "now")

    def __init__(self, input_pipe: Pipe, output: Sink, conn: Any, rng: random.Random, direction: str) -> None:
        self.input = input_pipe
        self.output = output
        self.state: Any = None
        self.conn = conn
        self.rng = rng
        self.interrupted = False
        self._waiter: asyncio.Future[None] | None = None
        self.direction = direction
        self._loop = asyncio.get_running_loop()
        self.now: Callable[[], float] = self._loop.time

    def interrupt(self) -> None:
        self.interrupted = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    @overload
    async def recv(self) -> Chunk | None: ...  # without a timeout, never TIMEOUT

    @overload
    async def recv(self, timeout: float | None) -> Chunk | None | _Timeout: ...

    async def recv(self, timeout: float | None = None) -> Chunk | None | _Timeout:
        """Next chunk, None at EOF, TIMEOUT after `timeout` seconds; raises Interrupted."""
        if self.interrupted:
            raise Interrupted
        pipe = self.input
        if pipe._items:
            return pipe.take()
        if timeout is not None and timeout <= 0:
            return TIMEOUT
        loop = self._loop
        fut = loop.create_future()
        pipe._getter = fut
        self._waiter = fut
        handle = loop.call_later(timeout, _wake, fut) if timeout is not None else None
        try:
            await fut
        finally:
            if handle is not None:
                handle.cancel()
            pipe._getter = None
            self._waiter = None
        if self.interrupted:
            raise Interrupted
        if pipe._items:
            return pipe.take()
        return TIMEOUT

    async def sleep(self, seconds: float) -> bool:
        """Sleep, returning True early if interrupted."""
        if self.interrupted:
            return True
        if seconds <= 0:
            return False
        loop = self._loop
        fut = loop.create_future()
        self._waiter = fut
        handle = loop.call_later(seconds, _wake, fut)
        try:
            await fut
        finally:
            handle.cancel()
            self._waiter = None
        return self.interrupted

    async def sleep_until(self, when: float) -> bool:
        """Sleep until the loop's clock reads `when`, returning True early if interrupted."""
        return await self.sleep(when - self._loop.time())

    async def send(self, item: Chunk | None) -> None:
        await self.output.put(item)


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class Stage:
    """One toxic running on one link; restarted with a fresh toxicity draw on every change."""

    def __init__(self, toxic: ToxicConfig, stub: Stub) -> None:
        self.toxic = toxic
        self.stub = stub
        self.task: asyncio.Task[None] | None = None
        self.runner = toxic.make_runner()
        stub.state = self.runner.new_state()

    def start(self) -> None:
        if getattr(self.stub.conn, "closed", False):
            return  # the connection closed while the chain was being changed: nothing left to run for
        self.stub.interrupted = False
        self.runner = self.toxic.make_runner()
        active = self.stub.rng.random() < self.toxic.toxicity
        self.task = asyncio.get_running_loop().create_task(self._run(active))

    async def _run(self, active: bool) -> None:
        try:
            if active:
                await self.runner.run(self.stub)
            else:
                await passthrough(self.stub)
        except Interrupted:
            pass
        except asyncio.CancelledError:
            raise
        except Exception:  # a toxic bug must not leave the connection wedged
            self.stub.conn.close()

    async def stop(self) -> None:
        task = self.task
        if task is None or task.done():
            return
        self.stub.interrupt()
        try:
            await asyncio.wait_for(asyncio.shield(task), STOP_TIMEOUT)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def cancel(self) -> None:
        if self.task is not None and not self.task.done() and self.task is not asyncio.current_task():
            self.task.cancel()


async def passthrough(stub: Stub) -> None:
    """Forward every chunk unchanged (inactive toxics and `noop`)."""
    while True:
        item = await stub.recv()
        await stub.send(item)
        if item is None:
            return


class Link:
    """One direction of one connection: what the source reads, through the toxic stages, to the tail.

    `feed` and `feed_eof` are the only ways bytes enter (the source's protocol calls them); the
    tail is where they leave (a `SocketSink` on a real connection).
    """

    def __init__(self, conn: Any, direction: str, source: Side | None, tail: Sink) -> None:
        self.conn = conn
        self.direction = direction
        self.source = source
        self.tail = tail
        self.head: Sink = tail
        self.stages: list[Stage] = []
        self.received = 0
        self._loop = asyncio.get_running_loop()
        self._reading_paused = True  # a Side starts paused
        self._eof = False
        self.ended = False  # the EOF reached the destination socket, which is closed
        # Changes to the chain take turns (as the reference server's toxic collection holds a mutex): two at
        # once would both restart the stage before the change, and two tasks would read one pipe.
        self._changing = asyncio.Lock()

    def start(self, toxics: list[ToxicConfig]) -> None:
        for toxic in toxics:
            self._append(toxic)
        self.update_reading()

    # ---- the reading side ---------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        """Bytes read from the source: stamp them and hand them to the chain (or straight to the tail)."""
        n = len(data)
        self.received += n
        head = self.head
        now = self._loop.time()
        if n <= READ_SIZE or head is self.tail:
            head.push((data, now))
        else:
            view = memoryview(data)
            for start in range(0, n, READ_SIZE):
                head.push((view[start : start + READ_SIZE], now))
        if head.full():
            self.update_reading()

    def feed_eof(self) -> None:
        """The source ended (EOF or error): the EOF travels down the chain once."""
        if self._eof or self.conn.closed:
            return
        self._eof = True
        self.head.push(None)

    def update_reading(self) -> None:
        """Pause reading the source while the first pipe (or, with no toxics, the destination) is full."""
        source = self.source
        if source is None or source.transport is None or self._eof or self.conn.closed:
            return
        want = self.head.full()
        if want != self._reading_paused:
            self._reading_paused = want
            with contextlib.suppress(Exception):
                if want:
                    source.transport.pause_reading()
                else:
                    source.transport.resume_reading()

    # ---- the chain ----------------------------------------------------------------------------
    def _new_stub(self, input_pipe: Pipe, output: Sink) -> Stub:
        input_pipe.on_space = self.update_reading
        return Stub(input_pipe, output, self.conn, self.conn.rng, self.direction)

    def _append(self, toxic: ToxicConfig) -> Stage:
        pipe = Pipe(toxic.buffer_size())
        stage = Stage(toxic, self._new_stub(pipe, self.tail))
        if self.stages:
            self.stages[-1].stub.output = pipe
        else:
            self.head = pipe
        self.stages.append(stage)
        stage.start()
        return stage

    async def add(self, toxic: ToxicConfig) -> None:
        async with self._changing:
            await self._add(toxic)

    async def _add(self, toxic: ToxicConfig) -> None:
        pipe = Pipe(toxic.buffer_size())
        stage = Stage(toxic, self._new_stub(pipe, self.tail))
        if self.stages:
            prev = self.stages[-1]
            await prev.stop()
            prev.stub.output = pipe
            self.stages.append(stage)
            stage.start()
            prev.start()
        else:
            self.stages.append(stage)
            stage.start()
            self.head = pipe
            self.update_reading()

    async def update(self, name: str) -> None:
        async with self._changing:
            await self._update(name)

    async def _update(self, name: str) -> None:
        for stage in self.stages:
            if stage.toxic.name == name:
                await stage.stop()
                stage.start()
                return

    async def remove(self, name: str) -> None:
        async with self._changing:
            await self._remove(name)

    async def _remove(self, name: str) -> None:
        index = next((i for i, st in enumerate(self.stages) if st.toxic.name == name), None)
        if index is None:
            return
        stage = self.stages[index]
        prev = self.stages[index - 1] if index > 0 else None
        if prev is not None:
            await prev.stop()
        await stage.stop()
        out = stage.stub.output
        pipe = stage.stub.input
        if stage.toxic.closes_on_remove():
            # A timeout toxic dropped data: delivering the rest would leave a hole in the stream.
            self.conn.close()
        else:
            for data in stage.runner.flush(stage.stub.state):
                await out.put((data, self._loop.time()))
            while len(pipe):
                await out.put(pipe.take())
        # No await between the last emptiness check and the re-wiring: nothing can slip in.
        pipe.retire(out)
        del self.stages[index]
        if prev is not None:
            prev.stub.output = out
            prev.start()
        else:
            self.head = out
            self.update_reading()

    def cancel(self) -> None:
        for stage in self.stages:
            stage.cancel()


class Connection:
    """A proxied client connection and its upstream connection."""

    def __init__(
        self, proxy: Any, client: Side, upstream: Side, rng: random.Random, *, reset_on_close: bool
    ) -> None:
        self.proxy = proxy
        self.rng = rng
        self.closed = False
        self.client = client
        self.upstream = upstream
        self.reset_on_close = reset_on_close
        if reset_on_close:
            set_linger_zero(client)
            set_linger_zero(upstream)
        self.up = Link(self, "upstream", client, SocketSink(upstream, self))
        self.down = Link(self, "downstream", upstream, SocketSink(client, self))
        self.sinks = (self.up.tail, self.down.tail)  # the socket ends, whatever wraps them later
        client.source_of, client.dest_of = self.up, self.down
        upstream.source_of, upstream.dest_of = self.down, self.up
        # Labels as they are when the connection opens (the reference takes them at link start).
        self.labels = (proxy.name, proxy.listen, proxy.upstream)
        self.done = asyncio.get_running_loop().create_future()
        observe = getattr(proxy, "observe", None)  # chaos.observe: taps both socket ends, bytes unchanged
        self.observation = observe(self) if observe is not None else None
        if self.observation is not None:
            for link in (self.up, self.down):
                link.tail = link.head = self.observation.tap(link.direction, link.tail)

    def link(self, direction: str) -> Link:
        return self.up if direction == "upstream" else self.down

    def start(self, upstream_toxics: list[ToxicConfig], downstream_toxics: list[ToxicConfig]) -> None:
        self.up.start(upstream_toxics)
        self.down.start(downstream_toxics)
        self.client.attached()
        self.upstream.attached()

    def end_link(self, sink: SocketSink) -> None:
        """A link's EOF reached its socket end (`sink`): close that socket, which is the other
        link's source, so the other link ends too once its chain has passed the EOF on."""
        if self.closed:
            return
        done, other = (self.up, self.down) if sink is self.sinks[0] else (self.down, self.up)
        if other.ended:
            self.close()
            return
        done.ended = True
        sink.side.close(reset=self.reset_on_close)
        other.feed_eof()

    def close(self) -> None:
        """Close both sockets (RST if SO_LINGER 0 was set at open) and stop every task."""
        if self.closed:
            return
        self.closed = True
        self.client.close(reset=self.reset_on_close)
        self.upstream.close(reset=self.reset_on_close)
        self.up.cancel()
        self.down.cancel()
        if not self.done.done():
            self.done.set_result(None)
        if self.observation is not None:
            self.observation.close()
        self.proxy._forget(self)
