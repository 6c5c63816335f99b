"""The ends of the data path and what joins its stages: `Side` (one socket of a proxied connection),
`SocketSink` (a link's end, writing to a socket) and `Pipe` (a bounded queue between two toxic stages).

A chunk is (data, stamp): data is bytes (or a memoryview of a read), stamp the loop time at which it was
read. `_link.py` builds links and connections from these.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from sagaproof.chaos.toxiproxy._link import Connection, Link

# A chunk is (data, stamp): data is bytes (or a memoryview of a read), stamp the loop time at
# which it was read (a latency toxic moves it to the time it let the chunk go). None is EOF.
Chunk = tuple[Any, float]


class Sink:
    """Something chunks (or None for EOF) are sent to."""

    def push(self, item: Chunk | None) -> None:  # pragma: no cover - interface
        """Hand over an item without waiting (the reading side); may overfill a pipe by one read."""
        raise NotImplementedError

    async def put(self, item: Chunk | None) -> None:  # pragma: no cover - interface
        """Hand over an item, waiting while the sink is full (a stage)."""
        raise NotImplementedError

    def full(self) -> bool:
        return False


class Pipe(Sink):
    """A bounded FIFO between two stages; retired pipes forward to their successor."""

    __slots__ = ("_items", "_cap", "_getter", "_putters", "redirect", "on_space")

    def __init__(self, cap: int) -> None:
        self._items: deque[Chunk | None] = deque()
        self._cap = max(1, cap)
        self._getter: asyncio.Future[None] | None = None
        self._putters: deque[asyncio.Future[None]] = deque()
        self.redirect: Sink | None = None
        self.on_space: Callable[[], None] | None = None

    def __len__(self) -> int:
        return len(self._items)

    def full(self) -> bool:
        return len(self._items) >= self._cap

    def _append(self, item: Chunk | None) -> None:
        self._items.append(item)
        getter = self._getter
        if getter is not None and not getter.done():
            getter.set_result(None)

    def push(self, item: Chunk | None) -> None:
        if self.redirect is not None:
            self.redirect.push(item)
        else:
            self._append(item)

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
        self._append(item)

    def take(self) -> Chunk | None:
        was_full = len(self._items) >= self._cap
        item = self._items.popleft()
        while self._putters:
            fut = self._putters.popleft()
            if not fut.done():
                fut.set_result(None)
                break
        if was_full and self.on_space is not None and len(self._items) < self._cap:
            self.on_space()
        return item

    def retire(self, successor: Sink) -> None:
        """Send every later put to `successor` (the pipe must be empty)."""
        self.redirect = successor
        self.on_space = None
        while self._putters:
            fut = self._putters.popleft()
            if not fut.done():
                fut.set_result(None)


class Side(asyncio.Protocol):
    """One socket of a proxied connection: the source of one link and the destination of the other.

    Reading starts paused and is resumed when the connection's links are in place, so nothing
    the peer sends first (a NATS server's INFO) can arrive before there is a link to carry it.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.source_of: Link | None = None  # the link this socket's reads feed
        self.dest_of: Link | None = None  # the link that writes to this socket
        self.write_paused = False
        self.lost = False
        self._waiters: list[asyncio.Future[None]] = []
        self._early: list[bytes] | None = []  # read before the links existed (None once attached)
        self._early_eof = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport; uvloop's are not asyncio.Transport subclasses, so no isinstance check.
        self.transport = stream = cast(asyncio.Transport, transport)
        stream.pause_reading()
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        link = self.source_of
        if link is not None:
            link.feed(data)
        elif self._early is not None:  # some loops start reading whatever connection_made did
            self._early.append(data)
            with contextlib.suppress(Exception):
                self.transport.pause_reading()  # type: ignore[union-attr]

    def eof_received(self) -> bool:
        link = self.source_of
        if link is not None:
            link.feed_eof()
        else:
            self._early_eof = True
        return True  # keep the socket: the EOF travels down the chain, which then closes both

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._wake()
        link = self.source_of
        if link is not None:
            link.feed_eof()  # a read error ends the stream, like EOF
        else:
            self._early_eof = True

    def attached(self) -> None:
        """The links are in place: hand them what arrived before."""
        early, self._early = self._early, None
        link = self.source_of
        if link is None:
            return
        for data in early or ():
            link.feed(data)
        if self._early_eof:
            link.feed_eof()

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.dest_of is not None:
            self.dest_of.update_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        self._wake()
        if self.dest_of is not None:
            self.dest_of.update_reading()

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    async def writable(self) -> None:
        """Wait until the transport's buffer has drained below its low-water mark (or the socket is gone)."""
        while self.write_paused and not self.lost:
            fut = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            await fut

    def close(self, *, reset: bool) -> None:
        transport = self.transport
        if transport is None:
            return
        with contextlib.suppress(Exception):
            if reset:
                transport.abort()
            else:
                transport.close()


class SocketSink(Sink):
    """The end of a link: writes chunks to the destination socket; EOF closes the connection."""

    __slots__ = ("side", "conn", "sent", "failed")

    def __init__(self, side: Side, conn: Connection) -> None:
        self.side = side
        self.conn = conn
        self.sent = 0
        self.failed = False

    def full(self) -> bool:
        return self.side.write_paused

    def push(self, item: Chunk | None) -> None:
        if item is None:
            self.conn.end_link(self)
            return
        side = self.side
        transport = side.transport
        if side.lost or transport is None or transport.is_closing():
            self.failed = True
            return
        data = item[0]
        transport.write(data)
        self.sent += len(data)

    async def put(self, item: Chunk | None) -> None:
        self.push(item)
        if self.side.write_paused:
            await self.side.writable()


def set_linger_zero(side: Side) -> None:
    """Make a later close of this socket send RST (SO_LINGER 0)."""
    sock = side.transport.get_extra_info("socket") if side.transport is not None else None
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
