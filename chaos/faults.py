"""The fault vocabulary: context managers that inject one fault and always heal.

Network and message faults act on a proxy of a Toxiproxy(-compatible) server through a
`FaultProxyClient`; process faults act on anything that implements `ProcessControl` (the
harness implements it for service processes and for the NATS server).

    faults = Faults(FaultProxyClient(server.url))
    with faults.latency("payment", ms=500, jitter=100):
        ...                      # every byte between payment and NATS is 0.4-0.6 s late
    with faults.drop("payment", subject="orders.>", probability=0.5):
        ...                      # half of payment's publishes on orders.> are lost

Each context manager removes exactly what it added when the block exits, whatever way it
exits. These are synchronous (they make HTTP calls): do not call them from the event loop
that runs an embedded server.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol, runtime_checkable

from sagaproof.chaos.client import FaultProxyClient
from sagaproof.chaos.errors import ChaosError

__all__ = ["DIRECTIONS", "Faults", "ProcessControl", "kill", "pause"]

DIRECTIONS = ("upstream", "downstream", "both")
_counter = itertools.count(1)
_counter_lock = threading.Lock()


@runtime_checkable
class ProcessControl(Protocol):
    """What the nemesis needs from a process: the harness implements it per service and for NATS."""

    def kill(self) -> None:
        """SIGKILL the process (no cleanup)."""

    def restart(self) -> None:
        """Start the process again (after kill or stop) and return when it is ready."""

    def pause(self) -> None:
        """SIGSTOP the process."""

    def resume(self) -> None:
        """SIGCONT the process."""

    def stop(self) -> None:
        """Stop the process gracefully (SIGTERM, then SIGKILL after a grace period)."""


def kill(proc: ProcessControl, restart_after: float) -> None:
    """Kill -9 a process, wait `restart_after` seconds, restart it (also if the wait is interrupted)."""
    _check_seconds("restart_after", restart_after)
    proc.kill()
    try:
        time.sleep(restart_after)
    finally:
        proc.restart()


def pause(proc: ProcessControl, seconds: float) -> None:
    """SIGSTOP a process for `seconds`, then SIGCONT it (also if the wait is interrupted)."""
    _check_seconds("seconds", seconds)
    proc.pause()
    try:
        time.sleep(seconds)
    finally:
        proc.resume()


def _check_seconds(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ChaosError(f"{name} must be a number of seconds >= 0, got {value!r}.")


def _directions(direction: str) -> tuple[str, ...]:
    if direction not in DIRECTIONS:
        raise ChaosError(f"direction {direction!r} is not valid; use one of {', '.join(DIRECTIONS)}.")
    return ("upstream", "downstream") if direction == "both" else (direction,)


def _check_probability(probability: float) -> None:
    if (
        isinstance(probability, bool)
        or not isinstance(probability, (int, float))
        or not 0 <= probability <= 1
    ):
        raise ChaosError(f"probability must be a number between 0 and 1, got {probability!r}.")


def _check_non_negative(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ChaosError(f"{name} must be an integer >= 0, got {value!r}.")


class Faults:
    """Fault context managers bound to one Toxiproxy client.

    Args:
        client: the client of the server that owns the proxies.
        prefix: prefix of the toxic names this object creates (so they are recognisable).
    """

    def __init__(self, client: FaultProxyClient, *, prefix: str = "sagaproof") -> None:
        self.client = client
        self.prefix = prefix

    def _name(self, kind: str, stream: str) -> str:
        with _counter_lock:
            number = next(_counter)
        return f"{self.prefix}_{kind}_{number}_{stream}"

    @contextmanager
    def toxics(
        self, proxy: str, kind: str, streams: tuple[str, ...], toxicity: float = 1.0, **attributes: Any
    ) -> Iterator[list[str]]:
        """Add one toxic of `kind` per stream, yield their names, remove them on exit."""
        added: list[str] = []
        try:
            for stream in streams:
                added.append(
                    self.client.add_toxic(
                        proxy,
                        kind,
                        stream=stream,
                        toxicity=toxicity,
                        name=self._name(kind, stream),
                        **attributes,
                    )
                )
            yield added
        finally:
            self._remove(proxy, added)

    def _remove(self, proxy: str, names: list[str]) -> None:
        errors: list[ChaosError] = []
        for name in reversed(names):
            try:
                self.client.remove_toxic(proxy, name)
            except ChaosError as exc:
                if exc.status != 404:  # already gone (proxy reset or deleted): healed anyway
                    errors.append(exc)
        if errors:
            raise errors[0]

    # ---- network faults ------------------------------------------------------------------------
    @contextmanager
    def latency(self, proxy: str, ms: int, jitter: int = 0, *, direction: str = "both") -> Iterator[None]:
        """Delay every chunk by `ms` ± `jitter` milliseconds (per direction; a round trip pays both)."""
        _check_non_negative("ms", ms)
        _check_non_negative("jitter", jitter)
        with self.toxics(proxy, "latency", _directions(direction), latency=ms, jitter=jitter):
            yield

    @contextmanager
    def partition(self, proxy: str, *, mode: str = "disable") -> Iterator[None]:
        """Cut a link off. `disable`: the proxy goes down (connections dropped, reconnects refused);
        `timeout`: connections stay open but every byte is dropped both ways (a silent partition;
        the connections are closed when it heals)."""
        if mode == "disable":
            self.client.disable(proxy)
            try:
                yield
            finally:
                self.client.enable(proxy)
        elif mode == "timeout":
            with self.toxics(proxy, "timeout", ("upstream", "downstream"), timeout=0):
                yield
        else:
            raise ChaosError(f"partition mode {mode!r} is not valid; use 'disable' or 'timeout'.")

    @contextmanager
    def cut(self, proxy: str, *, after_ms: int = 0) -> Iterator[None]:
        """Reset connections (TCP RST) as soon as data flows, for the whole block."""
        _check_non_negative("after_ms", after_ms)
        with self.toxics(proxy, "reset_peer", ("upstream", "downstream"), timeout=after_ms):
            yield

    @contextmanager
    def throttle(self, proxy: str, kbps: int, *, direction: str = "both") -> Iterator[None]:
        """Limit bandwidth to `kbps` kilobytes (1000 bytes) per second per direction."""
        _check_non_negative("kbps", kbps)
        with self.toxics(proxy, "bandwidth", _directions(direction), rate=kbps):
            yield

    @contextmanager
    def slice(
        self,
        proxy: str,
        average_size: int = 64,
        size_variation: int = 32,
        delay_us: int = 100,
        *,
        direction: str = "both",
    ) -> Iterator[None]:
        """Split the stream into small pieces with `delay_us` microseconds between them."""
        for key, value in (
            ("average_size", average_size),
            ("size_variation", size_variation),
            ("delay_us", delay_us),
        ):
            _check_non_negative(key, value)
        with self.toxics(
            proxy,
            "slicer",
            _directions(direction),
            average_size=average_size,
            size_variation=size_variation,
            delay=delay_us,
        ):
            yield

    # ---- NATS message faults -------------------------------------------------------------------
    @contextmanager
    def _message(
        self, kind: str, proxy: str, subject: str, probability: float, direction: str, **extra: Any
    ) -> Iterator[None]:
        _check_probability(probability)
        if not isinstance(subject, str):
            raise ChaosError(f"subject must be a NATS subject pattern string, got {subject!r}.")
        with self.toxics(
            proxy, kind, _directions(direction), subject=subject, probability=float(probability), **extra
        ):
            yield

    def drop(
        self, proxy: str, subject: str = ">", probability: float = 1.0, *, direction: str = "upstream"
    ) -> AbstractContextManager[None]:
        """Drop messages on matching subjects (upstream: the service's publishes; downstream: its deliveries)."""
        return self._message("nats_drop", proxy, subject, probability, direction)

    def duplicate(
        self, proxy: str, subject: str = ">", probability: float = 1.0, *, direction: str = "downstream"
    ) -> AbstractContextManager[None]:
        """Deliver (downstream) or publish (upstream) matching messages twice."""
        return self._message("nats_duplicate", proxy, subject, probability, direction)

    def delay_messages(
        self,
        proxy: str,
        subject: str = ">",
        probability: float = 1.0,
        delay_ms: int = 500,
        *,
        direction: str = "downstream",
    ) -> AbstractContextManager[None]:
        """Hold matching messages back `delay_ms` while later ones pass (reordering)."""
        _check_non_negative("delay_ms", delay_ms)
        return self._message("nats_delay", proxy, subject, probability, direction, delay=delay_ms)

    def reorder(
        self,
        proxy: str,
        subject: str = ">",
        probability: float = 1.0,
        max_hold_ms: int = 1000,
        *,
        direction: str = "downstream",
    ) -> AbstractContextManager[None]:
        """Swap a matching message with the next matching one (sent as is after `max_hold_ms`)."""
        _check_non_negative("max_hold_ms", max_hold_ms)
        return self._message("nats_reorder", proxy, subject, probability, direction, delay=max_hold_ms)


# Module-level shortcuts taking the client first, for callers without a `Faults` object.
def latency(client: FaultProxyClient, proxy: str, ms: int, jitter: int = 0, **kw: Any) -> AbstractContextManager[None]:
    """`Faults(client).latency(...)`."""
    return Faults(client).latency(proxy, ms, jitter, **kw)


def partition(client: FaultProxyClient, proxy: str, **kw: Any) -> AbstractContextManager[None]:
    """`Faults(client).partition(...)`."""
    return Faults(client).partition(proxy, **kw)


def cut(client: FaultProxyClient, proxy: str, **kw: Any) -> AbstractContextManager[None]:
    """`Faults(client).cut(...)`."""
    return Faults(client).cut(proxy, **kw)


def throttle(client: FaultProxyClient, proxy: str, kbps: int, **kw: Any) -> AbstractContextManager[None]:
    """`Faults(client).throttle(...)`."""
    return Faults(client).throttle(proxy, kbps, **kw)


def slice(client: FaultProxyClient, proxy: str, *args: Any, **kw: Any) -> AbstractContextManager[None]:  # noqa: A001 - fault name
    """`Faults(client).slice(...)`."""
    return Faults(client).slice(proxy, *args, **kw)


def drop(client: FaultProxyClient, proxy: str, *args: Any, **kw: Any) -> AbstractContextManager[None]:
    """`Faults(client).drop(...)`."""
    return Faults(client).drop(proxy, *args, **kw)


def duplicate(client: FaultProxyClient, proxy: str, *args: Any, **kw: Any) -> AbstractContextManager[None]:
    """`Faults(client).duplicate(...)`."""
    return Faults(client).duplicate(proxy, *args, **kw)


def delay_messages(client: FaultProxyClient, proxy: str, *args: Any, **kw: Any) -> AbstractContextManager[None]:
    """`Faults(client).delay_messages(...)`."""
    return Faults(client).delay_messages(proxy, *args, **kw)


def reorder(client: FaultProxyClient, proxy: str, *args: Any, **kw: Any) -> AbstractContextManager[None]:
    """`Faults(client).reorder(...)`."""
    return Faults(client).reorder(proxy, *args, **kw)


__all__ += [
    "cut",
    "delay_messages",
    "drop",
    "duplicate",
    "latency",
    "partition",
    "reorder",
    "slice",
    "throttle",
]
