"""Unit tests of the saga checker on hand-built histories: each check fails on a history that breaks it
and passes on a clean one; violation order; faults-active attribution; the message text."""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Any

import pytest
from sagaproof.harness.checks.checker import CHECKS, check_history
from sagaproof.harness.checks.results import CheckOutcome, RunResult, saga_check_outcomes
from sagaproof.harness.config import SagaSpec, StepSpec

CHECKOUT = SagaSpec(
    name="checkout", key="order_id", start="orders.created", success=("orders.completed",),
    abort=("orders.cancelled",), deadline=30.0,
    steps=(StepSpec("charge", "payment", "payments.completed", "payments.failed", "payments.refunded"),
           StepSpec("reserve", "inventory", "inventory.reserved", "inventory.failed", "inventory.released"),
           StepSpec("ship", "shipping", "shipping.scheduled", "shipping.failed")),
)
SAGAS = {"checkout": CHECKOUT}
PRODUCER = {"orders": "order", "payments": "payment", "inventory": "inventory", "shipping": "shipping"}


class History:
    """Builds events.jsonl records with increasing seq and unique event ids."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self._seq = itertools.count(1)
        self._eid = itertools.count(1)

    def msg(self, t: float, subject: str, key: str = "o1", *, event_id: str | None = None,
            producer: str | None = "auto", **extra: Any) -> History:
        n = next(self._seq)
        prod = PRODUCER[subject.split(".")[0]] if producer == "auto" else producer
        data = {"order_id": key, "event_id": event_id or f"e{next(self._eid)}", **extra}
        self.records.append({"kind": "message", "seq": n, "t": t, "subject": subject, "stream": "SHOP",
                             "stream_seq": n, "producer": prod, "headers": {}, "data": data, "size": 50})
        return self

    def fault(self, t: float, fid: str, kind: str, target: str) -> History:
        self.records.append({"kind": "fault_start", "t": t, "fault": {"id": fid, "kind": kind, "target": target,
                                                                       "start": t, "duration": 1.0, "params": {}}})
        return self

    def heal(self, t: float, fid: str) -> History:
        self.records.append({"kind": "fault_end", "t": t, "fault_id": fid})
        return self

    def happy(self, key: str, t0: float) -> History:
        for i, s in enumerate(["orders.created", "payments.completed", "inventory.reserved", "shipping.scheduled",
                               "orders.completed"]):
            self.msg(t0 + 0.01 * i, s, key)
        return self

    def aborted(self, key: str, t0: float) -> History:
        for i, s in enumerate(["orders.created", "payments.completed", "inventory.failed", "payments.refunded",
                               "orders.cancelled"]):
            self.msg(t0 + 0.01 * i, s, key)
        return self


def check(h: History, *, healed_at: float = 0.0, end_at: float = 100.0, sagas: Any = None):
    return check_history(h.records, sagas or SAGAS, healed_at=healed_at, end_at=end_at)


def checks_failed(result) -> set[str]:
    return {v.check for v in result.violations}


def test_clean_history_passes_every_check_and_measures_convergence() -> None:
    h = History().happy("o1", 1.0).aborted("o2", 2.0)
    h.msg(3.0, "orders.created", "o3").msg(3.1, "payments.failed", "o3").msg(3.2, "orders.cancelled", "o3")
    r = check(h)
    assert r.ok, [v.message() for v in r.violations]
    assert r.sagas_checked == 3
    assert r.convergence == {"o1": pytest.approx(0.04), "o2": pytest.approx(0.04), "o3": pytest.approx(0.2)}
    assert r.convergence_after_heal == pytest.approx(3.2)
    assert r.outcomes == {"success": 1, "abort": 2, "none": 0, "both": 0}
    for c in CHECKS:
        if c != "no_lost_request":  # counts start requests, and this history has none
            assert r.counts[c]["passed"] == 3 and r.counts[c]["failed"] == 0


def test_termination_fails_without_terminal_event_after_deadline() -> None:
    h = History().happy("o1", 1.0).msg(2.0, "orders.created", "o2").msg(2.1, "payments.completed", "o2")
    r = check(h, healed_at=10.0, end_at=40.0)  # deadline 30s after the heal: 40.0
    assert [(v.check, v.key) for v in r.violations] == [("termination", "o2")]
    assert "no terminal event" in r.violations[0].detail
    assert r.counts["termination"] == {"passed": 1, "failed": 1, "pending": 0, "late": 0}


def test_termination_pending_before_deadline_is_not_a_violation() -> None:
    h = History().msg(2.0, "orders.created", "o2")
    r = check(h, healed_at=10.0, end_at=39.9)
    assert r.ok
    assert r.pending == [("checkout", "o2")]
    assert r.counts["termination"]["pending"] == 1


def test_termination_deadline_counts_from_start_when_saga_starts_after_heal() -> None:
    h = History().msg(50.0, "orders.created", "o9")
    assert check(h, healed_at=10.0, end_at=79.0).ok  # deadline is 80.0, not 40.0
    assert checks_failed(check(h, healed_at=10.0, end_at=80.0)) == {"termination"}


def test_a_late_saga_is_reported_and_fails_only_under_a_latency_objective() -> None:
    late = History().msg(1.0, "orders.created").msg(45.0, "orders.cancelled")  # deadline t=40 (heal 10 + 30)
    r = check(late, healed_at=10.0, end_at=100.0)
    assert r.ok and r.late == [("checkout", "o1", 5.0)]
    assert r.counts["termination"]["late"] == 1 and "1 ended late" in r.summary("termination")
    strict = {"checkout": replace(CHECKOUT, latency_objective=20.0)}
    r = check_history(late.records, strict, healed_at=10.0, end_at=100.0)
    assert checks_failed(r) == {"termination"}
    assert "late: the terminal event came at t=45.000s" in r.violations[0].detail
    assert "latency objective 20s" in r.violations[0].expected
    assert check_history(late.records, {"checkout": replace(CHECKOUT, latency_objective=40.0)}, healed_at=10.0,
                         end_at=100.0).ok


def test_quiescence_makes_a_missing_outcome_or_compensation_final_before_the_deadline() -> None:
    stuck = History().msg(1.0, "orders.created", "o1").msg(1.1, "payments.completed", "o1")
    assert check(stuck, healed_at=1.0, end_at=5.0).ok  # deadline t=31: still pending
    r = check_history(stuck.records, SAGAS, healed_at=1.0, end_at=5.0, quiescent_at=3.0)
    assert checks_failed(r) == {"termination"} and r.violations[0].detail.startswith("stuck:")
    assert "quiescent from t=3.000s" in r.violations[0].detail and r.quiescent_at == 3.0
    aborted = History().msg(1.0, "orders.created", "o2").msg(1.1, "payments.completed", "o2") \
        .msg(1.2, "inventory.failed", "o2").msg(1.3, "orders.cancelled", "o2")
    assert check(aborted, healed_at=1.0, end_at=5.0).ok  # the refund may still come
    r = check_history(aborted.records, SAGAS, healed_at=1.0, end_at=5.0, quiescent_at=3.0)
    assert checks_failed(r) == {"compensation_completeness"} and "will not come" in r.violations[0].detail


def test_termination_fails_on_two_terminal_events() -> None:
    twice = History().happy("o1", 1.0).msg(2.0, "orders.completed", "o1")
    r = check(twice)
    assert checks_failed(r) == {"termination"} and "2 distinct terminal events" in r.violations[0].detail


def test_wire_duplicate_of_same_event_is_not_a_second_effect() -> None:
    h = History().happy("o1", 1.0)
    dup = dict(h.records[1])  # payments.completed, same event_id, redelivered
    dup["t"], dup["seq"] = 1.5, 99
    h.records.append(dup)
    h.records.append(dict(h.records[4], t=1.6, seq=100))  # orders.completed again, same event_id
    r = check(h)
    assert r.ok, [v.message() for v in r.violations]
    assert r.duplicates_ignored == 2


def test_contradiction_both_outcomes() -> None:
    h = History().happy("o1", 1.0).msg(2.0, "orders.cancelled", "o1")
    r = check(h)
    assert "no_contradiction" in checks_failed(r)
    assert "termination" not in checks_failed(r)  # two outcomes is a contradiction, not a double terminal
    assert r.outcomes["both"] == 1


def test_contradiction_success_outcome_after_abort() -> None:
    h = History().msg(1.0, "orders.created").msg(1.1, "payments.failed").msg(1.2, "orders.cancelled")
    h.msg(1.3, "orders.completed")
    r = check(h)
    v = r.by_check("no_contradiction")[0]
    assert "ended with success (orders.completed) after it had aborted (orders.cancelled)" in v.detail
    assert 3 in v.marks


def test_step_success_after_abort_is_owed_a_compensation_not_a_contradiction() -> None:
    # The step was in flight when the saga aborted: its late success is no contradiction, but it must be undone.
    h = History().msg(1.0, "orders.created").msg(1.1, "orders.cancelled").msg(1.2, "payments.completed")
    r = check(h)
    assert checks_failed(r) == {"compensation_completeness"}
    assert r.violations[0].marks == [2]
    h.msg(1.3, "payments.refunded")
    assert check(h).ok


def test_contradiction_step_success_after_its_failure() -> None:
    h = History().msg(1.0, "orders.created").msg(1.1, "payments.failed").msg(1.2, "payments.completed")
    r = check(h)
    assert "no_contradiction" in checks_failed(r)
    assert "after it had failed" in r.by_check("no_contradiction")[0].detail


def test_double_effect_two_successes_without_compensation() -> None:
    h = History().happy("o1", 1.0)
    h.msg(1.5, "payments.completed", "o1")  # a new event id: the consumer charged again
    r = check(h)
    assert checks_failed(r) == {"no_double_effect"}
    v = r.violations[0]
    assert "step 'charge' succeeded twice" in v.detail and v.marks == [5]


def test_double_effect_passes_when_compensated_between() -> None:
    h = History().msg(1.0, "orders.created").msg(1.1, "payments.completed").msg(1.2, "payments.refunded")
    h.msg(1.3, "payments.completed").msg(1.4, "inventory.reserved").msg(1.5, "shipping.scheduled")
    h.msg(1.6, "orders.completed")
    assert check(h).ok


def test_double_effect_saga_started_twice() -> None:
    h = History().happy("o1", 1.0).msg(1.5, "orders.created", "o1")
    assert checks_failed(check(h)) == {"no_double_effect"}


def test_missing_compensation_on_abort() -> None:
    h = History().msg(1.0, "orders.created").msg(1.1, "payments.completed").msg(1.2, "inventory.failed")
    h.msg(1.3, "orders.cancelled")
    r = check(h, end_at=100.0)
    assert checks_failed(r) == {"compensation_completeness"}
    v = r.violations[0]
    assert "payments.refunded not seen" in v.detail and v.marks == [1]


def test_missing_compensation_is_pending_before_deadline() -> None:
    h = History().msg(1.0, "orders.created").msg(1.1, "payments.completed").msg(1.2, "inventory.failed")
    h.msg(1.3, "orders.cancelled")
    assert check(h, healed_at=0.0, end_at=20.0).ok


def test_step_without_compensation_owes_nothing_when_the_saga_aborts_later() -> None:
    h = History().msg(1.0, "orders.created").msg(1.1, "payments.completed").msg(1.2, "inventory.reserved")
    h.msg(1.3, "shipping.scheduled").msg(1.4, "payments.refunded").msg(1.5, "inventory.released")
    h.msg(1.6, "orders.cancelled")
    assert check(h).ok  # 'ship' declares no compensation: there is nothing of it to undo


def test_compensated_twice() -> None:
    h = History().aborted("o1", 1.0).msg(2.0, "payments.refunded", "o1")
    r = check(h)
    assert checks_failed(r) == {"compensation_completeness"}
    assert "compensated more than once" in r.violations[0].detail


def test_compensation_without_forward_step() -> None:
    h = History().msg(1.0, "orders.created").msg(1.1, "payments.failed").msg(1.2, "payments.refunded")
    h.msg(1.3, "orders.cancelled")
    r = check(h)
    assert checks_failed(r) == {"compensation_order"}
    assert "never happened" in r.violations[0].detail


def test_compensation_before_forward_step() -> None:
    h = History().msg(1.0, "orders.created").msg(1.1, "inventory.failed").msg(1.2, "payments.refunded")
    h.msg(1.3, "payments.completed").msg(1.4, "orders.cancelled")
    r = check(h)
    assert "compensation_order" in checks_failed(r)
    assert "before its forward step" in r.by_check("compensation_order")[0].detail


def test_violations_ordered_most_important_first() -> None:
    h = History()
    h.msg(1.0, "orders.created", "a")  # termination (never ends)
    h.msg(2.0, "orders.created", "b").msg(2.1, "payments.refunded", "b").msg(2.2, "orders.cancelled", "b")  # order
    h.msg(3.0, "orders.created", "c").msg(3.1, "payments.completed", "c").msg(3.2, "orders.cancelled", "c")  # missing
    h.happy("d", 4.0).msg(4.5, "payments.completed", "d")  # double effect
    h.msg(5.0, "orders.created", "e").msg(5.1, "payments.failed", "e").msg(5.2, "orders.cancelled", "e")
    h.msg(5.3, "orders.completed", "e")  # both outcomes
    h.msg(6.0, "orders.created", "f").msg(6.1, "payments.completed", "f").msg(6.2, "inventory.reserved", "f")
    h.msg(6.3, "orders.completed", "f").msg(6.4, "shipping.scheduled", "f")  # success before 'ship' succeeded
    r = check(h, healed_at=0.0, end_at=100.0)
    assert [(v.check, v.key) for v in r.violations] == [
        ("no_contradiction", "e"), ("no_double_effect", "d"), ("step_order", "f"), ("compensation_completeness", "c"),
        ("compensation_order", "b"), ("termination", "a")]
    assert r.violated_sagas == [("checkout", k) for k in "edfcba"]


def test_faults_active_attributed_per_event() -> None:
    h = History().msg(1.0, "orders.created").fault(1.05, "f1", "partition", "inventory")
    h.msg(1.1, "payments.completed").fault(1.15, "f2", "latency", "payment").msg(1.2, "inventory.failed")
    h.heal(1.25, "f1").msg(1.3, "orders.cancelled").heal(1.35, "f2")
    r = check(h)
    v = r.by_check("compensation_completeness")[0]
    assert v.faults_active == [[], ["f1"], ["f1", "f2"], ["f2"]]
    assert set(v.faults) == {"f1", "f2"} and v.faults["f1"]["kind"] == "partition"


def test_message_reads_on_its_own() -> None:
    h = History().msg(1.0, "orders.created").fault(1.05, "f3", "partition", "inventory")
    h.msg(1.1, "payments.completed").msg(1.2, "inventory.failed").msg(1.3, "orders.cancelled")
    r = check(h)
    r.with_repro("sagaproof run examples/shop --seed 7")
    text = r.violations[0].message()
    assert "saga 'checkout' key o1" in text
    assert "expected: when the saga aborts, every step that succeeded and declares a compensation is compensated " \
           "exactly once" in text
    lines = text.splitlines()
    assert any(ln.strip().startswith("t=1.000s  order") and "orders.created" in ln for ln in lines)
    assert any(">> t=1.100s  payment" in ln and "faults: f3 partition inventory" in ln for ln in lines)
    assert lines[-1] == "  reproduce: sagaproof run examples/shop --seed 7"


def test_unkeyed_and_unrelated_messages_are_counted_not_checked() -> None:
    h = History().happy("o1", 1.0)
    h.records.append({"kind": "message", "t": 2.0, "subject": "payments.completed", "data": {"x": 1}})
    h.records.append({"kind": "message", "t": 2.0, "subject": "audit.log", "data": None})
    h.records.append({"kind": "phase", "t": 2.1, "phase": "healed"})
    r = check(h)
    assert r.ok and r.sagas_checked == 1 and r.unattributed == 1 and r.messages_seen == 7


def test_two_sagas_keyed_by_saga_and_key() -> None:
    refund = SagaSpec("refund", "order_id", "refunds.requested", ("refunds.done",), (), ())
    h = History().happy("o1", 1.0)
    h.msg(2.0, "refunds.requested", "o1", producer="order")
    r = check(h, sagas={"checkout": CHECKOUT, "refund": refund}, end_at=100.0)
    assert set(r.convergence) == {"checkout/o1"}
    assert [(v.saga, v.key, v.check) for v in r.violations] == [("refund", "o1", "termination")]


def test_run_result_to_dict_adds_saga_checks_and_repro() -> None:
    h = History().happy("o1", 1.0).msg(1.5, "payments.completed", "o1")
    cr = check(h)
    rr = RunResult(seed=7, system_path="examples/shop", command="sagaproof run examples/shop --seed 7",
                   verdict="fail", exit_code=1, check_result=cr,
                   checks=[CheckOutcome("contracts", True, "no violations")])
    d = rr.to_dict()
    assert [c["name"] for c in d["checks"]] == ["contracts", *CHECKS]
    assert d["check_result"]["violations"][0]["repro"] == rr.command
    outcomes = {o.name: o for o in saga_check_outcomes(cr)}
    assert not outcomes["no_double_effect"].ok and outcomes["termination"].ok


def test_accepts_a_streamed_history() -> None:
    h = History().happy("o1", 1.0).msg(2.0, "orders.created", "o2")
    r = check_history(iter(h.records), SAGAS, healed_at=0.0, end_at=100.0)
    assert r.sagas_checked == 2 and [v.key for v in r.violations] == ["o2"]
    assert r.convergence_stats()["count"] == 1


def test_judge_as_if_due_separates_what_is_still_owed():
    from sagaproof.harness.checks.checker import judge_as_if_due

    spec = SagaSpec("checkout", "order_id", "orders.created", ("orders.completed",), ("orders.cancelled",),
                    (StepSpec("charge", "payment", "payments.completed", "payments.failed", "payments.refunded"),),
                    deadline=30.0)

    def msg(t: float, subject: str, key: str) -> dict:
        return {"kind": "message", "t": t, "subject": subject, "data": {"order_id": key, "event_id": f"{key}{t}"}}

    open_saga = [msg(0.1, "orders.created", "a"), msg(0.2, "payments.completed", "a")]
    _, owed = judge_as_if_due(open_saga, {"checkout": spec}, healed_at=0.0)
    assert [v.check for v in owed] == ["termination"]
    unrefunded = open_saga + [msg(0.3, "orders.cancelled", "a")]
    _, owed = judge_as_if_due(unrefunded, {"checkout": spec}, healed_at=0.0)
    assert [v.check for v in owed] == ["compensation_completeness"]
    done = unrefunded + [msg(0.4, "payments.refunded", "a")]
    result, owed = judge_as_if_due(done, {"checkout": spec}, healed_at=0.0)
    assert owed == [] and result.ok
