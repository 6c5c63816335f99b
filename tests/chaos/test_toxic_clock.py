"""The toxics' timing arithmetic, exact, on an event loop with a virtual clock.

Each test runs a real chain of toxic stages (the proxy's own `Link`) on `VirtualClockLoop`: waits
take no real time and the clock jumps to the next timer, so every assertion is an exact figure
with no wall-clock bound. Some tests make the clock less kind on purpose: timers that wake up to
1 ms late (as epoll's millisecond waits do) and a cost per write, to show that the bandwidth toxic
makes up the time it loses. The same toxics over real sockets are in test_toxics.py.
"""

from __future__ import annotations

import asyncio
import random

import pytest
from sagaproof.chaos.toxiproxy._toxics import Slicer
from virtual_clock import Chain, RecordingSink, run_virtual, toxic

MS = 0.001
EPS = 1e-9


def test_two_latency_toxics_add_up() -> None:
    async def main() -> float:
        chain = Chain([toxic("latency", latency=150), toxic("latency", latency=150)])
        chain.feed(b"x")
        await chain.sink.wait_bytes(1)
        return chain.sink.time_of_byte(1)

    assert run_virtual(main) == pytest.approx(0.300, abs=EPS)


def test_round_trip_through_three_latency_toxics() -> None:
    """150 ms upstream and two of 150 ms downstream: a round trip of 450 ms (issue 13)."""

    async def main() -> float:
        up = Chain([toxic("latency", "upstream", latency=150)])
        down = Chain([toxic("latency", latency=150), toxic("latency", latency=150)])
        up.feed(b"ping")
        await up.sink.wait_bytes(4)
        down.feed(up.sink.data)  # the echo server answers at once
        await down.sink.wait_bytes(4)
        return down.sink.time_of_byte(4)

    assert run_virtual(main) == pytest.approx(0.450, abs=EPS)


def test_latency_is_pipelined_not_cumulative() -> None:
    async def main() -> list[float]:
        chain = Chain([toxic("latency", latency=200)])
        for i in range(5):
            chain.feed(b"%d" % i)
            await asyncio.sleep(0.010)
        await chain.sink.wait_bytes(5)
        assert chain.sink.data == b"01234"
        return [t for t, _d in chain.sink.records]

    assert run_virtual(main) == pytest.approx([0.200, 0.210, 0.220, 0.230, 0.240], abs=EPS)


def test_jitter_is_a_whole_number_of_ms_in_range() -> None:
    async def main() -> list[float]:
        chain = Chain([toxic("latency", latency=100, jitter=30)], seed=7)
        delays = []
        for _ in range(300):
            start = asyncio.get_running_loop().time()
            n = len(chain.sink.records)
            chain.feed(b"j")
            while len(chain.sink.records) == n:
                await chain.sink.event.wait()
                chain.sink.event.clear()
            delays.append(chain.sink.records[-1][0] - start)
        return delays

    delays = run_virtual(main)
    ms = [round(d / MS, 6) for d in delays]
    assert all(m == int(m) for m in ms), ms[:10]
    assert min(ms) >= 70 and max(ms) < 130, (min(ms), max(ms))
    assert min(ms) <= 72 and max(ms) >= 127 and len(set(ms)) > 40  # the whole range is drawn


def test_zero_and_negative_latency_pass_at_once() -> None:
    async def main() -> list[float]:
        chain = Chain([toxic("latency", latency=0), toxic("latency", latency=-50, jitter=10)])
        await asyncio.sleep(1.0)
        chain.feed(b"now")
        await chain.sink.wait_bytes(3)
        return [t for t, _d in chain.sink.records]

    assert run_virtual(main) == [1.0]


def test_bandwidth_exact_rate_and_no_initial_burst() -> None:
    """The reference's own test: 480 KB at 1000 KB/s takes 480 ms."""

    async def main() -> RecordingSink:
        chain = Chain([toxic("bandwidth", rate=1000)])
        for _ in range(15):
            chain.feed(b"b" * 32_000)
        await chain.sink.wait_bytes(480_000)
        return chain.sink

    sink = run_virtual(main)
    assert sink.time_of_byte(480_000) == pytest.approx(0.480, abs=MS)
    assert sink.time_of_byte(1) >= 0.032 - MS  # the first chunk is paid for before it goes


@pytest.mark.parametrize("mbps", [5, 20, 50])
def test_bandwidth_makes_up_late_timers_and_write_cost(mbps: int) -> None:
    """Timers wake up to 1 ms late and every write costs 0.1 ms: the rate still holds to 1%."""
    total = mbps * 200_000  # 0.2 s worth

    async def main() -> float:
        chain = Chain([toxic("bandwidth", rate=mbps * 1000)], sink=RecordingSink(cost=0.1 * MS))
        chain.feed(b"z" * total)
        await chain.sink.wait_bytes(total)
        return chain.sink.time_of_byte(total)

    elapsed = run_virtual(main, granularity=MS)
    achieved = total / elapsed / (mbps * 1e6)
    assert 0.99 <= achieved <= 1.01, achieved


def test_bandwidth_idle_link_earns_no_burst() -> None:
    async def main() -> RecordingSink:
        chain = Chain([toxic("bandwidth", rate=1000)])
        chain.feed(b"a" * 100_000)
        await chain.sink.wait_bytes(100_000)
        await asyncio.sleep(1.0 - asyncio.get_running_loop().time())
        chain.feed(b"b" * 100_000)
        await chain.sink.wait_bytes(200_000)
        return chain.sink

    sink = run_virtual(main)
    assert sink.time_of_byte(100_000) == pytest.approx(0.100, abs=MS)
    assert sink.time_of_byte(200_000) == pytest.approx(1.100, abs=MS)


def test_bandwidth_catch_up_after_a_stalled_destination_is_bounded() -> None:
    """A destination that stops reading for 1 s earns at most 100 ms of catch-up, not a burst of all."""

    async def main() -> RecordingSink:
        chain = Chain([toxic("bandwidth", rate=1000)], sink=RecordingSink(stall=1.0))
        for _ in range(15):
            chain.feed(b"s" * 32_000)
        await chain.sink.wait_bytes(480_000)
        return chain.sink

    sink = run_virtual(main)
    # first chunk at 0.032, then stalled until 1.032; the rest resumes 100 ms behind schedule
    assert sink.time_of_byte(32_000) == pytest.approx(0.032, abs=MS)
    assert sink.time_of_byte(480_000) == pytest.approx(1.032 + 14 * 0.032 - 0.100, abs=MS)


def test_bandwidth_zero_or_negative_rate_is_unlimited() -> None:
    async def main() -> list[float]:
        chain = Chain([toxic("bandwidth", rate=-5), toxic("bandwidth", rate=0)])
        chain.feed(b"q" * 100_000)
        await chain.sink.wait_bytes(100_000)
        return sorted({t for t, _d in chain.sink.records})

    assert run_virtual(main) == [0.0]


def test_slicer_pieces_and_delay() -> None:
    async def main() -> RecordingSink:
        chain = Chain([toxic("slicer", average_size=10, size_variation=0, delay=20_000)])  # 20 ms
        chain.feed(bytes(range(160)))  # halved until pieces are <= 10 bytes: 16 pieces of 10
        await chain.sink.wait_bytes(160)
        return chain.sink

    sink = run_virtual(main)
    assert sink.data == bytes(range(160))
    assert [len(d or b"") for _t, d in sink.records] == [10] * 16
    assert [t for t, _d in sink.records] == pytest.approx([i * 0.020 for i in range(16)], abs=EPS)


def test_slicer_cut_points_cover_the_chunk() -> None:
    slicer = Slicer({"average_size": 1024, "size_variation": 512, "delay": 0})
    points = slicer.split(480_000, random.Random(3))
    assert points[0] == 0 and points[-1] == 480_000 and points == sorted(points)
    assert 240 <= len(points) - 1 <= 720
    exact = Slicer({"average_size": 100, "size_variation": 0, "delay": 0}).split(1600, random.Random(1))
    assert len(exact) - 1 == 16


def test_slow_close_delays_only_the_close() -> None:
    async def main() -> RecordingSink:
        chain = Chain([toxic("slow_close", delay=300)])
        chain.feed(b"abc")
        await asyncio.sleep(0.1)
        chain.eof()
        await chain.sink.wait_eof()
        return chain.sink

    sink = run_virtual(main)
    assert sink.records == [(0.0, b"abc"), (pytest.approx(0.4, abs=EPS), None)]


def test_timeout_is_an_idle_timer_that_drops_data() -> None:
    async def main() -> RecordingSink:
        chain = Chain([toxic("timeout", timeout=400)])
        for _ in range(3):
            chain.feed(b"lost")
            await asyncio.sleep(0.150)
        await chain.sink.wait_eof()
        return chain.sink

    sink = run_virtual(main)
    assert sink.records == [(pytest.approx(0.300 + 0.400, abs=EPS), None)]


def test_reset_peer_fires_timeout_after_the_first_data() -> None:
    async def main() -> float | None:
        chain = Chain([toxic("reset_peer", timeout=200)])
        await asyncio.sleep(0.05)
        chain.feed(b"x")
        while not chain.conn.closed:
            await asyncio.sleep(0.01)
        assert chain.sink.records == []
        return chain.conn.closed_at

    assert run_virtual(main) == pytest.approx(0.250, abs=EPS)


def test_nats_delay_holds_a_message_while_others_pass() -> None:
    async def main() -> RecordingSink:
        chain = Chain([toxic("nats_delay", subject="a.>", delay=500)])
        chain.feed(b"MSG a.b 1 2\r\nhi\r\n")
        await asyncio.sleep(0.1)
        chain.feed(b"MSG c.d 1 2\r\nyo\r\n")
        await chain.sink.wait_bytes(34)
        return chain.sink

    sink = run_virtual(main)
    assert sink.records == [
        (pytest.approx(0.1, abs=EPS), b"MSG c.d 1 2\r\nyo\r\n"),
        (pytest.approx(0.5, abs=EPS), b"MSG a.b 1 2\r\nhi\r\n"),
    ]
