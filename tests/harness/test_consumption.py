"""The broker checks (delivery guarantee, consumption, dead letters) and the report's summaries, on hand-built
histories of the kinds the links and the broker view record."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from sagaproof.chaos.observe import wire_rows
from sagaproof.contracts import load
from sagaproof.harness.checks.consumption import Receive, check_broker, receives_from_contracts
from sagaproof.harness.config import SagaSpec, StepSpec

SAGA = SagaSpec("checkout", "order_id", "orders.created", ("orders.completed",), ("orders.cancelled",),
                (StepSpec("charge", "payment", "payments.completed"),))
STREAMS = {"SHOP": ["orders.>", "payments.>"]}
RECEIVES = [Receive("payment", "orders.created"), Receive("order", "payments.completed")]


class H:
    """A history builder: stored messages, link observations, faults."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self._seq = itertools.count(1)

    def add(self, kind: str, t: float, **fields: Any) -> H:
        self.records.append({"kind": kind, "t": t, "seq": len(self.records) + 1, **fields})
        return self

    def msg(self, t: float, subject: str, key: str = "o1") -> int:
        n = next(self._seq)
        self.add("message", t, subject=subject, stream="SHOP", stream_seq=n, producer="order",
                 data={"order_id": key, "event_id": f"e{n}"})
        return n

    def connect(self, service: str, t: float = 0.0, conn: int = 1) -> H:
        return self.add("nats_connect", t, service=service, conn=conn, name=service)

    def consumer(self, service: str, filters: list[str], ack_policy: str = "explicit") -> H:
        return self.add("js_consumer", 0.01, service=service, conn=1, stream="SHOP", consumer=service, durable=True,
                        filter_subjects=filters, ack_policy=ack_policy, ack_wait=2.0, max_deliver=-1)

    def deliver(self, service: str, t: float, seq: int, subject: str, delivered: int = 1) -> H:
        return self.add("delivery", t, service=service, conn=1, sid="2", subject=subject, stream="SHOP",
                        consumer=service, delivered=delivered, stream_seq=seq, consumer_seq=seq, pending=0)

    def answer(self, service: str, t: float, seq: int, how: str = "ack", delivered: int = 1, **extra: Any) -> H:
        return self.add("ack", t, service=service, conn=1, how=how, stream="SHOP", consumer=service,
                        delivered=delivered, stream_seq=seq, **extra)

    def check(self, receives: list[Receive] = RECEIVES, services: tuple[str, ...] = ("order", "payment")) -> Any:
        return check_broker(sorted(self.records, key=lambda r: (r["t"], r["seq"])), receives=receives,
                            streams=STREAMS, services=services, sagas={"checkout": SAGA})


def consumed(h: H, service: str, t: float, seq: int, subject: str) -> None:
    h.deliver(service, t, seq, subject).answer(service, t + 0.01, seq)


def test_every_message_acked_by_its_contract_receivers_passes() -> None:
    h = H().connect("order").connect("payment").consumer("payment", ["orders.created"]).consumer(
        "order", ["payments.completed"])
    a = h.msg(1.0, "orders.created")
    consumed(h, "payment", 1.1, a, "orders.created")
    b = h.msg(1.2, "payments.completed")
    h.deliver("order", 1.3, b, "payments.completed").answer("order", 1.4, b, "nak")  # nak, then redelivered
    consumed(h, "order", 1.5, b, "payments.completed")
    report = h.check()
    assert report.ok, [f.message() for group in report.findings.values() for f in group]
    assert "all 2" in report.summaries["consumption"]
    row = next(r for r in report.matrix if r["service"] == "order")
    assert (row["messages"], row["delivered"], row["acked"], row["naked"], row["deliveries"]) == (1, 1, 1, 1, 2)


def test_a_message_the_receiver_never_acked_is_named_with_its_saga_key_and_faults() -> None:
    h = H().connect("order").connect("payment").consumer("payment", ["orders.created"])
    h.add("fault_start", 0.5, fault={"id": "f1", "kind": "partition", "target": "payment"})
    a = h.msg(1.0, "orders.created", key="o7")
    h.add("fault_end", 1.5, fault_id="f1")
    h.deliver("payment", 2.0, a, "orders.created").answer("payment", 2.1, a, "nak")
    report = h.check(receives=[RECEIVES[0]])
    (f,) = report.findings["consumption"]
    assert (f.service, f.subject, f.stream_seq, f.key, f.saga) == ("payment", "orders.created", a, "o7", "checkout")
    assert "delivered 1 time(s) and never acknowledged; the last answer was -NAK" in f.detail
    text = f.message("sagaproof run x --seed 3")
    assert "f1 partition payment" in text and "reproduce: sagaproof run x --seed 3" in text
    assert text.startswith("Consumption violated: service 'payment', orders.created SHOP sequence 1 "
                           "(saga 'checkout' key o7)")
    assert report.not_taken == {("payment", "orders.created"): "none"}
    (outcome, ) = [o for o in report.outcomes() if o.name == "consumption"]
    assert not outcome.ok and outcome.details[0] == f.message()


def test_a_consumer_whose_filter_leaves_out_a_received_subject_is_explained() -> None:
    h = H().connect("payment").consumer("payment", ["orders.created"])
    n = h.msg(1.0, "payments.failed")
    report = h.check(receives=[Receive("payment", "payments.failed")], services=("payment",))
    (f,) = report.findings["consumption"]
    assert f.stream_seq == n and "none of 'payment''s JetStream consumers takes payments.failed" in f.detail
    assert "filters orders.created" in f.detail


def test_core_subscription_on_a_stored_subject_is_flagged_with_the_fix_and_counts_what_was_lost() -> None:
    h = H().connect("order").add("nats_sub", 0.1, service="order", conn=1, subject="payments.completed", queue=None,
                                 sid="5")
    h.msg(1.0, "payments.completed")
    h.add("fault_start", 1.5, fault={"id": "f2", "kind": "kill", "target": "order"})
    h.msg(2.0, "payments.completed", key="o2")  # published while order was away: lost for it
    h.add("fault_end", 2.5, fault_id="f2")
    h.add("broker_snapshot", 3.0, consumers=[], connections=[],
          links={"order": {"connections": 1, "core": {"payments.completed": 1}}})
    report = h.check(receives=[RECEIVES[1]], services=("order",))
    (g,) = report.findings["delivery guarantee"]
    assert (g.service, g.subject) == ("order", "payments.completed")
    assert "stores 2 message(s) on it; 1 reached the service that way, 1 never did" in g.detail
    assert "x-sagaproof-delivery: at-most-once" in g.fix and "durable JetStream consumer" in g.fix
    assert "f2 kill order" in g.message()
    assert len(report.findings["consumption"]) == 2  # nothing acknowledged either
    assert "core subscription" in report.findings["consumption"][0].detail


def test_stated_at_most_once_intent_silences_both_checks() -> None:
    h = H().connect("order").add("nats_sub", 0.1, service="order", conn=1, subject="payments.*", queue=None, sid="5")
    h.msg(1.0, "payments.completed")
    report = h.check(receives=[Receive("order", "payments.completed", "at-most-once")], services=("order",))
    assert report.ok


def test_push_consumer_subscriptions_and_inboxes_are_not_core_reads() -> None:
    h = H().connect("payment").add("nats_sub", 0.1, service="payment", conn=1, subject="_INBOX.x.*", queue=None,
                                   sid="1")
    h.add("nats_sub", 0.1, service="payment", conn=1, subject="deliver.payment", queue=None, sid="2")
    h.consumer("payment", ["orders.created"])
    h.records[-1]["deliver_subject"] = "deliver.payment"
    n = h.msg(1.0, "orders.created")
    consumed(h, "payment", 1.1, n, "orders.created")
    assert h.check(receives=[RECEIVES[0]], services=("payment",)).ok


def test_terminated_and_dead_lettered_messages_are_reported_with_the_message() -> None:
    h = H().connect("payment").consumer("payment", ["orders.created"])
    a = h.msg(1.0, "orders.created", key="o1")
    b = h.msg(1.1, "orders.created", key="o2")
    h.deliver("payment", 1.2, a, "orders.created").answer("payment", 1.3, a, "term", reason="bad json")
    h.deliver("payment", 1.2, b, "orders.created").answer("payment", 1.3, b, "nak")
    h.deliver("payment", 1.4, b, "orders.created", delivered=2).answer("payment", 1.5, b, "nak", delivered=2)
    h.add("advisory", 1.6, type="max_deliveries", stream="SHOP", consumer="payment", stream_seq=b, deliveries=2)
    h.add("advisory", 1.31, type="terminated", stream="SHOP", consumer="payment", stream_seq=a, deliveries=1)
    report = h.check(receives=[RECEIVES[0]], services=("payment",))
    dead = report.findings["dead letters"]
    assert [(f.key, f.stream_seq) for f in dead] == [("o1", a), ("o2", b)]
    assert "terminated" in dead[0].detail and "dead-lettered after 2 deliveries" in dead[1].detail
    reasons = {f.key: f.detail for f in report.findings["consumption"]}
    assert "terminated it (+TERM)" in reasons["o1"] and "dead-lettered" in reasons["o2"]
    row = next(r for r in report.matrix if r["service"] == "payment")
    assert (row["terminated"], row["redelivered"]) == (1, 1)


def test_ack_policy_none_and_all_count_as_consumed() -> None:
    h = H().connect("payment").consumer("payment", ["orders.created"], ack_policy="all")
    a, b = h.msg(1.0, "orders.created"), h.msg(1.1, "orders.created", key="o2")
    h.deliver("payment", 1.2, a, "orders.created").deliver("payment", 1.2, b, "orders.created")
    h.answer("payment", 1.3, b)  # AckAll: acks a too
    assert h.check(receives=[RECEIVES[0]], services=("payment",)).ok
    h2 = H().connect("payment").consumer("payment", ["orders.created"], ack_policy="none")
    c = h2.msg(1.0, "orders.created")
    h2.deliver("payment", 1.2, c, "orders.created")
    assert h2.check(receives=[RECEIVES[0]], services=("payment",)).ok


def test_redelivery_coverage_says_when_no_consumer_of_a_stream_saw_one() -> None:
    h = H().connect("payment").consumer("payment", ["orders.created"])
    n = h.msg(1.0, "orders.created")
    consumed(h, "payment", 1.1, n, "orders.created")
    cov = h.check(receives=[RECEIVES[0]], services=("payment",)).coverage
    assert cov["never_redelivered"] == ["SHOP"] and "could not have been caught" in cov["notes"][0]
    h.deliver("payment", 2.0, n, "orders.created", delivered=2)
    cov = h.check(receives=[RECEIVES[0]], services=("payment",)).coverage
    assert cov["never_redelivered"] == [] and cov["streams"]["SHOP"]["payment"] == {"deliveries": 2,
                                                                                   "redeliveries": 1}


def test_services_that_never_connected_are_not_judged_and_that_is_no_pass() -> None:
    h = H()
    h.msg(1.0, "orders.created")
    report = h.check(receives=[RECEIVES[0]], services=("payment",))
    assert not report.findings["consumption"] and not report.ok  # nothing wrong seen, and nothing judged
    outcomes = {o.name: o for o in report.outcomes()}
    assert {o.status for o in outcomes.values()} == {"not judged"}
    assert "was seen connecting to NATS" in outcomes["delivery guarantee"].summary
    assert "every stored subject" not in outcomes["delivery guarantee"].summary


def test_without_an_observed_link_the_broker_checks_do_not_apply() -> None:
    h = H()
    h.msg(1.0, "orders.created")
    report = check_broker(h.records, receives=[RECEIVES[0]], streams=STREAMS, services=["payment"], observing=[])
    assert report.ok
    assert {(o.status, o.ok) for o in report.outcomes()} == {("not applicable", True)}
    assert "attach mode without links" in report.outcomes()[0].summary


def test_a_core_only_system_has_no_stored_message_to_judge() -> None:
    h = H().connect("payment")
    h.add("nats_sub", 0.02, service="payment", conn=1, sid="1", subject="orders.created")
    report = check_broker(h.records, receives=[RECEIVES[0]], streams={}, services=["payment"])
    assert {o.status for o in report.outcomes()} == {"not applicable"}
    assert "no JetStream stream stores any subject" in report.outcomes()[1].summary


def test_consumption_owed_nothing_is_not_judged_unless_no_contract_says_what_anyone_receives() -> None:
    h = H().connect("payment").consumer("payment", ["orders.created"])
    h.msg(1.0, "payments.completed")  # nobody's contract receives it
    owed_nothing = {o.name: o for o in h.check(receives=[RECEIVES[0]], services=("payment",)).outcomes()}
    assert owed_nothing["consumption"].status == "not judged"
    assert owed_nothing["delivery guarantee"].status == "passed"
    no_contract = {o.name: o for o in h.check(receives=[], services=("payment",)).outcomes()}
    assert no_contract["consumption"].status == "not applicable"


def test_contract_extension_key_states_the_intent(tmp_path: Any) -> None:
    doc = tmp_path / "order.yaml"
    doc.write_text("""asyncapi: 3.0.0
info: {title: order, version: 1.0.0}
channels:
  done: {address: payments.completed, messages: {M: {payload: {type: object}}}}
operations:
  takeDone:
    action: receive
    channel: {$ref: '#/channels/done'}
    x-sagaproof-delivery: at-most-once
""")
    receives = receives_from_contracts(load({"order": [doc]}))
    assert receives == [Receive("order", "payments.completed", "at-most-once")]
    bad = tmp_path / "bad.yaml"
    bad.write_text(doc.read_text().replace("at-most-once", "sometimes"))
    import pytest
    from sagaproof.contracts import ContractsError

    with pytest.raises(ContractsError, match="x-sagaproof-delivery must be one of at-most-once, at-least-once"):
        load({"order": [bad]})


def test_when_the_run_ends_without_quiescence_what_may_still_be_taken_is_pending() -> None:
    h = H().connect("payment").consumer("payment", ["orders.created"])
    a = h.msg(1.0, "orders.created")
    h.deliver("payment", 1.1, a, "orders.created")  # delivered, its ack not seen yet
    b = h.msg(1.2, "orders.created", key="o2")  # not delivered yet, but the consumer takes it
    c = h.msg(1.3, "payments.failed", key="o3")  # no consumer of payment takes it: final whatever happens
    receives = [RECEIVES[0], Receive("payment", "payments.failed")]
    moving = check_broker(h.records, receives=receives, streams=STREAMS, services=["payment"], final=False)
    assert [f.stream_seq for f in moving.findings["consumption"]] == [c]
    assert "2 still in flight when the run stopped waiting" in moving.summaries["consumption"]
    final = check_broker(h.records, receives=receives, streams=STREAMS, services=["payment"])
    assert [f.stream_seq for f in final.findings["consumption"]] == [a, b, c]


@pytest.mark.parametrize("form", ["columns", "rows"])
def test_wire_records_read_like_single_records(form: str) -> None:
    h = H().connect("payment").consumer("payment", ["orders.created"])
    h.add("fault_start", 0.5, fault={"id": "f1", "kind": "kill", "target": "payment"})
    a = h.msg(1.0, "orders.created")
    b = h.msg(1.1, "orders.created", key="o2")
    h.add("fault_end", 1.15, fault_id="f1")
    if form == "columns":  # as the broker view writes them: one record per flush, columns with their own times
        h.add("wire", 1.2, service="payment",
              deliveries={"t": [1.2, 1.2, 1.4], "conn": [1, 1, 1], "subject": ["orders.created"] * 3,
                          "sid": ["2"] * 3,
                          "ack": f"$JS.ACK.SHOP.payment.1.{a}.{a}.1700000000000000000.1 "
                                 f"$JS.ACK.SHOP.payment.1.{b}.{b}.1700000000000000000.0 "
                                 f"$JS.ACK.SHOP.payment.2.{b}.{b + 1}.1700000000000000000.0"},
              answers={"t": [1.25, 1.3], "conn": [1, 1], "how": ["ack", "nak"],
                       "ack": f"$JS.ACK.SHOP.payment.1.{a}.{a}.1700000000000000000.1 "
                              f"$JS.ACK.SHOP.payment.1.{b}.{b}.1700000000000000000.0"})
    else:  # as older histories hold them: rows
        h.add("wire", 1.2, service="payment",
              deliveries=[[1.2, 1, "orders.created", "2", "SHOP", "payment", 1, a, a, 1],
                          [1.2, 1, "orders.created", "2", "SHOP", "payment", 1, b, b, 0],
                          [1.4, 1, "orders.created", "2", "SHOP", "payment", 2, b, b + 1, 0]],
              answers=[[1.25, 1, "ack", "SHOP", "payment", 1, a, None],
                       [1.3, 1, "nak", "SHOP", "payment", 1, b, None]])
    report = h.check(receives=[RECEIVES[0]], services=("payment",))
    (f,) = report.findings["consumption"]
    assert f.stream_seq == b and "delivered 2 time(s) and never acknowledged; the last answer was -NAK" in f.detail
    row = next(r for r in report.matrix if r["service"] == "payment")
    assert (row["delivered"], row["acked"], row["redelivered"], row["naked"]) == (2, 1, 1, 1)
    assert report.coverage["streams"]["SHOP"]["payment"] == {"deliveries": 3, "redeliveries": 1}


def test_wire_records_come_on_the_recorder_clock_however_they_were_drained() -> None:
    from sagaproof.harness.env.broker_view import _record, wire_event

    def columns(times: list[float]) -> dict[str, Any]:
        return {"t": times, "conn": [1] * len(times), "subject": ["orders.created"] * len(times),
                "sid": ["2"] * len(times), "ack": " ".join(f"$JS.ACK.SHOP.payment.1.{i}.{i}.0.0" for i in range(len(times)))}

    t0 = 1_700_000_000.0
    walls = [t0 - 1.0, t0 + 0.25, t0 + 1.5]  # one before the recorder started: t 0
    before = _record(wire_event("payment", columns(list(walls)), None, None), t0)  # drained before a recorder
    drained = _record(wire_event("payment", columns([0.0, 0.25, 1.5]), None, t0), t0)  # on its clock already
    other = _record(wire_event("payment", columns([1.0, 2.25, 3.5]), None, t0 - 2.0), t0)  # another clock
    for rec in (before, drained, other):
        assert rec["deliveries"]["t"] == [0.0, 0.25, 1.5] and rec["t"] == 0.0 and "_rows_t0" not in rec
        assert [row[7] for row in wire_rows(rec["deliveries"], rec["answers"])[0]] == [0, 1, 2]


# ------------------------------------------------------------------ consumer groups (replicas, a shared durable)


def _bound(h: H, *services: str) -> H:
    """Each service binds to the durable consumer "payout" (as a pull consumer)."""
    for svc in services:
        h.add("js_consumer", 0.01, service=svc, conn=1, stream="SHOP", consumer="payout", durable=True,
              filter_subjects=["orders.created"], ack_policy="explicit", ack_wait=2.0, max_deliver=-1)
    return h


def _shared(h: H, service: str, t: float, seq: int, ack: bool = True) -> None:
    """`service` takes message `seq` through the durable consumer "payout" it shares with another service."""
    h.add("delivery", t, service=service, conn=1, sid="2", subject="orders.created", stream="SHOP",
          consumer="payout", delivered=1, stream_seq=seq, consumer_seq=seq, pending=0)
    if ack:
        h.add("ack", t + 0.01, service=service, conn=1, how="ack", stream="SHOP", consumer="payout", delivered=1,
              stream_seq=seq)


def test_two_services_sharing_one_durable_consumer_consume_together() -> None:
    # The false alarm: payout-1 and payout-2 each declare that they receive the subject and share the
    # durable consumer "payout"; each message goes to one of them, acknowledged once, by one or the other.
    h = _bound(H().connect("payout-1").connect("payout-2"), "payout-1", "payout-2")
    receives = [Receive("payout-1", "orders.created"), Receive("payout-2", "orders.created")]
    for i in range(6):
        seq = h.msg(1.0 + i / 10, "orders.created", key=f"o{i}")
        _shared(h, "payout-1" if i % 2 else "payout-2", 1.05 + i / 10, seq)
    report = h.check(receives, ("payout-1", "payout-2"))
    assert report.ok, [f.message() for group in report.findings.values() for f in group]
    assert "all 6" in report.summaries["consumption"]
    assert "payout-1+payout-2 (payout-1, payout-2)" in report.summaries["consumption"]
    rows = {r["service"]: r for r in report.matrix}  # which replica did what
    assert (rows["payout-1"]["acked"], rows["payout-2"]["acked"]) == (3, 3)


def test_a_message_no_member_of_a_shared_consumer_acked_is_still_caught_and_names_who_took_it() -> None:
    h = _bound(H().connect("payout-1").connect("payout-2"), "payout-1", "payout-2")
    receives = [Receive("payout-1", "orders.created"), Receive("payout-2", "orders.created")]
    a = h.msg(1.0, "orders.created", key="o1")
    _shared(h, "payout-1", 1.1, a)
    b = h.msg(1.2, "orders.created", key="o2")
    _shared(h, "payout-2", 1.3, b, ack=False)  # delivered to payout-2, never acknowledged by either
    report = h.check(receives, ("payout-1", "payout-2"))
    found = report.findings["consumption"]
    assert len(found) == 1 and found[0].stream_seq == b and found[0].key == "o2"
    assert found[0].service == "payout-1+payout-2"
    assert any(e["service"] == "payout-2" and "delivered" in e["what"] for e in found[0].events)


def test_replicas_of_a_service_consume_for_it() -> None:
    # The contract names the service "payout"; its processes are its replicas payout-1 and payout-2.
    h = _bound(H().connect("payout-1").connect("payout-2"), "payout-1", "payout-2")
    for i in range(4):
        seq = h.msg(1.0 + i / 10, "orders.created", key=f"o{i}")
        _shared(h, f"payout-{1 + i % 2}", 1.05 + i / 10, seq)
    left = h.msg(2.0, "orders.created", key="o9")  # taken by nobody
    report = check_broker(sorted(h.records, key=lambda r: (r["t"], r["seq"])),
                          receives=[Receive("payout", "orders.created")], streams=STREAMS,
                          services=("payout-1", "payout-2"), sagas={"checkout": SAGA},
                          groups={"payout-1": "payout", "payout-2": "payout"})
    found = report.findings["consumption"]
    assert [(f.service, f.stream_seq) for f in found] == [("payout", left)]
    assert "4 of 5" not in report.summaries["consumption"] and "1 of 5" in report.summaries["consumption"]


def test_a_work_queue_is_judged_from_its_sequences_and_leftovers() -> None:
    # A work queue is read from its publishes (no stream sequence on the messages): the end state gives the
    # sequences, a delivery gives each one's subject, and what is still in the queue was never acknowledged.
    h = H().connect("payment")
    h.add("message", 1.0, subject="orders.created", stream=None, stream_seq=None, producer="order",
          data={"order_id": "o1"})
    h.add("delivery", 1.1, service="payment", conn=1, sid="2", subject="orders.created", stream="JOBS",
          consumer="pay", delivered=1, stream_seq=1, consumer_seq=1, pending=0)
    h.add("ack", 1.2, service="payment", conn=1, how="ack", stream="JOBS", consumer="pay", delivered=1, stream_seq=1)
    h.add("stream_state", 5.0, stream="JOBS", retention="workqueue", first_seq=1, last_seq=2, messages=1,
          leftovers=[{"seq": 2, "subject": "orders.created", "data": {"order_id": "o2"}}])
    report = check_broker(sorted(h.records, key=lambda r: (r["t"], r["seq"])),
                          receives=[Receive("payment", "orders.created")], streams={"JOBS": ["orders.>"]},
                          services=("payment",), sagas={"checkout": SAGA})
    found = report.findings["consumption"]
    assert [(f.stream, f.stream_seq, f.key) for f in found] == [("JOBS", 2, "o2")]
    assert "1 of 2" in report.summaries["consumption"]
