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
