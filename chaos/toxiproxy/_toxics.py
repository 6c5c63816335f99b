"""Toxic types: their attributes (as the API shows them) and what each does to a link.

The byte-level toxics follow the reference Toxiproxy server (see docs/chaos.md for the
differences): latency, bandwidth, slow_close, timeout, reset_peer, slicer, limit_data, noop.
The NATS message toxics (nats_drop, nats_duplicate, nats_delay, nats_reorder) live in
`_nats.py` and register here too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeAlias

from sagaproof.chaos.toxiproxy import _gojson
from sagaproof.chaos.toxiproxy._link import TIMEOUT, Interrupted, Stub

# Attribute kinds: "int" (Go int64), "float" (float64), "string".
AttrSpec = tuple[str, str]


class Runner:
    """Base for a toxic's behaviour on one link; `run` is restarted on every change."""

    attrs: ClassVar[tuple[AttrSpec, ...]] = ()
    go_name: ClassVar[str] = "NoopToxic"
    buffer: ClassVar[int] = 16
    close_on_remove: ClassVar[bool] = False
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, attributes: dict[str, Any]) -> None:
        self.a = attributes

    def new_state(self) -> Any:
        return None

    def flush(self, state: Any) -> list[bytes]:
        """Bytes held in per-link state that must be sent when the toxic is removed."""
        return []

    async def run(self, stub: Stub) -> None:
        while True:
            item = await stub.recv()
            await stub.send(item)
            if item is None:
                return


class Noop(Runner):
    go_name = "NoopToxic"


class Latency(Runner):
    """Holds each chunk until its stamp + latency ± jitter, then passes it on stamped with that time.

    Passing on the delayed stamp is what makes latency toxics add up: a second latency toxic in
    the same direction waits from the moment the first one let the chunk go, as the reference
    server does. Back-to-back chunks are pipelined (each is due relative to its own stamp).
    """

    attrs = (("latency", "int"), ("jitter", "int"))
    go_name = "LatencyToxic"
    buffer = 1024

    def delay(self, rng: Any) -> float:
        """One draw of the delay in seconds: latency + a uniform integer in [-jitter, jitter) ms."""
        delay_ms: int = self.a["latency"]
        jitter: int = self.a["jitter"]
        if jitter > 0:
            delay_ms += rng.randrange(-jitter, jitter)
        return delay_ms / 1000.0

    async def run(self, stub: Stub) -> None:
        rng = stub.rng
        while True:
            item = await stub.recv()
            if item is None:
                await stub.send(None)
                return
            data, stamp = item
            delay = self.delay(rng)
            if delay <= 0:
                await stub.send(item)
                continue
            due = stamp + delay
            if await stub.sleep_until(due):
                await stub.send(item)  # interrupted: forward at once, drop nothing
                raise Interrupted
            await stub.send((data, due))


@dataclass
class _Schedule:
    paid_until: float | None = None  # the time up to which the bytes sent so far have been paid for


class Bandwidth(Runner):
    """Caps throughput at `rate` KB/s (1 KB = 1000 bytes) with no initial burst.

    Every byte costs 1/(rate*1000) s. The link keeps one schedule (surviving stage restarts):
    `paid_until`, the time at which everything sent so far is paid for. A chunk that was already
    waiting when the previous one was paid for continues the schedule, so time lost to per-chunk
    overhead (waking up late, writing) is made up by sending the next bytes sooner; a chunk that
    arrives on an idle link starts a fresh schedule at its stamp. The lag made up is bounded by
    `CATCH_UP` seconds, so a destination that stopped reading does not earn a burst. Chunks
    larger than 100 ms worth of bytes are cut into 100 ms pieces, as the reference server does.
    """

    attrs = (("rate", "int"),)
    go_name = "BandwidthToxic"
    CATCH_UP = 0.1
    MIN_SLEEP = 0.001  # ahead of schedule by less than this: send now (timers are not finer)

    def new_state(self) -> Any:
        return _Schedule()

    async def run(self, stub: Stub) -> None:
        rate = self.a["rate"]
        if rate <= 0:  # no limit (the reference server crashes on a negative rate once data flows)
            await super().run(stub)
            return
        if stub.state is None:
            stub.state = _Schedule()
        schedule: _Schedule = stub.state
        per_byte = 1.0 / (rate * 1000.0)
        piece = max(1, rate * 100)
        now = stub.now
        while True:
            item = await stub.recv()
            if item is None:
                await stub.send(None)
                return
            data, stamp = item
            paid = schedule.paid_until
            if paid is None or stamp > paid:
                paid = stamp  # the link was idle: a fresh schedule from when this chunk arrived
            paid = max(paid, now() - self.CATCH_UP)
            for start in range(0, len(data), piece):
                part = data[start : start + piece]
                paid += len(part) * per_byte
                schedule.paid_until = paid
                if paid - now() >= self.MIN_SLEEP and await stub.sleep_until(paid):
                    await stub.send((data[start:], stamp))
                    raise Interrupted
                await stub.send((part, stamp))


class SlowClose(Runner):
    attrs = (("delay", "int"),)
    go_name = "SlowCloseToxic"

    async def run(self, stub: Stub) -> None:
        while True:
            item = await stub.recv()
            if item is None:
                if await stub.sleep(self.a["delay"] / 1000.0):
                    # Put the EOF back so the restarted stage closes after its own delay.
                    stub.input._items.appendleft(None)
                    raise Interrupted
                await stub.send(None)
                return
            await stub.send(item)


class Timeout(Runner):
    attrs = (("timeout", "int"),)
    go_name = "TimeoutToxic"
    close_on_remove = True

    async def run(self, stub: Stub) -> None:
        timeout = self.a["timeout"]
        wait = timeout / 1000.0 if timeout > 0 else None
        while True:
            item = await stub.recv(wait)
            if item is TIMEOUT or item is None:
                await stub.send(None)
                return
            # Data is dropped; each chunk restarts the idle timer.


class ResetPeer(Runner):
    attrs = (("timeout", "int"),)
    go_name = "ResetToxic"

    async def run(self, stub: Stub) -> None:
        await stub.recv()  # the first data is swallowed, and the connection is reset `timeout` ms later
        if await stub.sleep(self.a["timeout"] / 1000.0):
            # Removed (or changed) meanwhile: the reference still resets the connection, after its timeout. It
            # must not live on: the data swallowed above is gone, and the peers' protocol with it (a NATS
            # client's SUB lost, say, and every message for that subscription after it).
            stub.conn.close()
            raise Interrupted
        stub.conn.close()


class Slicer(Runner):
    attrs = (("average_size", "int"), ("size_variation", "int"), ("delay", "int"))
    go_name = "SlicerToxic"

    def split(self, size: int, rng: Any) -> list[int]:
        """Cut points (like the reference: halve until a piece <= average + variation)."""
        average = self.a["average_size"]
        variation = max(0, self.a["size_variation"])
        if average <= 0 or size <= 0:
            return [0, size]
        points = [0]
        stack = [(0, size)]
        while stack:
            start, end = stack.pop()
            if (end - start) - average <= variation or end - start <= 1:
                points.append(end)
                continue
            mid = start + (end - start) // 2
            if variation > 0:
                mid += rng.randrange(variation * 2) - variation
            mid = min(max(mid, start + 1), end - 1)
            stack.append((mid, end))
            stack.append((start, mid))
        return points

    async def run(self, stub: Stub) -> None:
        delay = self.a["delay"] / 1_000_000.0
        while True:
            item = await stub.recv()
            if item is None:
                await stub.send(None)
                return
            data, stamp = item
            points = self.split(len(data), stub.rng)
            for i in range(1, len(points)):
                await stub.send((data[points[i - 1] : points[i]], stamp))
                if delay > 0 and await stub.sleep(delay):
                    rest = data[points[i] :]
                    if rest:
                        await stub.send((rest, stamp))
                    raise Interrupted


@dataclass
class _Count:
    sent: int = 0


class LimitData(Runner):
    attrs = (("bytes", "int"),)
    go_name = "LimitDataToxic"

    def new_state(self) -> Any:
        return _Count()

    async def run(self, stub: Stub) -> None:
        limit = self.a["bytes"]
        state: _Count = stub.state
        if state.sent >= limit:
            await stub.send(None)
            return
        while True:
            item = await stub.recv()
            if item is None:
                await stub.send(None)
                return
            data, stamp = item
            remaining = limit - state.sent
            if remaining > 0:
                part = data[:remaining]
                state.sent += len(part)
                await stub.send((part, stamp))
            if state.sent >= limit:
                await stub.send(None)
                return


# A toxic's runner class. An alias because inside ToxicConfig the name `type` is the field.
RunnerClass: TypeAlias = type[Runner]

REGISTRY: dict[str, RunnerClass] = {
    "noop": Noop,
    "latency": Latency,
    "bandwidth": Bandwidth,
    "slow_close": SlowClose,
    "timeout": Timeout,
    "reset_peer": ResetPeer,
    "slicer": Slicer,
    "limit_data": LimitData,
}


def register(name: str, runner: RunnerClass) -> None:
    REGISTRY[name] = runner


@dataclass
class ToxicConfig:
    """A toxic as the API knows it: identity, toxicity, attributes with every key present."""

    name: str
    type: str
    stream: str  # as sent by the client
    toxicity: float  # float32 value
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def direction(self) -> str:
        return self.stream.lower()

    @property
    def runner_class(self) -> RunnerClass:
        return REGISTRY[self.type]

    def make_runner(self) -> Runner:
        return self.runner_class(dict(self.attributes))

    def buffer_size(self) -> int:
        return self.runner_class.buffer

    def closes_on_remove(self) -> bool:
        return self.runner_class.close_on_remove

    def to_json(self) -> str:
        attrs = []
        for key, kind in self.runner_class.attrs:
            value = self.attributes[key]
            if kind == "float":
                text = _gojson.format_float(value)
            else:
                text = _gojson.encode(value)
            attrs.append(f"{_gojson.encode(key)}:{text}")
        return (
            '{"attributes":{' + ",".join(attrs) + "},"
            f'"name":{_gojson.encode(self.name)},"type":{_gojson.encode(self.type)},'
            f'"stream":{_gojson.encode(self.stream)},"toxicity":{_gojson.format_float(self.toxicity, bits=32)}}}'
        )


def decode_attributes(runner: RunnerClass, raw: Any, current: dict[str, Any] | None) -> dict[str, Any]:
    """Decode `attributes` onto the current values (zero values for a new toxic)."""
    values: dict[str, Any] = (
        dict(current)
        if current is not None
        else {key: runner.defaults.get(key, _zero(kind)) for key, kind in runner.attrs}
    )
    obj = _gojson.require_object(raw, "toxics." + runner.go_name)
    if obj is None:
        return values
    for key, kind in runner.attrs:
        if kind == "int":
            values[key] = _gojson.get_int(obj, key, values[key], runner.go_name)
        elif kind == "float":
            values[key] = _gojson.get_float(obj, key, values[key], runner.go_name)
        else:
            values[key] = _gojson.get_string(obj, key, values[key], runner.go_name)
    return values


def _zero(kind: str) -> Any:
    return {"int": 0, "float": 0.0, "string": ""}[kind]
