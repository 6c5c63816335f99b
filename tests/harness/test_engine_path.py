"""The saga checks on the engine's own path (a written ``events.jsonl``, parsed once, reduced to what the checker
reads, sharded by key through a scratch file, merged) give exactly the verdicts of the checker over the same
records held in memory, on synthetic histories full of violations."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from sagaproof.harness import checks as checks_mod
from sagaproof.harness.checks import CheckContext, Window, saga_checks, saga_result
from sagaproof.harness.checks import judging as judging_mod
from sagaproof.harness.checks.checker import check_history
from sagaproof.harness.config import ChaosSpec, NatsSpec, SagaSpec, StepSpec, SystemSpec, WorkloadSpec
from sagaproof.harness.history import History, HistoryReader

from tests.harness.test_checker import CHECKOUT

TRIPS = SagaSpec(
    name="booking", key="data.trip_id", event_id="id", start="trip.requested", success=("trip.confirmed",),
    abort=("trip.rejected", "payment.refunded"), deadline=30.0,
    steps=(StepSpec("screen", "risk", "risk.approved", "risk.rejected"),
           StepSpec("charge", "payments", "payment.charged", "payment.failed", "payment.refunded", after=("screen",),
                    retriable=True),
           StepSpec("hold_flight", "flights", "flight.held", "flight.unavailable", "flight.released",
                    after=("charge",)),
           StepSpec("hold_hotel", "hotels", "hotel.held", "hotel.unavailable", "hotel.released", after=("charge",))),
)
SHAPES = {
    "checkout": [
        "orders.created payments.completed inventory.reserved shipping.scheduled orders.completed",
        "orders.created payments.completed inventory.failed payments.refunded orders.cancelled",
        "orders.created payments.completed payments.completed inventory.reserved shipping.scheduled orders.completed",
        "orders.created payments.completed",  # stuck
        "orders.created payments.completed inventory.failed orders.cancelled",  # a charge never refunded
        "orders.created payments.refunded orders.cancelled",  # a refund without its charge
        "orders.created orders.completed orders.cancelled",  # both outcomes
        "payments.completed orders.completed",  # no start, success before the steps
    ],
    "booking": [
        "trip.requested risk.approved payment.charged flight.held hotel.held trip.confirmed",
        "trip.requested risk.approved payment.failed payment.charged flight.held hotel.held trip.confirmed",
        "trip.requested risk.rejected trip.rejected",
        "trip.requested risk.approved payment.charged flight.unavailable payment.refunded hotel.held",
        "trip.requested risk.approved payment.charged flight.held trip.confirmed hotel.held",
        "trip.requested flight.held",  # before its charge, and stuck
        "trip.requested risk.approved payment.charged flight.held flight.held hotel.held trip.confirmed",
        "trip.requested risk.rejected trip.rejected trip.confirmed",  # both outcomes
    ],
}


def synthetic(spec: SagaSpec, n_sagas: int, seed: int) -> list[dict[str, Any]]:
    """Interleaved sagas of `spec` with violations, wire duplicates (by event id, Nats-Msg-Id and stream
    sequence), unkeyed and non-JSON-object payloads, start requests (some never started) and faults."""
    rng = random.Random(seed)
    nested = spec.key.startswith("data.")
    shapes = [s.split() for s in SHAPES[spec.name]]
    live = [(f"k{i}", rng.choice(shapes), 0) for i in range(n_sagas)]
    out: list[dict[str, Any]] = []
    t = 0.0
    seq = 0
    faults: list[str] = []

    def message(subject: str, key: str | None, eid: str | None, headers: dict[str, str] | None = None,
                data: Any = "auto") -> None:
        nonlocal seq
        seq += 1
        if data == "auto":
            if nested:
                data = {"specversion": "1.0", "type": subject, "data": {} if key is None else {"trip_id": key}}
                if eid is not None:
                    data["id"] = eid
            else:
                data = {} if key is None else {"order_id": key}
                if eid is not None:
                    data["event_id"] = eid
        out.append({"kind": "message", "t": round(t, 6), "subject": subject, "stream": "S", "stream_seq": seq,
                    "producer": subject.split(".")[0], "headers": headers or {}, "data": data, "size": 64})

    while live:
        t += rng.uniform(0.0001, 0.002)
        i = rng.randrange(len(live))
        key, shape, pos = live[i]
        subject = shape[pos]
        how = rng.random()
        if how < 0.04:  # a wire duplicate: the same event id twice
            message(subject, key, f"{key}-{pos}")
            message(subject, key, f"{key}-{pos}")
        elif how < 0.06:  # no event id: the Nats-Msg-Id header names it, twice
            message(subject, key, None, {"Nats-Msg-Id": f"m-{key}-{pos}"})
            message(subject, key, None, {"Nats-Msg-Id": f"m-{key}-{pos}"})
        elif how < 0.07:  # neither: the stream sequence is its identity (once)
            message(subject, key, None)
        else:
            message(subject, key, f"{key}-{pos}")
        if pos == 0 and rng.random() < 0.5:
            out.append({"kind": "operation", "t": round(t, 6), "op": "start", "saga": spec.name, "key": key,
                        "outcome": rng.choice(["ok", "ok", "ok", "fail", "unknown"]), "completed": round(t, 6)})
        if pos + 1 == len(shape):
            live[i] = live[-1]
            live.pop()
        else:
            live[i] = (key, shape, pos + 1)
        r = rng.random()
        if r < 0.01:
            message(subject, None, "x")  # no key
        elif r < 0.015:
            message(subject, None, None, data=[1, 2])  # a payload that is not an object
        elif r < 0.02:
            message("audit.logged", None, None, data={"order_id": key})  # no saga's subject
        elif r < 0.025:  # accepted, never started
            out.append({"kind": "operation", "t": round(t, 6), "op": "start", "saga": spec.name,
                        "key": f"lost{seq}", "outcome": "ok", "completed": round(t, 6)})
        elif r < 0.04:
            if faults and rng.random() < 0.5:
                out.append({"kind": "fault_end", "t": round(t, 6), "fault_id": faults.pop(0)})
            else:
                faults.append(f"f{seq}")
                out.append({"kind": "fault_start", "t": round(t, 6), "fault": {
                    "id": f"f{seq}", "kind": "latency", "target": "payment", "start": t, "duration": 1.0}})
    return out


def written(records: list[dict[str, Any]], directory: Path) -> History:
    """The records in events.jsonl, written by the engine's writer (each gets its seq)."""
    h = History(directory / "events.jsonl", t0=0.0)
    for rec in records:
        h.write(rec)
    h.close()
    return h


def system(spec: SagaSpec, root: Path) -> SystemSpec:
    return SystemSpec(path=root / "sagaproof.toml", root=root, nats=NatsSpec(), services={}, sagas={spec.name: spec},
                      workload=WorkloadSpec(), invariants=(), invariant_timeout=1.0, chaos=ChaosSpec())


@pytest.mark.parametrize("shard_messages", [50, 10_000])
@pytest.mark.parametrize(("spec", "quiescent"), [(CHECKOUT, None), (TRIPS, None), (CHECKOUT, 3.0)],
                         ids=["flat-key", "nested-key", "quiescent"])
def test_the_engine_path_judges_exactly_as_the_checker_in_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 spec: SagaSpec, quiescent: float | None,
                                                                 shard_messages: int):
    records = synthetic(spec, 400, seed=len(spec.name) + shard_messages)
    h = written(records, tmp_path)
    healed, end = 1.0, h.max_t + (100.0 if quiescent is None else 5.0)
    monkeypatch.setattr(judging_mod, "SHARD_MESSAGES", shard_messages)
    ctx = CheckContext(system(spec, tmp_path), h.reader(), Window(), healed, end,
                       {"messages": h.messages, "scratch": tmp_path, "quiescent_at": quiescent})
    list(saga_checks(ctx))  # what `sagaproof run` runs
    engine = ctx.facts["saga_result"]
    memory = check_history(list(HistoryReader(tmp_path / "events.jsonl")), {spec.name: spec}, healed_at=healed,
                           end_at=end, quiescent_at=quiescent)
    checks_mod.explain_unfinished(memory, h.reader(), {spec.name: spec}, healed)  # as saga_checks does
    assert engine.sagas_checked > 300 and engine.violations and engine.duplicates_ignored and engine.unattributed
    found = {v.check for v in engine.violations}
    assert len(found) >= 5 and {"no_double_effect", "step_order", "termination", "no_lost_request"} <= found, found
    assert engine.to_dict() == memory.to_dict()
    assert not list(tmp_path.glob("sagaproof-shards-*")), "the scratch file is removed"


def test_a_window_of_keys_on_the_sharded_path_judges_as_the_whole_history(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch):
    records = synthetic(CHECKOUT, 300, seed=3)
    h = written(records, tmp_path)
    keys = frozenset({f"k{i}" for i in range(0, 300, 7)})
    monkeypatch.setattr(judging_mod, "SHARD_MESSAGES", 40)
    sharded = saga_result(h.reader(), {"checkout": CHECKOUT}, Window(keys=keys), healed_at=0.0, end_at=1e3,
                          n_messages=h.messages, scratch=tmp_path)
    whole = check_history(list(h.reader()), {"checkout": CHECKOUT}, healed_at=0.0, end_at=1e3)
    assert sharded.sagas_checked == len(keys)
    assert sorted((v.check, v.key) for v in sharded.violations) == sorted(
        (v.check, v.key) for v in whole.violations if v.key in keys)


# A second saga on the same key that shares the checkout's subjects (its start is the charge): each of those
# messages belongs to both sagas, so the pass keeps one row per saga, and the verdict names instances saga/key.
REFUND = SagaSpec(name="refund", key="order_id", start="payments.completed", success=("payments.refunded",),
                  abort=("orders.completed",), deadline=30.0,
                  steps=(StepSpec("release", "inventory", "inventory.released", "inventory.failed"),))


@pytest.mark.parametrize("shard_messages", [50, 10_000])
def test_two_sagas_sharing_subjects_judge_alike_on_both_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              shard_messages: int):
    records = synthetic(CHECKOUT, 300, seed=11)
    h = written(records, tmp_path)
    sagas = {"checkout": CHECKOUT, "refund": REFUND}
    monkeypatch.setattr(judging_mod, "SHARD_MESSAGES", shard_messages)
    spec = SystemSpec(path=tmp_path / "sagaproof.toml", root=tmp_path, nats=NatsSpec(), services={}, sagas=sagas,
                      workload=WorkloadSpec(), invariants=(), invariant_timeout=1.0, chaos=ChaosSpec())
    ctx = CheckContext(spec, h.reader(), Window(), 1.0, h.max_t + 100.0,
                       {"messages": h.messages, "scratch": tmp_path})
    list(saga_checks(ctx))
    engine = ctx.facts["saga_result"]
    memory = check_history(list(HistoryReader(tmp_path / "events.jsonl")), sagas, healed_at=1.0,
                           end_at=h.max_t + 100.0)
    checks_mod.explain_unfinished(memory, h.reader(), sagas, 1.0)
    assert {v.saga for v in engine.violations} == {"checkout", "refund"}
    assert any(k.startswith("refund/") for k in engine.convergence)
    assert engine.messages_in_sagas > h.messages  # messages of both sagas counted once per saga
    assert engine.to_dict() == memory.to_dict()
