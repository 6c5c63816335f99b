"""A private asyncio event loop in a background thread, for the async parts of a synchronous harness.

The harness's public API is synchronous (CLI, pytest fixtures, invariants), while nats-py, the embedded
fault proxy and the recorder are asyncio. Each running system owns one :class:`LoopThread`; coroutines
are submitted with :meth:`LoopThread.run` (blocking, bounded by a timeout) or :meth:`LoopThread.spawn`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


async def quiet_nats_error(exc: Exception) -> None:
    """A nats-py ``error_cb`` for the harness's own connections: a lost connection (the broker restarted, a
    link cut) is reconnected by the client and is not the user's business; nats-py's default prints a traceback."""


class LoopThread:
    """An event loop running forever in a daemon thread until :meth:`close`."""

    def __init__(self, name: str = "sagaproof-loop"):
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = 60.0) -> T:
        """Run a coroutine on the loop and wait for its result (cancelled if `timeout` passes)."""
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return fut.result(timeout)
        except concurrent.futures.TimeoutError as err:
            fut.cancel()
            raise TimeoutError(f"operation did not finish within {timeout}s") from err

    def spawn(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Start a coroutine on the loop without waiting."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def close(self) -> None:
        """Cancel what is left, stop the loop and join the thread; idempotent."""
        if self.loop.is_closed():
            return

        async def _cancel_all() -> None:
            # Rounds: a task being cancelled may start others (a fault proxy's link restarting a toxic's stage),
            # and a task left pending when the loop closes is reported as destroyed at exit.
            for _ in range(5):
                tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
                if not tasks:
                    return
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

        if self._thread.is_alive():
            try:
                asyncio.run_coroutine_threadsafe(_cancel_all(), self.loop).result(10)
            except Exception:  # noqa: BLE001 - best effort on shutdown
                pass
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
        if not self.loop.is_running():
            self.loop.close()
