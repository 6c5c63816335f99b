"""The targeted phase's plan and coverage matrix (pure functions): the plan is the seed's and the consumers' alone,
budgeted windows come once per service, and every cell of the matrix is exercised or says why not."""

from __future__ import annotations

from sagaproof.harness.session.targeted import PER_SERVICE, WINDOWS, coverage, plan_windows

CONSUMERS = {
    "payment": [{"stream": "SHOP", "consumer": "payment", "ack_policy": "explicit",
                 "filter_subjects": ["orders.created", "inventory.failed"]}],
    "order": [{"stream": "SHOP", "consumer": "order", "ack_policy": "none", "filter_subjects": ["payments.failed"]}],
    "audit": [],
}


def test_plan_is_a_function_of_the_seed_and_the_consumers_and_budgets_the_costly_windows() -> None:
    plan = plan_windows(7, CONSUMERS)
    assert plan == plan_windows(7, CONSUMERS)
    assert plan != plan_windows(8, CONSUMERS)
    assert {w["service"] for w in plan} == {"payment"}, "no windows for a consumer that acknowledges nothing"
    per_subject = [(w["subject"], w["window"]) for w in plan if w["subject"]]
    assert sorted(per_subject) == sorted((s, k) for s in ("orders.created", "inventory.failed")
                                         for k in ("redeliver", "duplicate"))
    budgeted = [w for w in plan if not w["subject"] and w["window"] != "broker_restart"]
    assert [w["window"] for w in budgeted] == list(PER_SERVICE)  # once per service, any input subject
    assert [w["nth"] for w in budgeted] == sorted(w["nth"] for w in budgeted)
    assert [w["service"] for w in plan if w["window"] == "broker_restart"] == ["payment"]  # once per run
    assert len({w["id"] for w in plan}) == len(plan)


def test_coverage_matrix_has_every_cell_exercised_or_why_not() -> None:
    plan = plan_windows(1, CONSUMERS)
    records = [dict(w) for w in plan]
    redeliver = next(r for r in records if r["window"] == "redeliver" and r["subject"] == "orders.created")
    redeliver.update(exercised=True, fault_id=redeliver["id"], key="o-1", redelivered_at=3.0)
    crash = next(r for r in records if r["window"] == "crash_after_ack")
    crash.update(exercised=True, fault_id=crash["id"], key="o-2", landed_on="inventory.failed", stream_seq="9")
    cov = coverage(records, CONSUMERS, ["payment", "order", "audit"], {"o-2": ["termination"]})
    assert cov["total"] == 3 * len(WINDOWS) and cov["exercised"] == 2
    assert cov["summary"] == f"fault coverage: 2 of {3 * len(WINDOWS)}"
    cells = {(c["service"], c["subject"], c["window"]): c for c in cov["cells"]}
    assert cells[("payment", "orders.created", "redeliver")]["outcome"] == "saga held every check; redelivered"
    hit = cells[("payment", "inventory.failed", "crash_after_ack")]
    assert hit["saga_key"] == "o-2" and hit["outcome"].startswith("failed termination")
    assert "inventory.failed (stream seq 9) was acknowledged before the kill" in hit["outcome"]
    assert "budget" in cells[("payment", "orders.created", "crash_after_ack")]["reason"]
    assert "no message of that subject arrived" in cells[("payment", "orders.created", "duplicate")]["reason"]
    assert "ack policy none" in cells[("order", "payments.failed", "redeliver")]["reason"]
    assert all(c["exercised"] or c.get("reason") for c in cov["cells"]), "a cell not exercised says why"
    off = coverage([dict(w) for w in plan], CONSUMERS, ["payment"], {}, unavailable="no embedded proxy")
    assert off["exercised"] == 0 and {c["reason"] for c in off["cells"]} == {"no embedded proxy"}


def test_one_broker_restart_shows_each_services_reconnect_at_its_first_subject() -> None:
    consumers = {**CONSUMERS, "shipping": [{"stream": "SHOP", "consumer": "shipping", "ack_policy": "explicit",
                                            "filter_subjects": ["inventory.reserved"]}]}
    plan = plan_windows(3, consumers)
    assert len([w for w in plan if w["window"] == "broker_restart"]) == 1
    records = [dict(w) for w in plan]
    restart = next(r for r in records if r["window"] == "broker_restart")
    restart.update(exercised=True, fault_id=restart["id"], reconnected={"payment": 0.8, "shipping": None})
    cov = coverage(records, consumers, ["payment", "shipping", "order"], {})
    cells = {(c["service"], c["subject"], c["window"]): c for c in cov["cells"]}
    assert cells[("payment", "inventory.failed", "broker_restart")]["outcome"] == \
        "reconnected 0.8s after the broker was back"  # its first subject (sorted)
    assert "budget" in cells[("payment", "orders.created", "broker_restart")]["reason"]
    assert cells[("shipping", "inventory.reserved", "broker_restart")]["outcome"].startswith("did not reconnect")
    assert not cells[("order", "payments.failed", "broker_restart")]["exercised"]  # acknowledges nothing
    assert cov["exercised"] == 2
