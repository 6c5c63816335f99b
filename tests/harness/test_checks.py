"""The engine's checks over a streamed history (no processes): windows, keys, "nothing to judge", sharding,
the faults of a saga that never finished, the fault schedule, and the history file itself."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from sagaproof.harness.checks import CheckContext, Window, fault_schedule, saga_checks, saga_result
from sagaproof.harness.checks import judging as judging_mod
from sagaproof.harness.config import ChaosSpec, SystemSpec
from sagaproof.harness.events import EventBus, FaultInjected, MessageRecorded, Phase
from sagaproof.harness.history import History, HistoryReader, read_records

from tests.harness.test_checker import SAGAS
from tests.harness.test_checker import History as Builder


def spec(tolerance: float = 0.0) -> SystemSpec:
    from sagaproof.harness.config import NatsSpec, WorkloadSpec

    return SystemSpec(path=Path("x/sagaproof.toml"), root=Path("x"), nats=NatsSpec(), services={}, sagas=SAGAS,
                      workload=WorkloadSpec(), invariants=(), invariant_timeout=1.0,
                      chaos=ChaosSpec(schedule_tolerance=tolerance))


def write(tmp_path: Path, records: list[dict[str, Any]]) -> HistoryReader:
    path = tmp_path / "events.jsonl"
    with open(path, "w") as f:
        for i, r in enumerate(sorted(records, key=lambda r: r["t"])):
            r = {"kind": r["kind"], **{k: v for k, v in r.items() if k != "kind"}}
            r.setdefault("seq", i + 1)
            f.write(json.dumps(r) + "\n")
    return HistoryReader(path)


def ctx(history: HistoryReader, window: Window = Window(), **facts: Any) -> CheckContext:
    return CheckContext(spec(facts.pop("tolerance", 0.0)), history, window, healed_at=facts.pop("healed_at", 0.0),
                        end_at=facts.pop("end_at", 100.0), facts={"validator": True, **facts})


def outcome(outcomes: list, name: str):
    return next(o for o in outcomes if o.name == name)


def test_a_window_judges_the_sagas_that_started_in_it_not_their_tails(tmp_path: Path):
    # o1 started before the window and compensates inside it; judged on its later events alone it would
    # look like a refund without a charge (the false "compensation order" alarm of the issue).
    h = Builder()
    h.msg(1.0, "orders.created", "o1").msg(1.1, "payments.completed", "o1")
    h.msg(5.2, "inventory.failed", "o1").msg(5.3, "payments.refunded", "o1").msg(5.4, "orders.cancelled", "o1")
    h.happy("o2", 5.5)
    reader = write(tmp_path, h.records)
    out = list(saga_checks(ctx(reader, Window(since=5.0), healed_at=5.0)))
    assert all(o.ok for o in out), [o.summary for o in out if not o.ok]
    assert outcome(out, "sagas judged").summary == "1 sagas judged"
    whole = saga_result(reader, SAGAS, Window(), healed_at=0.0, end_at=100.0)
    assert whole.sagas_checked == 2 and whole.ok


def test_keys_judge_exactly_those_sagas(tmp_path: Path):
    h = Builder().happy("o1", 1.0).happy("o2", 1.1)
    h.msg(1.2, "orders.created", "o3")  # stuck
    reader = write(tmp_path, h.records)
    r = saga_result(reader, SAGAS, Window(keys=frozenset({"o1", "o2"})), healed_at=0.0, end_at=100.0)
    assert (r.sagas_checked, r.ok) == (2, True)
    r = saga_result(reader, SAGAS, Window(keys=frozenset({("checkout", "o3")})), healed_at=0.0, end_at=100.0)
    assert r.sagas_checked == 1 and [v.check for v in r.violations] == ["termination"]


def test_a_check_with_nothing_to_judge_does_not_pass(tmp_path: Path):
    reader = write(tmp_path, Builder().happy("o1", 1.0).records)
    out = list(saga_checks(ctx(reader, Window(since=50.0))))
    judged = outcome(out, "sagas judged")
    assert not judged.ok and "nothing was judged" in judged.summary
    assert all(o.skipped for o in out if o.name != "sagas judged")


def test_sharded_judgement_equals_the_single_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    h = Builder()
    for i in range(60):
        (h.happy if i % 7 else h.aborted)(f"o{i}", i * 0.1)
    h.msg(3.0, "payments.completed", "o5")  # a double charge
    h.msg(4.0, "orders.created", "stuck")
    h.fault(2.0, "f1", "latency", "payment").heal(4.5, "f1")
    reader = write(tmp_path, h.records)
    n = sum(1 for r in h.records if r["kind"] == "message")
    single = saga_result(reader, SAGAS, Window(), healed_at=0.0, end_at=100.0, n_messages=n)
    monkeypatch.setattr(judging_mod, "SHARD_MESSAGES", 40)
    sharded = saga_result(reader, SAGAS, Window(), healed_at=0.0, end_at=100.0, n_messages=n, scratch=tmp_path)
    assert sharded.sagas_checked == single.sagas_checked == 61
    assert sharded.counts == single.counts and sharded.outcomes == single.outcomes
    assert [(v.check, v.key) for v in sharded.violations] == [(v.check, v.key) for v in single.violations]
    assert sharded.convergence == single.convergence and sharded.messages_seen == single.messages_seen
    assert not list(tmp_path.glob("sagaproof-shards-*")), "shard files are removed"


def test_a_saga_that_never_finished_names_the_faults_after_its_last_event(tmp_path: Path):
    h = Builder()
    h.msg(1.0, "orders.created", "o1").msg(1.1, "payments.completed", "o1")
    h.fault(2.0, "f7", "drop", "inventory").heal(3.0, "f7")  # after the last event: lost the next one
    h.fault(50.0, "f8", "latency", "order").heal(51.0, "f8")  # after the deadline: not listed
    reader = write(tmp_path, h.records)
    out = list(saga_checks(ctx(reader, healed_at=0.0, end_at=100.0)))
    term = outcome(out, "termination")
    assert not term.ok
    text = term.findings[0].message
    assert "faults active from its last event (t=1.100s) to its deadline (t=31.000s): f7 drop inventory" in text
    assert "f8" not in text and "f7" in term.findings[0].faults


def _fault(fid: str, start: float, duration: float, **more: Any) -> dict[str, Any]:
    return {"id": fid, "kind": "latency", "target": "payment", "start": start, "duration": duration, "params": {},
            "source": "nemesis", **more}


def test_the_fault_schedule_check_fails_on_faults_not_carried_out(tmp_path: Path):
    planned = [_fault("f1", 0.0, 0.5), _fault("f2", 1.0, 0.3), _fault("f3", 2.0, 0.3), _fault("f4", 3.0, 0.3),
               _fault("f5", 4.0, 0.3)]
    recs = [
        {"kind": "fault_start", "t": 0.1, "fault": _fault("f1", 0.0, 0.5, late_by=0.01)},
        # the harness fell behind: 0.9 s late for a 0.3 s fault
        {"kind": "fault_start", "t": 2.0, "fault": _fault("f2", 1.0, 0.3, late_by=0.9)},
        # as late, but it waited for its target's previous fault (a restart): the schedule's own order
        {"kind": "fault_start", "t": 3.0, "fault": _fault("f3", 2.0, 0.3, late_by=0.9, waited_for_target=0.85)},
        {"kind": "fault_failed", "t": 3.1, "fault": _fault("f4", 3.0, 0.3), "error": "proxy refused", "stage": "inject"},
        # f5 never started
    ]
    reader = write(tmp_path, recs)
    [o] = fault_schedule(ctx(reader, planned_faults=planned))
    assert not o.ok
    assert o.summary == "2 of 5 faults carried out as planned; 3 not (tolerance 0)"
    titles = sorted(f.title for f in o.findings)
    assert titles == ["f2 latency payment started 0.90s late, longer than its own 0.30s",
                      "f4 latency payment could not be injected: proxy refused", "f5 latency payment never started"]
    [o] = fault_schedule(ctx(reader, planned_faults=planned, schedule_tolerance=0.6))
    assert o.ok, "within the system file's tolerance"


def test_history_streams_sorts_and_slices(tmp_path: Path):
    bus = EventBus()
    t0 = time.time()
    hist = History(tmp_path / "events.jsonl", t0=t0)
    bus.subscribe(hist)
    bus.emit(Phase("workload_start", at=t0 + 1.0))
    bus.emit(MessageRecorded("a.b", None, None, None, {}, {"k": 1}, 7, at=t0 + 3.0))
    bus.emit(MessageRecorded("a.b", None, None, None, {}, {"k": 0}, 7, at=t0 + 2.0))  # replayed late
    bus.emit(FaultInjected({"id": "t1", "kind": "latency", "target": "x"}, at=t0 + 2.5))
    assert not hist.in_order
    assert [r["kind"] for r in hist.records(kinds=("message",))] == ["message", "message"]
    hist.write_slice(tmp_path / "slice.jsonl", since=2.6)
    assert [r["kind"] for r in read_records(tmp_path / "slice.jsonl")] == ["fault_start", "message"]
    hist.close()
    recs = list(read_records(tmp_path / "events.jsonl"))
    assert [r["t"] for r in recs] == sorted(r["t"] for r in recs)
    assert recs[0] == {"kind": "phase", "t": 1.0, "phase": "workload_start", "detail": "", "seq": 1}
    assert recs[2]["line"] == "fault t1 latency → x"
