"""`ToxiproxyServer`: the API listener plus its proxies, embedded or standalone.

Standalone (`sagaproof toxiproxy`, `run_standalone`) runs on uvloop, a libuv-based event loop,
unless `SAGAPROOF_EVENT_LOOP=asyncio` asks for the standard one: the proxy's data path is
callbacks on the loop, so a faster loop is a faster proxy, most of all on a busy machine.
Embedded (`serve`) runs on whatever loop the caller runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import sys
from collections.abc import Callable, Sequence
from types import TracebackType

from sagaproof.chaos.errors import ChaosError
from sagaproof.chaos.toxiproxy import _http
from sagaproof.chaos.toxiproxy._api import Api
from sagaproof.chaos.toxiproxy._metrics import Metrics
from sagaproof.chaos.toxiproxy._proxy import ProxyCollection, join_host_port
from sagaproof.chaos.toxiproxy_flags import add_arguments, go_bool, port_number

__all__ = ["ToxiproxyServer", "add_arguments", "event_loop_factory", "go_bool", "main", "port_number",
           "run_standalone", "serve"]


class ToxiproxyServer:
    """A running Toxiproxy-compatible server. Create it with `await serve(...)`.

    Attributes:
        host: the address the API listens on.
        port: the API's port (the real one when 0 was asked).
        url: `http://host:port`, for any Toxiproxy client.
        seed: the seed of the random source (toxicity, jitter, slicer, message toxics).
    """

    def __init__(
        self, host: str, seed: int | None, *, proxy_metrics: bool = False, runtime_metrics: bool = False
    ) -> None:
        self.host = host
        self.port = 0
        self.seed = seed
        self.rng = random.Random(seed)
        self.metrics = (
            Metrics(proxy=proxy_metrics, runtime=runtime_metrics) if proxy_metrics or runtime_metrics else None
        )
        self.proxies = ProxyCollection(self.rng, self.metrics)
        self._api = Api(self.proxies, self.metrics)
        self._server: asyncio.Server | None = None
        self._conn_tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def url(self) -> str:
        return "http://" + join_host_port(self.host, self.port)

    async def _start(self, port: int) -> None:
        try:
            self._server = await asyncio.get_running_loop().create_server(
                lambda: _http.HttpConnection(self._api, self._conn_tasks), self.host, port
            )
        except OSError as exc:
            raise ChaosError(
                f"The Toxiproxy API cannot listen on {join_host_port(self.host, port)} ({exc.strerror or exc}); "
                "choose another --port or stop what is using it."
            ) from exc
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop the API and close every proxy and connection. Safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        if self._server is not None:
            self._server.close()
        tasks = list(self._conn_tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)
        await self.proxies.close()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)

    async def __aenter__(self) -> ToxiproxyServer:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


async def serve(
    host: str = "127.0.0.1",
    port: int = 0,
    seed: int | None = None,
    *,
    proxy_metrics: bool = False,
    runtime_metrics: bool = False,
) -> ToxiproxyServer:
    """Start a Toxiproxy-compatible server in the running event loop and return it when ready.

    Args:
        host: API listen address (loopback by default).
        port: API port; 0 picks a free one (read it back from `.port` / `.url`).
        seed: seed of the random source, for reproducible toxicity, jitter and message faults.
        proxy_metrics: serve the proxies' byte counters on `/metrics` (the reference's `-proxy-metrics`).
        runtime_metrics: serve process and Python runtime metrics on `/metrics` (`-runtime-metrics`).

    Raises:
        ChaosError: the API address cannot be bound.

    Example:
        async with await serve(seed=1) as server:
            print(server.url)
    """
    server = ToxiproxyServer(host, seed, proxy_metrics=proxy_metrics, runtime_metrics=runtime_metrics)
    await server._start(port)
    return server


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """The event loop the standalone server runs on: uvloop when installed, unless
    `SAGAPROOF_EVENT_LOOP=asyncio` asks for the standard loop."""
    choice = os.environ.get("SAGAPROOF_EVENT_LOOP", "uvloop").strip().lower()
    if choice != "asyncio":
        try:
            import uvloop
        except ImportError:  # pragma: no cover - uvloop is a dependency where it builds
            pass
        else:
            return uvloop.new_event_loop
    return asyncio.new_event_loop


def run_standalone(
    host: str = "127.0.0.1",
    port: int = 8474,
    seed: int | None = None,
    *,
    proxy_metrics: bool = False,
    runtime_metrics: bool = False,
) -> None:
    """Serve until SIGINT or SIGTERM (the `sagaproof toxiproxy` command); prints where it listens."""

    async def _main() -> None:
        server = await serve(host, port, seed, proxy_metrics=proxy_metrics, runtime_metrics=runtime_metrics)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        seed_text = "" if seed is None else f" (seed {seed})"
        metrics_text = f", metrics on {server.url}/metrics" if server.metrics is not None else ""
        print(f"sagaproof toxiproxy listening on {server.url}{seed_text}{metrics_text}", flush=True)
        try:
            await stop.wait()
        finally:
            await server.close()

    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(_main())


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: `[--host H] [--port P] [--seed N] [--proxy-metrics] [--runtime-metrics]`
    (each also with one dash, as the reference server spells them); returns an exit code."""
    parser = argparse.ArgumentParser(
        prog="sagaproof toxiproxy", description="Toxiproxy-compatible fault proxy server"
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        run_standalone(
            args.host,
            args.port,
            args.seed,
            proxy_metrics=args.proxy_metrics,
            runtime_metrics=args.runtime_metrics,
        )
    except ChaosError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
