"""The broker checks on a long history, a shard of stored messages at a time through a scratch file, report
exactly what they report holding every stored message, delivery and answer in memory (findings in the same
order, the same matrix, coverage and summaries), on a synthetic history with findings of every check, a work
queue and the replicas of a service."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from sagaproof.harness.checks import consumption
from sagaproof.harness.checks.consumption import Receive, check_broker
from sagaproof.harness.history import History, HistoryReader

from tests.harness.test_consumption import SAGA

STREAMS = {"SHOP": ["orders.>", "payments.>"], "JOBS": ["jobs.>"]}
RECEIVES = [Receive("payment", "orders.created"), Receive("order", "payments.completed"),
            Receive("shipping", "orders.completed"), Receive("audit", "orders.created"), Receive("worker", "jobs.run")]
WORKERS = ("worker-1", "worker-2")
SERVICES = ("payment", "order", "shipping", "audit", *WORKERS)
CONSUMER = {"orders.created": ("payment", "explicit"), "payments.completed": ("order", "all"),
            "orders.completed": ("shipping", "none")}


def synthetic(n: int, seed: int) -> list[dict[str, Any]]:  # noqa: C901, PLR0912 - not split yet (issue 25)
    """n stored messages and what the links saw of them: acks, naks and redeliveries, +TERM with and without
    an advisory, max_deliver reached, never delivered, delivered and never answered, duplicates on the wire,
    a stored message recorded twice, a core subscription on a stored subject; faults throughout."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    t = 0.0
    for svc in SERVICES:
        out.append({"kind": "nats_connect", "t": t, "service": svc, "conn": 1, "name": svc})
    for subject, (svc, policy) in CONSUMER.items():
        out.append({"kind": "js_consumer", "t": t, "service": svc, "conn": 1, "stream": "SHOP", "consumer": svc,
                    "durable": True, "filter_subjects": [subject], "ack_policy": policy, "ack_wait": 2.0,
                    "max_deliver": 3})
    out.append({"kind": "nats_sub", "t": t, "service": "audit", "conn": 1, "subject": "orders.*", "queue": None,
                "sid": "9"})
    rows: dict[str, tuple[list[Any], list[Any]]] = {svc: ([], []) for svc in SERVICES}
    faults: list[str] = []
    for seq in range(1, n + 1):
        t += rng.uniform(0.0005, 0.002)
        subject = rng.choice(list(CONSUMER))
        svc, _ = CONSUMER[subject]
        msg = {"kind": "message", "t": round(t, 6), "subject": subject, "stream": "SHOP", "stream_seq": seq,
               "producer": "order", "headers": {}, "data": {"order_id": f"o{seq // 3}", "event_id": f"e{seq}"},
               "size": 50}
        out.append(msg)
        if rng.random() < 0.01:
            out.append(dict(msg, t=round(t + 0.0001, 6)))  # recorded twice (a recorder replay)
        fate = rng.random()
        d_rows, a_rows = rows[svc]

        def deliver(k: int, dt: float, seq: int = seq, svc: str = svc, subject: str = subject,
                    d_rows: list[Any] = d_rows, t: float = t) -> None:
            d_rows.append([round(t + dt, 6), 1, subject, "2", "SHOP", svc, k, seq, seq, 0])

        def answer(how: str, k: int, dt: float, reason: Any = None, seq: int = seq, svc: str = svc,
                   a_rows: list[Any] = a_rows, t: float = t) -> None:
            a_rows.append([round(t + dt, 6), 1, how, "SHOP", svc, k, seq, reason])

        if fate < 0.80:
            deliver(1, 0.001)
            if rng.random() < 0.02:
                deliver(1, 0.001)  # the same delivery twice on the wire
            if not (subject == "payments.completed" and rng.random() < 0.3):  # AckAll: a later ack covers it
                answer("ack", 1, 0.002)
        elif fate < 0.86:
            deliver(1, 0.001)
            answer("nak", 1, 0.002)
            deliver(2, 0.003)
            answer("ack", 2, 0.004)
        elif fate < 0.89:
            deliver(1, 0.001)
            answer("term", 1, 0.002, reason="bad payload" if rng.random() < 0.5 else None)
            if rng.random() < 0.5:
                out.append({"kind": "advisory", "t": round(t + 0.003, 6), "type": "terminated", "stream": "SHOP",
                            "consumer": svc, "stream_seq": seq, "deliveries": 1, "reason": "bad payload"})
        elif fate < 0.92:
            for k in (1, 2, 3):
                deliver(k, 0.001 * k)
            out.append({"kind": "advisory", "t": round(t + 0.004, 6), "type": "max_deliveries", "stream": "SHOP",
                        "consumer": svc, "stream_seq": seq, "deliveries": 3})
        elif fate < 0.96:
            deliver(1, 0.001)  # never answered
        # else: never delivered
        if len(d_rows) + len(a_rows) >= 40 or seq == n:
            for s, (ds, ans) in rows.items():
                if ds or ans:
                    if rng.random() < 0.5:
                        out.append({"kind": "wire", "t": round(t + 0.005, 6), "service": s, "deliveries": list(ds),
                                    "answers": list(ans)})
                    else:  # as single records
                        for r in ds:
                            out.append({"kind": "delivery", "t": r[0], "service": s, "conn": 1, "sid": "2",
                                        "subject": r[2], "stream": "SHOP", "consumer": s, "delivered": r[6],
                                        "stream_seq": r[7], "consumer_seq": r[8], "pending": 0})
                        for r in ans:
                            out.append({"kind": "ack", "t": r[0], "service": s, "conn": 1, "how": r[2],
                                        "stream": "SHOP", "consumer": s, "delivered": r[5], "stream_seq": r[6],
                                        "reason": r[7]})
                    ds.clear()
                    ans.clear()
        if rng.random() < 0.01:
            if faults and rng.random() < 0.5:
                out.append({"kind": "fault_end", "t": round(t, 6), "fault_id": faults.pop(0)})
            else:
                faults.append(f"f{seq}")
                out.append({"kind": "fault_start", "t": round(t, 6),
                            "fault": {"id": f"f{seq}", "kind": "kill", "target": rng.choice(SERVICES)}})
    out.append({"kind": "broker_snapshot", "t": round(t + 1, 6), "consumers": [], "connections": [],
                "links": {"audit": {"connections": 1, "core": {"orders.created": n // 3}}}})
    # A work queue read by two replicas of one service: the recorder sees no message of it, only the
    # deliveries, the acknowledgements and, at the end, what is left in the queue.
    for svc in WORKERS:
        out.append({"kind": "nats_connect", "t": 0.0, "service": svc, "conn": 1, "name": svc})
        out.append({"kind": "js_consumer", "t": 0.0, "service": svc, "conn": 1, "stream": "JOBS",
                    "consumer": "worker", "durable": True, "filter_subjects": ["jobs.run"],
                    "ack_policy": "explicit", "ack_wait": 2.0, "max_deliver": -1})
    leftovers = []
    for seq in range(1, n // 5 + 1):
        at = round(rng.uniform(0.0, t), 6)
        if rng.random() < 0.05:
            leftovers.append({"seq": seq, "subject": "jobs.run", "data": {"order_id": f"o{seq}"}})
            continue
        svc = rng.choice(WORKERS)
        out.append({"kind": "delivery", "t": at, "service": svc, "conn": 1, "sid": "3", "subject": "jobs.run",
                    "stream": "JOBS", "consumer": "worker", "delivered": 1, "stream_seq": seq, "consumer_seq": seq,
                    "pending": 0})
        if rng.random() < 0.95:
            out.append({"kind": "ack", "t": round(at + 0.001, 6), "service": svc, "conn": 1, "how": "ack",
                        "stream": "JOBS", "consumer": "worker", "delivered": 1, "stream_seq": seq})
    out.append({"kind": "stream_state", "t": round(t + 1, 6), "stream": "JOBS", "retention": "workqueue",
                "first_seq": 1, "last_seq": n // 5, "messages": len(leftovers), "leftovers": leftovers})
    out.sort(key=lambda r: r["t"])
    return out


@pytest.mark.parametrize("final", [True, False])
def test_sharded_broker_checks_report_exactly_what_the_whole_history_in_memory_does(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, final: bool):
    records = synthetic(1_500, seed=7)
    h = History(tmp_path / "events.jsonl", t0=0.0)
    for rec in records:
        h.write(dict(rec))
    h.close()
    kwargs: dict[str, Any] = {"receives": RECEIVES, "streams": STREAMS, "services": SERVICES,
                              "sagas": {"checkout": SAGA}, "final": final,
                              "groups": {w: "worker" for w in WORKERS}}
    whole = check_broker(list(HistoryReader(h.path)), **kwargs)
    monkeypatch.setattr(consumption, "SHARD_MESSAGES", 97)
    sharded = check_broker(HistoryReader(h.path), scratch=tmp_path, messages=h.messages, **kwargs)
    assert all(whole.findings[c] for c in consumption.BROKER_CHECKS), whole.summaries
    assert whole.not_taken and any(r["redelivered"] and r["terminated"] for r in whole.matrix)
    queue = {f.service for f in whole.findings["consumption"] if f.stream == "JOBS"}
    assert queue == ({"worker"} if final else set()), "the queue's messages never acknowledged, by the unit"
    assert sharded.to_dict() == whole.to_dict()
    assert [f.message() for f in sharded.findings["consumption"]] == [
        f.message() for f in whole.findings["consumption"]]
    assert list(sharded.not_taken.items()) == list(whole.not_taken.items())
    assert not list(tmp_path.glob("sagaproof-shards-*")), "the scratch file is removed"
