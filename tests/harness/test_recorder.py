"""The recorder: every message in order with its stream sequence, validated, loud when it falls behind, and
still recording after the broker restarts. It keeps nothing: the history is the events it emits."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import nats
from sagaproof.harness.config import load_system_file
from sagaproof.harness.env.system import System
from sagaproof.harness.events import EventBus
from sagaproof.harness.history import History, read_records
from sagaproof.harness.session.recorder import Recorder, subject_matches

from tests.conftest import MINI


def test_subject_matching():
    assert subject_matches("orders.>", "orders.created")
    assert subject_matches("orders.*", "orders.created")
    assert not subject_matches("orders.*", "orders.created.v2")
    assert not subject_matches("orders.>", "orders")
    assert subject_matches(">", "a")
    assert not subject_matches("a.b", "a.c")


async def _publish(url: str, n: int, core: int = 0) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    for i in range(n):
        await js.publish(f"work.item{i % 3}", json.dumps({"i": i}).encode())
    for i in range(core):
        await nc.publish("loose.chatter", json.dumps({"i": i}).encode())
    await nc.flush()
    await nc.close()


def _recording(system: System, tmp_path: Path, **kw) -> tuple[Recorder, History]:
    bus = EventBus()
    history = History(tmp_path / "events.jsonl", t0=time.time())
    bus.subscribe(history)
    rec = Recorder(system.nats_urls, bus.emit, **kw)
    system.loop.run(rec.start())
    return rec, history


def test_records_stream_and_core_traffic_in_order_with_sequences(tmp_path: Path):
    with System(load_system_file(MINI), report_dir=tmp_path) as system:
        rec, history = _recording(system, tmp_path)
        system.loop.run(_publish(system.nats_url, 300, core=5))
        system.loop.run(asyncio.sleep(0.3))
        system.loop.run(rec.drain())
        system.loop.run(rec.stop())
    history.close()
    records = list(read_records(tmp_path / "events.jsonl"))
    stream = [r for r in records if r.get("stream") == "MINI"]
    assert [r["stream_seq"] for r in stream] == list(range(1, 301))
    assert [r["data"]["i"] for r in stream] == list(range(300))
    assert len([r for r in records if r["subject"] == "loose.chatter"]) == 5
    assert rec.problems == [] and rec.messages == 305 == len(records)
    ts = [r["t"] for r in records]
    assert ts == sorted(ts)
    assert not hasattr(rec, "records"), "the recorder keeps no copy of the history"


def test_recording_resumes_after_the_broker_restarts(tmp_path: Path):
    with System(load_system_file(MINI), report_dir=tmp_path) as system:
        rec, history = _recording(system, tmp_path)
        system.loop.run(_publish(system.nats_url, 10))
        system.restart_nats(0)  # SIGKILL and start again, JetStream data kept
        system.loop.run(_publish(system.nats_url, 10))
        system.loop.run(rec.drain(timeout=8))  # with the old 5 s heartbeats it took 10-20 s
        system.loop.run(rec.stop())
    history.close()
    seqs = [r["stream_seq"] for r in read_records(tmp_path / "events.jsonl", kinds=("message",))]
    assert seqs == list(range(1, 21)) and rec.problems == []


def test_a_recorder_that_falls_behind_says_so(tmp_path: Path):
    class SlowValidator:
        def validate(self, subject, payload, headers):
            time.sleep(0.002)  # a recorder that cannot keep up
            return []

    with System(load_system_file(MINI), report_dir=tmp_path) as system:
        rec, history = _recording(system, tmp_path, validator=SlowValidator(), pending_limit=20)
        system.loop.run(_publish(system.nats_url, 0, core=3000))
        system.loop.run(asyncio.sleep(1.0))
        system.loop.run(rec.drain())
        system.loop.run(rec.stop())
    history.close()
    assert rec.problems, "dropped messages went unnoticed"
    assert "fell behind" in rec.problems[0]
    problems = list(read_records(tmp_path / "events.jsonl", kinds=("recorder_problem",)))
    assert problems and "fell behind" in problems[0]["problem"]


def _wait(condition, what: str, limit: float = 30.0) -> None:
    """Wait for a condition (the limit only keeps a broken recorder from hanging the suite)."""
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.01)


def test_core_traffic_on_the_recorder_user_never_receives_stream_messages(tmp_path: Path):
    """Embedded NATS: the core subscription's own user is denied the streams' subjects, so the server sends it
    neither the published stream messages nor their JetStream deliveries; both kinds are still recorded."""
    with System(load_system_file(MINI), report_dir=tmp_path) as system:
        rec, history = _recording(system, tmp_path, core=system.recorder_core)
        assert rec.core_connection
        system.loop.run(_publish(system.nats_url, 300, core=5))
        system.loop.run(rec.drain())
        _wait(lambda: rec.messages >= 305, "all 305 messages recorded")
        core_in = rec._core_nc.stats["in_msgs"]
        system.loop.run(rec.stop())
    history.close()
    records = list(read_records(tmp_path / "events.jsonl"))
    assert [r["stream_seq"] for r in records if r.get("stream") == "MINI"] == list(range(1, 301))
    assert len([r for r in records if r["subject"] == "loose.chatter"]) == 5
    assert rec.problems == [] and rec.messages == 305 == len(records)
    assert core_in == 5, f"the core connection received {core_in} messages; only the 5 core ones should reach it"


def test_the_recorder_user_is_not_used_when_a_denied_subject_is_not_stored_by_a_stream(tmp_path: Path):
    """A subject the server keeps from the core user but no stream stores would be seen by nobody: then the
    core subscription stays on the streams' connection (slower, complete)."""
    with System(load_system_file(MINI), report_dir=tmp_path) as system:
        urls, denied = system.recorder_core
        rec, history = _recording(system, tmp_path, core=(urls, [*denied, "loose.>"]))
        assert not rec.core_connection and rec._core_nc is None
        system.loop.run(_publish(system.nats_url, 10, core=3))
        system.loop.run(rec.drain())
        _wait(lambda: rec.messages >= 13, "all 13 messages recorded")
        system.loop.run(rec.stop())
    history.close()
    records = list(read_records(tmp_path / "events.jsonl"))
    assert len([r for r in records if r["subject"] == "loose.chatter"]) == 3 and rec.problems == []


def test_recording_with_the_recorder_user_resumes_after_the_broker_restarts(tmp_path: Path):
    """As the engine wires it (two connections): a broker killed mid-stream loses nothing the server stored,
    records nothing twice, and core traffic is recorded again once both connections are back."""
    with System(load_system_file(MINI), report_dir=tmp_path) as system:
        rec, history = _recording(system, tmp_path, core=system.recorder_core)
        system.loop.run(_publish(system.nats_url, 10, core=2))
        system.restart_nats(0)  # SIGKILL and start again, JetStream data kept
        system.loop.run(_publish(system.nats_url, 10))
        _wait(lambda: rec._nc.is_connected and rec._core_nc.is_connected, "both connections back")
        system.loop.run(rec._core_nc.flush())  # its subscription is on the server again
        system.loop.run(_publish(system.nats_url, 0, core=2))
        system.loop.run(rec.drain(timeout=8))
        _wait(lambda: rec.messages >= 24, "24 messages recorded")
        system.loop.run(rec.stop())
    history.close()
    records = list(read_records(tmp_path / "events.jsonl", kinds=("message",)))
    assert [r["stream_seq"] for r in records if r.get("stream") == "MINI"] == list(range(1, 21))
    assert len([r for r in records if r["subject"] == "loose.chatter"]) == 4
    assert rec.problems == [] and rec.messages == 24


def test_a_stream_message_that_cannot_be_recorded_is_a_problem(tmp_path: Path):
    """Recording runs in nats-py's reading task: an error there must not vanish (nor break the connection)."""
    class Broken:
        def validate(self, subject, payload, headers):
            if json.loads(payload)["i"] == 3:
                raise RuntimeError("validator broke")
            return []

    with System(load_system_file(MINI), report_dir=tmp_path) as system:
        rec, history = _recording(system, tmp_path, validator=Broken(), core=system.recorder_core)
        system.loop.run(_publish(system.nats_url, 10))
        system.loop.run(rec.drain())
        system.loop.run(rec.stop())
    history.close()
    assert any("could not record a message of stream MINI" in p and "validator broke" in p for p in rec.problems)
    assert rec.last_seq["MINI"] == 10  # the messages after it were recorded
    assert [r["stream_seq"] for r in read_records(tmp_path / "events.jsonl", kinds=("message",))] == list(range(1, 11))


PAYLOADS = [
    b'{"a":1}', b'{"a": 1, "a": 2}', b"NaN", b"[Infinity, -Infinity]", b"123456789012345678901234567890",
    b"-9223372036854775809", b"18446744073709551615", b"1e400", b"-1e400", b"5e-324", b"1.7976931348623157e308",
    b'"\\ud800"', b'"\xed\xa0\x80"', b"\xef\xbb\xbf{}", b'{"a":"\xc3\xa9"}', b'{"a":\t1}', b' {"a" : [1, 2.5, -0.0]} ',
    '{"x": 1}'.encode("utf-16"), b'{"id": "0123456789012345678901"}', b"null", b"true", b'""', b'{"x":', b"\xff",
    b"{}extra", b'"\x01"', b"[" * 50 + b"]" * 50,
]


def test_payloads_are_read_exactly_as_json_loads_reads_them():
    """The recorder's fast parse (orjson where it agrees) gives json.loads's value and errors, and hands back
    the text only when it can stand in a JSON line as it is."""
    from sagaproof.harness.session.recorder import _parse

    for data in PAYLOADS:
        try:
            expected = repr(json.loads(data))
        except ValueError as exc:
            expected = f"error {type(exc).__mro__[1] if type(exc).__name__ == 'JSONDecodeError' else type(exc)}"
        try:
            value, text = _parse(data)
            got = repr(value)
        except ValueError as exc:
            got = f"error {type(exc).__mro__[1] if type(exc).__name__ == 'JSONDecodeError' else type(exc)}"
            text = None
        assert got == expected, data
        if text is not None:
            assert text.isascii() and text.isprintable() and repr(json.loads(text)) == expected, data
    assert _parse(b'{"a":\t1}')[1] is None and _parse(b'{"a":"\xc3\xa9"}')[1] is None
    assert _parse(b' {"a" : 1} ')[1] == ' {"a" : 1} '


def test_stream_messages_queued_before_the_switch_are_recorded_first_in_order():
    """nats-py may queue a stream's first deliveries before the recorder takes them over; those come first."""
    from types import SimpleNamespace

    from sagaproof.harness.session.recorder import _deliver_directly

    queue: asyncio.Queue = asyncio.Queue()
    sub = SimpleNamespace(_pending_queue=queue, _pending_size=0)
    got: list[int] = []
    for i in range(3):
        queue.put_nowait(SimpleNamespace(data=b"xx", i=i))
        sub._pending_size += 2
    assert _deliver_directly(SimpleNamespace(_sub=sub), lambda m: got.append(m.i), lambda exc: None)
    sub._pending_size += 2  # as nats-py counts a message before it hands it over
    sub._pending_queue.put_nowait(SimpleNamespace(data=b"xx", i=3))
    assert got == [0, 1, 2, 3] and sub._pending_size == 0 and queue.empty()
    assert sub._pending_queue.qsize() == 0 and sub._pending_queue.empty()
