"""The recorder: every message in order with its stream sequence, validated, and loud when it falls behind."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import nats
from sagaproof.harness.config import load_system_file
from sagaproof.harness.recorder import Recorder, subject_matches
from sagaproof.harness.system import System

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


def test_records_stream_and_core_traffic_in_order_with_sequences(tmp_path: Path):
    with System(load_system_file(MINI), report_dir=tmp_path) as system:
        rec = Recorder(system.nats_urls, tmp_path / "events.jsonl", t0=time.time())
        system.loop.run(rec.start())
        system.loop.run(_publish(system.nats_url, 300, core=5))
        system.loop.run(asyncio.sleep(0.3))
        system.loop.run(rec.drain())
        system.loop.run(rec.stop())
    stream = [r for r in rec.records if r.get("stream") == "MINI"]
    assert [r["stream_seq"] for r in stream] == list(range(1, 301))
    assert [r["data"]["i"] for r in stream] == list(range(300))
    assert len([r for r in rec.records if r["subject"] == "loose.chatter"]) == 5
    assert rec.problems == []
    lines = (tmp_path / "events.jsonl").read_text().splitlines()
    assert len(lines) == len(rec.records) == 305
    ts = [json.loads(line)["t"] for line in lines]
    assert ts == sorted(ts)


def test_a_recorder_that_falls_behind_says_so(tmp_path: Path):
    class SlowValidator:
        def validate(self, subject, payload, headers):
            time.sleep(0.002)  # a recorder that cannot keep up
            return []

    with System(load_system_file(MINI), report_dir=tmp_path) as system:
        rec = Recorder(system.nats_urls, tmp_path / "events.jsonl", t0=time.time(), validator=SlowValidator(),
                       pending_limit=20)
        system.loop.run(rec.start())
        system.loop.run(_publish(system.nats_url, 0, core=3000))
        system.loop.run(asyncio.sleep(1.0))
        system.loop.run(rec.drain())
        system.loop.run(rec.stop())
    assert rec.problems, "dropped messages went unnoticed"
    assert "fell behind" in rec.problems[0]
