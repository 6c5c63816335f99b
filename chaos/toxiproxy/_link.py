"""Connections, links and toxic stages: the data path of a proxy.

Each proxied connection has two one-way links: upstream (client -> server bytes) and
downstream (server -> client). A link is a reader task that reads its source socket in reads
of up to 32 KiB (each read is a chunk stamped with its read time) followed by a chain of
stages, one per toxic of that direction in insertion order, ending at the destination socket.

As in the reference server, stages are independent tasks joined by bounded pipes, so a toxic
can hold data (latency) while the next one works, and toxics are added, updated and removed
on live connections by re-splicing the chain: the stage before the change is interrupted and
restarted (with a fresh toxicity draw), a removed stage flushes what it holds downstream.
When the reader sees end-of-stream, the EOF travels down the chain; when it reaches the end
the whole connection is closed (both sockets, not half-closed).

With no toxics the reader writes straight to the destination socket, so an idle proxy adds
one task switch per chunk.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import time
from collections import deque
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sagaproof.chaos.toxiproxy._toxics import ToxicConfig

READ_SIZE = 32 * 1024
STOP_TIMEOUT = 5.0


class Interrupted(Exception):
    """Raised inside a toxic's stage when it must stop (toxic changed or removed)."""


class _Timeout:
    """Sentinel returned by `Stub.recv` when its timeout passed without a chunk."""


TIMEOUT = _Timeout()

# A chunk is (data, read_time_monotonic); None is the end of stream.
Chunk = tuple[bytes, float]


class Sink:
    """Something a stage can send chunks (or None for EOF) to."""

    async def put(self, item: Chunk | None) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class Pipe(Sink):
    """A bounded FIFO between two stages; retired pipes forward puts to their successor."""

    __slots__ = ("_items", "_cap", "_getter", "_putters", "redirect")

    def __init__(self, cap: int) -> None:
        self._items: deque[Chunk | None] = deque()
        self._cap = max(1, cap)
        self._getter: asyncio.Future[None] | None = None
        self._putters: deque[asyncio.Future[None]] = deque()
        self.redirect: Sink | None = None

    def __len__(self) -> int:
        return len(self._items)

    async def put(self, item: Chunk | None) -> None:
        while True:
            if self.redirect is not None:
                await self.redirect.put(item)
                return
            if len(self._items) < self._cap:
                break
            fut = asyncio.get_running_loop().create_future()
            self._putters.append(fut)
            try:
                await fut
            finally:
                with contextlib.suppress(ValueError):
                    self._putters.remove(fut)
        self._items.append(item)
        getter = self._getter
        if getter is not None and not getter.done():
            getter.set_result(None)

    def take(self) -> Chunk | None:
        item = self._items.popleft()
        while self._putters:
            fut = self._putters.popleft()
            if not fut.done():
                fut.set_result(None)
                break
        return item

    def retire(self, successor: Sink) -> None:
        """Send every later put to `successor` (the pipe must be empty)."""
        self.redirect = successor
        while self._putters:
            fut = self._putters.popleft()
            if not fut.done():
                fut.set_result(None)


class SocketSink(Sink):
    """The end of a link: writes chunks to the destination socket; EOF closes the connection."""

    __slots__ = ("_writer", "_conn")

    def __init__(self, writer: asyncio.StreamWriter, conn: Connection) -> None:
        self._writer = writer
        self._conn = conn

    async def put(self, item: Chunk | None) -> None:
        if item is None:
            self._conn.close()
            return
        if self._conn.closed:
            return
        try:
            self._writer.write(item[0])
            await self._writer.drain()
        except (ConnectionError, OSError, RuntimeError):
            self._conn.close()


class Stub:
    """What a toxic's stage sees: its input, its output, interrupts, and per-link state."""

    __slots__ = ("input", "output", "state", "conn", "rng", "interrupted", "_waiter", "direction")

    def __init__(
        self, input_pipe: Pipe, output: Sink, conn: Connection, rng: random.Random, direction: str
    ) -> None:
        self.input = input_pipe
        self.output = output
        self.state: Any = None
        self.conn = conn
        self.rng = rng
        self.interrupted = False
        self._waiter: asyncio.Future[None] | None = None
        self.direction = direction

    def interrupt(self) -> None:
        self.interrupted = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def recv(self, timeout: float | None = None) -> Chunk | None | _Timeout:
        """Next chunk, None at EOF, TIMEOUT after `timeout` seconds; raises Interrupted."""
        if self.interrupted:
            raise Interrupted
        pipe = self.input
        if pipe._items:
            return pipe.take()
        if timeout is not None and timeout <= 0:
            return TIMEOUT
        loop = asyncio.get_running_loop()
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
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._waiter = fut
        handle = loop.call_later(seconds, _wake, fut)
        try:
            await fut
        finally:
            handle.cancel()
            self._waiter = None
        return self.interrupted

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
        await stub.send(item)  # type: ignore[arg-type]
        if item is None:
            return


class Link:
    """One direction of one connection: reader task, toxic stages, destination socket."""

    def __init__(
        self, conn: Connection, direction: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.conn = conn
        self.direction = direction
        self._reader = reader
        self.tail: Sink = SocketSink(writer, conn)
        self.head: Sink = self.tail
        self.stages: list[Stage] = []
        self.reader_task: asyncio.Task[None] | None = None
        self.received = 0

    def start(self, toxics: list[ToxicConfig]) -> None:
        for toxic in toxics:
            self._append(toxic)
        self.reader_task = asyncio.get_running_loop().create_task(self._read_loop())

    async def _read_loop(self) -> None:
        reader = self._reader
        clock = time.monotonic
        try:
            while True:
                data = await reader.read(READ_SIZE)
                if not data:
                    break
                self.received += len(data)
                await self.head.put((data, clock()))
        except (ConnectionError, OSError):
            pass
        except asyncio.CancelledError:
            return
        await self.head.put(None)

    def _new_stub(self, input_pipe: Pipe, output: Sink) -> Stub:
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

    async def update(self, name: str) -> None:
        for stage in self.stages:
            if stage.toxic.name == name:
                await stage.stop()
                stage.start()
                return

    async def remove(self, name: str) -> None:
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
                await out.put((data, time.monotonic()))
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

    def cancel(self) -> None:
        if self.reader_task is not None and self.reader_task is not asyncio.current_task():
            self.reader_task.cancel()
        for stage in self.stages:
            stage.cancel()


def set_linger_zero(writer: asyncio.StreamWriter) -> None:
    """Make a later close of this socket send RST (SO_LINGER 0)."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


class Connection:
    """A proxied client connection and its upstream connection."""

    def __init__(
        self,
        proxy: Any,
        client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        rng: random.Random,
        *,
        reset_on_close: bool,
    ) -> None:
        self.proxy = proxy
        self.rng = rng
        self.closed = False
        self.client_writer = client[1]
        self.upstream_writer = upstream[1]
        self.reset_on_close = reset_on_close
        if reset_on_close:
            set_linger_zero(self.client_writer)
            set_linger_zero(self.upstream_writer)
        self.up = Link(self, "upstream", client[0], upstream[1])
        self.down = Link(self, "downstream", upstream[0], client[1])
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

    def close(self) -> None:
        """Close both sockets (RST if SO_LINGER 0 was set at open) and stop every task."""
        if self.closed:
            return
        self.closed = True
        for writer in (self.client_writer, self.upstream_writer):
            transport = writer.transport
            with contextlib.suppress(Exception):
                if self.reset_on_close:
                    transport.abort()
                else:
                    transport.close()
        self.up.cancel()
        self.down.cancel()
        if not self.done.done():
            self.done.set_result(None)
        if self.observation is not None:
            self.observation.close()
        self.proxy._forget(self)
