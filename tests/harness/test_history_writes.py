"""The history's writing: buffered and batched, yet complete, in order and readable at any moment; a message
written from its payload's own JSON text reads back as the record the generic path writes."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from sagaproof.harness.events import EventBus, MessageRecorded, Phase, RecorderProblem
from sagaproof.harness.history import History, read_records


def _message(i: int, *, text: bool, **kw) -> MessageRecorded:
    body = {"i": i, "name": "caf\u00e9" if i % 7 == 0 else "x", "n": [1, 2.5, None, True]}
    payload = json.dumps(body, separators=(",", ": "))
    fields = dict(subject="work.item", stream="MINI", stream_seq=i, producer="alpha", headers={}, data=body,
                  size=len(payload), raw=None)
    fields.update(kw)
    ascii_text = payload if payload.isascii() else None
    return MessageRecorded(**fields, at=1000.0 + i / 1000, data_json=ascii_text if text else None)


def test_fast_and_generic_message_records_are_the_same(tmp_path: Path):
    variants = [
        {}, {"stream": None, "stream_seq": None}, {"producer": None}, {"headers": {"trace": "t-1", "n": "2"}},
        {"subject": "odd.\"quoted\\subject"}, {"subject": "caf\u00e9.created"},
    ]
    for n, kw in enumerate(variants):
        fast, generic = tmp_path / f"fast{n}.jsonl", tmp_path / f"generic{n}.jsonl"
        for path, text in ((fast, True), (generic, False)):
            h = History(path, t0=1000.0)
            for i in range(1, 30):
                h(_message(i, text=text, **kw))
            h.close()
        assert fast.read_bytes().splitlines()[1].startswith(b'{"kind":"message","t":')
        a, b = list(read_records(fast)), list(read_records(generic))
        assert a == b and len(a) == 29, kw
        assert all(line.isascii() for line in fast.read_text().splitlines())


def test_message_recorded_fast_is_the_constructed_event():
    args = ("s.x", "S", 3, "p", {"h": "1"}, {"x": [1]}, 9, None)
    made = MessageRecorded(*args, at=5.5, data_json='{"x":[1]}')
    fast = MessageRecorded.fast(*args, 5.5, '{"x":[1]}')
    assert fast == made and fast.__dict__ == made.__dict__
    assert set(fast.__dict__) == {f.name for f in dataclasses.fields(fast)}
    assert fast.to_record(5.0) == made.to_record(5.0)


def test_batched_writes_are_complete_and_ordered_and_readable_while_writing(tmp_path: Path):
    """Lines are handed to the file in batches and the file is buffered; every reader still sees everything
    written before it began, and after close the file holds every record once, in time order."""
    bus = EventBus()
    h = History(tmp_path / "events.jsonl", t0=1000.0)
    bus.subscribe(h)
    for i in range(1, 1001):
        bus.emit(_message(i, text=i % 3 != 0))  # both paths, interleaved
        if i % 250 == 0:
            bus.emit(Phase("tick", str(i), at=1000.0 + i / 1000 + 0.0001))
        if i == 400:  # mid-run: a reader sees all 400 messages (and the first tick) already
            seen = [r["stream_seq"] for r in h.records(kinds=("message",))]
            assert seen == list(range(1, 401))
            assert h.flush() == (tmp_path / "events.jsonl").stat().st_size
    bus.emit(RecorderProblem("late", at=1000.5))  # out of time order: close() sorts
    h.close()
    records = list(read_records(tmp_path / "events.jsonl"))
    assert len(records) == 1000 + 4 + 1 and h.messages == 1000 and h.counts["phase"] == 4
    assert [r["stream_seq"] for r in records if r["kind"] == "message"] == list(range(1, 1001))
    assert sorted(r["seq"] for r in records) == list(range(1, 1006))
    ts = [(r["t"], r["seq"]) for r in records]
    assert ts == sorted(ts)


def test_buffered_records_reach_the_file_while_records_keep_coming(tmp_path: Path):
    """Nobody reads and nothing closes: records still reach the file within the flush interval."""
    from sagaproof.harness import history as history_module

    h = History(tmp_path / "events.jsonl", t0=1000.0)
    h(_message(1, text=True))
    deadline = time.monotonic() + 30
    i = 1
    while (tmp_path / "events.jsonl").stat().st_size == 0:  # written at the first record after the interval
        assert time.monotonic() < deadline, "buffered records never reached the file"
        time.sleep(history_module.FLUSH_INTERVAL / 5)
        i += 1
        h(_message(i, text=True))  # the per-message path checks the interval too
    h.close()
