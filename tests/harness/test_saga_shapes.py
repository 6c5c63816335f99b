"""The saga shapes choreographies really have, over synthetic histories: for each shape a correct history
passes every check, and each kind of wrong one fails with the right check (and only where it should)."""

from __future__ import annotations

import itertools
from typing import Any

from sagaproof.harness.checks.checker import check_history, judge_as_if_due
from sagaproof.harness.config import SagaSpec, StepSpec


class H:
    """A history builder: ``H("order_id").m(1.0, "orders.created", "o1")``; times must increase."""

    def __init__(self, key: str = "order_id", *, nested: bool = False, id_field: str = "event_id") -> None:
        self.key, self.nested, self.id_field = key, nested, id_field
        self.records: list[dict[str, Any]] = []
        self._n = itertools.count(1)

    def m(self, t: float, subject: str, key: str = "k1", *, eid: str | None = None) -> H:
        n = next(self._n)
        body = {self.key: key}
        data = {self.id_field: eid or f"e{n}", "type": subject, "data": body} if self.nested else \
            {self.id_field: eid or f"e{n}", **body}
        self.records.append({"kind": "message", "seq": n, "t": t, "subject": subject, "stream": "S",
                             "stream_seq": n, "producer": subject.split(".")[0], "headers": {}, "data": data})
        return self

    def seq(self, t0: float, subjects: str, key: str = "k1") -> H:
        for i, s in enumerate(subjects.split()):
            self.m(t0 + 0.01 * i, s, key)
        return self

    def op(self, t: float, outcome: str, key: str | None, saga: str | None = None, done: float | None = None) -> H:
        self.records.append({"kind": "operation", "t": t, "op": len(self.records), "saga": saga, "key": key,
                             "invoked": t, "completed": done if done is not None else t + 0.01, "outcome": outcome,
                             "detail": "HTTP 201" if outcome == "ok" else "timed out"})
        return self


def run(h: H, *sagas: SagaSpec, end_at: float = 100.0, healed_at: float = 0.0):
    return check_history(h.records, {s.name: s for s in sagas}, healed_at=healed_at, end_at=end_at)


def failed(result) -> set[str]:
    return {v.check for v in result.violations}


def ok(result) -> bool:
    assert result.ok, "\n".join(v.message() for v in result.violations)
    return True


# ----------------------------------------------------------------------------- a step with nothing to undo

SCREENED = SagaSpec(
    "signup", "order_id", "signup.requested", ("signup.done",), ("signup.cancelled",), deadline=30.0,
    steps=(StepSpec("screen", "risk", "risk.approved", "risk.rejected"),  # a decision: nothing to undo
           StepSpec("notify", "mail", "mail.sent"),  # a notification: nothing to undo
           StepSpec("open", "accounts", "account.opened", "account.failed", "account.closed")))


def test_steps_without_compensation_owe_nothing_when_a_later_step_fails():
    h = H().seq(1.0, "signup.requested risk.approved mail.sent account.failed signup.cancelled")
    assert ok(run(h, SCREENED))


def test_only_a_step_that_declares_a_compensation_owes_one():
    h = H().seq(1.0, "signup.requested risk.approved account.opened mail.sent signup.cancelled")
    r = run(h, SCREENED)
    assert failed(r) == {"compensation_completeness"}
    assert "step 'open' succeeded (account.opened) but was never compensated" in r.violations[0].detail
    assert "screen" not in r.violations[0].detail and "notify" not in r.violations[0].detail


# ----------------------------------------------------------------------------- compensation = terminal abort

TRIP = SagaSpec(
    "trip", "trip_id", "trip.requested", ("trip.confirmed",), ("payment.refunded", "trip.rejected"), deadline=30.0,
    steps=(StepSpec("charge", "payments", "payment.charged", compensation="payment.refunded"),
           StepSpec("hold", "hotels", "hotel.held", "hotel.unavailable", "hotel.released")))


def test_a_compensation_that_is_also_the_terminal_event_counts_as_both():
    # The false alarm: compensated sagas reported as never compensated.
    h = H("trip_id").seq(1.0, "trip.requested payment.charged hotel.unavailable payment.refunded")
    r = run(h, TRIP)
    assert ok(r)
    assert r.outcomes["abort"] == 1 and r.convergence["k1"] == 0.03


def test_the_double_role_still_catches_a_missing_and_a_repeated_compensation():
    missing = H("trip_id").seq(1.0, "trip.requested payment.charged hotel.held hotel.released trip.rejected")
    r = run(missing, TRIP)
    assert failed(r) == {"compensation_completeness"} and "payment.refunded not seen" in r.violations[0].detail
    twice = H("trip_id").seq(1.0, "trip.requested payment.charged hotel.unavailable payment.refunded payment.refunded")
    r = run(twice, TRIP)
    assert failed(r) == {"compensation_completeness", "termination"}
    assert "compensated more than once" in r.by_check("compensation_completeness")[0].detail
    never = H("trip_id").seq(1.0, "trip.requested hotel.unavailable payment.refunded")
    assert failed(run(never, TRIP)) == {"compensation_order"}


def test_a_failure_that_is_also_the_terminal_event():
    spec = SagaSpec("pay", "order_id", "orders.created", ("orders.paid",), ("payments.declined",),
                    (StepSpec("charge", "payment", "payments.charged", "payments.declined", "payments.refunded"),))
    assert ok(run(H().seq(1.0, "orders.created payments.declined"), spec))
    assert failed(run(H().seq(1.0, "orders.created payments.declined payments.charged"), spec)) == {
        "no_contradiction", "compensation_completeness"}


# ----------------------------------------------------------------------------- cascades

CHAIN = [StepSpec("a", "sa", "a.done", "a.failed", "a.undone"), StepSpec("b", "sb", "b.done", "b.failed", "b.undone"),
         StepSpec("c", "sc", "c.done", "c.failed")]
CASCADE = SagaSpec("chain", "order_id", "go", ("all.done",), ("all.undone",), tuple(CHAIN),
                   compensation_order="reverse")
ANY_ORDER = SagaSpec("chain", "order_id", "go", ("all.done",), ("all.undone",), tuple(CHAIN))


def test_a_cascade_undoes_in_reverse_order_of_success():
    good = H().seq(1.0, "go a.done b.done c.failed b.undone a.undone all.undone")
    assert ok(run(good, CASCADE))
    wrong = H().seq(1.0, "go a.done b.done c.failed a.undone b.undone all.undone")
    r = run(wrong, CASCADE)
    assert failed(r) == {"compensation_order"}
    assert "step 'a' was undone (a.undone" in r.violations[0].detail and "reverse order" in r.violations[0].detail


def test_without_a_declared_cascade_independent_compensations_may_come_in_any_order():
    for order in ("b.undone a.undone", "a.undone b.undone"):
        assert ok(run(H().seq(1.0, f"go a.done b.done c.failed {order} all.undone"), ANY_ORDER))


def test_a_cascade_with_a_declared_graph_orders_only_what_depends():
    steps = (StepSpec("a", "sa", "a.done", "a.failed", "a.undone"),
             StepSpec("b", "sb", "b.done", "b.failed", "b.undone", after=("a",)),
             StepSpec("x", "sx", "x.done", "x.failed", "x.undone", after=("a",)),  # parallel with b
             StepSpec("c", "sc", "c.done", "c.failed", after=("b", "x")))
    spec = SagaSpec("chain", "order_id", "go", ("all.done",), ("all.undone",), steps, compensation_order="reverse")
    assert ok(run(H().seq(1.0, "go a.done x.done b.done c.failed x.undone b.undone a.undone all.undone"), spec))
    assert ok(run(H().seq(1.0, "go a.done x.done b.done c.failed b.undone x.undone a.undone all.undone"), spec))
    r = run(H().seq(1.0, "go a.done x.done b.done c.failed b.undone a.undone x.undone all.undone"), spec)
    assert failed(r) == {"compensation_order"} and "step 'a' was undone" in r.violations[0].detail


# ----------------------------------------------------------------------------- parallel steps

BOOKING = SagaSpec(
    "booking", "trip_id", "trip.requested", ("trip.confirmed",), ("payment.refunded",), deadline=10.0,
    steps=(StepSpec("charge", "payments", "payment.charged", compensation="payment.refunded"),
           StepSpec("flight", "flights", "flight.held", "flight.unavailable", "flight.released", after=("charge",)),
           StepSpec("hotel", "hotels", "hotel.held", "hotel.unavailable", "hotel.released", after=("charge",))))


def test_parallel_branches_in_either_order_then_fan_in():
    for branches in ("flight.held hotel.held", "hotel.held flight.held"):
        assert ok(run(H("trip_id").seq(1.0, f"trip.requested payment.charged {branches} trip.confirmed"), BOOKING))


def test_every_succeeded_branch_is_undone_including_one_that_succeeds_after_the_abort():
    early = "trip.requested payment.charged hotel.held flight.unavailable hotel.released payment.refunded"
    late = "trip.requested payment.charged flight.unavailable payment.refunded hotel.held hotel.released"
    for path in (early, late):
        assert ok(run(H("trip_id").seq(1.0, path), BOOKING))
    lost = H("trip_id").seq(1.0, "trip.requested payment.charged flight.unavailable payment.refunded hotel.held")
    r = run(lost, BOOKING)
    assert failed(r) == {"compensation_completeness"}
    assert "step 'hotel' succeeded (hotel.held) but was never compensated" in r.violations[0].detail
    assert r.violations[0].marks == [4]


def test_an_undone_branch_owes_nothing_more_and_a_pending_late_undo_is_not_yet_a_failure():
    late = H("trip_id").seq(1.0, "trip.requested payment.charged flight.unavailable payment.refunded hotel.held")
    assert run(late, BOOKING, end_at=5.0).ok  # the release may still come before the deadline (t=11.0)
    _, owed = judge_as_if_due(late.records, {"booking": BOOKING}, healed_at=0.0)
    assert [v.check for v in owed] == ["compensation_completeness"]


def test_a_terminal_event_before_every_branch_finished_is_a_step_order_failure():
    h = H("trip_id").seq(1.0, "trip.requested payment.charged flight.held trip.confirmed hotel.held")
    r = run(h, BOOKING)
    assert failed(r) == {"step_order"}
    assert "before step 'hotel' succeeded" in r.violations[0].detail
    never = H("trip_id").seq(1.0, "trip.requested payment.charged flight.held trip.confirmed")
    assert "step 'hotel' never succeeded" in run(never, BOOKING).violations[0].detail
    # ...and when that branch then fails, the saga told the world two things.
    h = H("trip_id").seq(1.0, "trip.requested payment.charged flight.held trip.confirmed hotel.unavailable "
                              "flight.released payment.refunded")
    assert [v.check for v in run(h, BOOKING).violations][0] == "no_contradiction"


def test_a_branch_that_acts_before_its_fan_out_event_is_a_step_order_failure():
    h = H("trip_id").seq(1.0, "trip.requested flight.held payment.charged hotel.held trip.confirmed")
    r = run(h, BOOKING)
    assert failed(r) == {"step_order"}
    assert "step 'flight' succeeded (flight.held" in r.violations[0].detail and "before step 'charge'" in \
        r.violations[0].detail


# ----------------------------------------------------------------------------- optional, alternative, retriable

DELIVERY = SagaSpec(
    "order", "order_id", "orders.created", ("orders.completed",), ("orders.cancelled",),
    steps=(StepSpec("charge", "payment", "payments.completed", "payments.failed", "payments.refunded",
                    retriable=True),
           StepSpec("review", "fraud", "review.passed", "review.failed", optional=True),
           StepSpec("courier", "shipping", "courier.booked", "courier.failed", "courier.cancelled", one_of="delivery"),
           StepSpec("pickup", "stores", "pickup.ready", "pickup.failed", "pickup.cancelled", one_of="delivery"),
           StepSpec("receipt", "mail", "receipt.sent", after=("orders.completed",))))


def test_optional_steps_may_be_skipped_and_either_alternative_will_do():
    assert ok(run(H().seq(1.0, "orders.created payments.completed courier.booked orders.completed"), DELIVERY))
    assert ok(run(H().seq(1.0, "orders.created payments.completed review.passed pickup.ready orders.completed "
                               "receipt.sent"), DELIVERY))


def test_both_alternatives_is_a_contradiction_and_neither_is_a_step_order_failure():
    both = H().seq(1.0, "orders.created payments.completed courier.booked pickup.ready orders.completed")
    r = run(both, DELIVERY)
    assert failed(r) == {"no_contradiction"} and "two alternatives of 'delivery' both succeeded" in r.violations[0].detail
    neither = H().seq(1.0, "orders.created payments.completed orders.completed")
    r = run(neither, DELIVERY)
    assert failed(r) == {"step_order"} and "none of the alternatives 'delivery'" in r.violations[0].detail


def test_a_required_step_skipped_is_a_step_order_failure_that_says_how_to_mark_it_optional():
    spec = SagaSpec("order", "order_id", "orders.created", ("orders.completed",), (),
                    (StepSpec("charge", "payment", "payments.completed"), StepSpec("review", "fraud", "review.passed")))
    r = run(H().seq(1.0, "orders.created payments.completed orders.completed"), spec)
    assert failed(r) == {"step_order"} and "mark it optional = true" in r.violations[0].detail


def test_a_retriable_step_may_fail_then_succeed_but_two_successes_are_still_a_double_effect():
    retried = "orders.created payments.failed payments.failed payments.completed courier.booked orders.completed"
    assert ok(run(H().seq(1.0, retried), DELIVERY))
    twice = "orders.created payments.failed payments.completed payments.completed courier.booked orders.completed"
    assert failed(run(H().seq(1.0, twice), DELIVERY)) == {"no_double_effect"}
    strict = SagaSpec("order", "order_id", "orders.created", ("orders.completed",), (),
                      (StepSpec("charge", "payment", "payments.completed", "payments.failed"),))
    r = run(H().seq(1.0, "orders.created payments.failed payments.completed orders.completed"), strict)
    assert failed(r) == {"no_contradiction"} and "mark it retriable = true" in r.violations[0].detail


def test_a_step_after_the_outcome_is_not_needed_for_it():
    assert ok(run(H().seq(1.0, "orders.created payments.completed courier.booked orders.completed receipt.sent"),
                  DELIVERY))


# ----------------------------------------------------------------------------- several sagas, nested keys

CHECKOUT = SagaSpec("checkout", "data.order_id", "orders.created", ("orders.completed",), ("orders.cancelled",),
                    (StepSpec("charge", "payment", "payments.completed", "payments.failed", "payments.refunded"),),
                    event_id="id")
RETURNS = SagaSpec("returns", "data.return_id", "returns.opened", ("returns.closed",), (),
                   (StepSpec("refund", "payment", "payments.refunded"),), event_id="id")


def test_a_key_inside_a_nested_field_and_an_event_id_named_by_the_saga():
    h = H("order_id", nested=True, id_field="id").seq(1.0, "orders.created payments.completed orders.completed")
    dup = dict(h.records[1], t=1.05, seq=99, stream_seq=99)  # the same event (same id) delivered again
    h.records.insert(2, dup)
    r = run(h, CHECKOUT)
    assert ok(r) and r.sagas_checked == 1 and r.duplicates_ignored == 1
    h.m(1.5, "payments.completed", "k1")  # a new id: a second charge
    assert failed(run(h, CHECKOUT)) == {"no_double_effect"}


def test_several_sagas_keyed_by_different_fields():
    orders = H("order_id", nested=True, id_field="id").seq(1.0, "orders.created payments.completed orders.completed",
                                                            key="o1")
    returns = H("return_id", nested=True, id_field="id").seq(2.0, "returns.opened payments.refunded returns.closed",
                                                             key="r1")
    for r in returns.records:
        r["data"]["id"] = "r-" + r["data"]["id"]
    h = H()
    h.records = orders.records + returns.records
    r = run(h, CHECKOUT, RETURNS)
    assert ok(r) and set(r.convergence) == {"checkout/o1", "returns/r1"}
    # payments.refunded carries only a return_id: it is the returns saga's, not an unkeyed checkout event
    assert r.unattributed == 1 and r.sagas_checked == 2


# ----------------------------------------------------------------------------- the client's view

SIMPLE = SagaSpec("checkout", "order_id", "orders.created", ("orders.completed",), (),
                  (StepSpec("charge", "payment", "payments.completed"),), deadline=10.0)


def test_an_accepted_request_whose_saga_never_started_is_a_violation():
    h = H().op(0.5, "ok", "k1").seq(1.0, "orders.created payments.completed orders.completed").op(2.0, "ok", "k2")
    r = run(h, SIMPLE, end_at=50.0)
    assert failed(r) == {"no_lost_request"}
    v = r.violations[0]
    assert v.key == "k2" and "was accepted at t=2.010s" in v.detail and "orders.created for order_id k2 never" \
        in v.detail
    assert r.counts["no_lost_request"] == {"passed": 1, "failed": 1, "pending": 0}
    assert r.operations == {"ok": 2, "fail": 0, "unknown": 0, "unkeyed": 0}


def test_unknown_and_failed_requests_are_never_by_themselves_a_bug():
    h = H().op(0.5, "unknown", "k1").op(0.6, "unknown", None).op(0.7, "fail", "k3")
    h.seq(1.0, "orders.created payments.completed orders.completed", key="k1")
    r = run(h, SIMPLE, end_at=50.0)
    assert ok(r) and r.operations == {"ok": 0, "fail": 1, "unknown": 2, "unkeyed": 0}


def test_an_accepted_request_is_pending_until_its_deadline():
    h = H().op(2.0, "ok", "k9")
    assert run(h, SIMPLE, end_at=11.0).ok
    assert run(h, SIMPLE, end_at=12.1).by_check("no_lost_request")
    _, owed = judge_as_if_due(h.records, {"checkout": SIMPLE}, healed_at=0.0)
    assert [v.check for v in owed] == ["no_lost_request"]
