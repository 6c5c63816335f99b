"""Each seeded bug of the shop, shown for real: under the fault that triggers it the buggy shop
reaches a wrong outcome, while the correct shop, under the same fault, does not.  (Catching the bug
is sagaproof's job; these tests only prove there is something to catch.)"""

from __future__ import annotations

import random

import pytest
from shop_contracts import violations
from shop_fixture import load_shop_module, wait_for

workload = load_shop_module("workload")


def body(path: str, n: int = 0) -> dict:
    """The n-th workload order on ``path``, with a fixed order_id so a retry cannot duplicate it."""
    index = workload.PATHS.index(path) + 10 * n
    return workload.order_body(index, random.Random(index)) | {"order_id": f"{path}-{n}"}


def of_type(events: list[dict], type_: str, order_id: str | None = None) -> list[dict]:
    return [e for e in events if e["type"] == type_ and order_id in (None, e["order_id"])]


def env(bug: str | None) -> dict[str, str]:
    return {"SHOP_BUG": bug} if bug else {}


@pytest.mark.parametrize("bug", [None, "no_refund"], ids=["clean", "no_refund"])
def test_no_refund_keeps_the_money_of_an_order_cancelled_for_stock(make_shop, bug):
    # Fault: none. The workload's out-of-stock path is enough.
    shop = make_shop(env(bug))
    order_id = shop.place(body("out_of_stock"))["order_id"]
    assert shop.wait_terminal([order_id], 10)[order_id]["status"] == "CANCELLED"
    shop.wait_idle()  # every consumer drained: nothing more will happen
    payment = shop["payment"].state()["payments"][order_id]
    kept = payment["charged"] - payment["refunded"]
    assert kept == (payment["amount"] if bug else 0)


@pytest.mark.parametrize("bug", [None, "double_charge"], ids=["clean", "double_charge"])
def test_double_charge_charges_a_redelivered_order_twice(make_shop, bug):
    # Fault: a duplicate delivery of orders.created - here a producer retry that re-publishes the
    # same event under a new Nats-Msg-Id, so JetStream's own dedupe cannot drop it.
    shop = make_shop(env(bug))
    order_id = shop.place(body("completed"))["order_id"]
    assert shop.wait_terminal([order_id], 10)[order_id]["status"] == "COMPLETED"
    shop.wait_idle()
    created = of_type(shop.events(), "orders.created", order_id)[0]
    shop.publish("orders.created", {k: v for k, v in created.items() if k != "_subject"})
    shop.wait_idle()
    payment = shop["payment"].state()["payments"][order_id]
    charges = 2 if bug else 1
    assert (payment["charges"], payment["charged"]) == (charges, charges * payment["amount"])
    assert len(of_type(shop.events(), "payments.completed", order_id)) == charges


@pytest.mark.parametrize("bug", [None, "ack_before_commit"], ids=["clean", "ack_before_commit"])
def test_ack_before_commit_loses_events_when_a_consumer_is_killed(make_shop, bug):
    # Fault: SIGKILL of shipping while it works through a backlog (a slow carrier makes the window
    # between ack and commit wide enough to hit on purpose).
    shop = make_shop(env(bug) | {"SHOP_SHIPPING_DELAY_MS": "150"})
    shop["shipping"].kill()
    order_ids = [shop.place(body("completed", n))["order_id"] for n in range(12)]
    wait_for(lambda: len(of_type(shop.events(), "inventory.reserved")) == 12, 10, "12 reservations")
    shop["shipping"].start()
    shop["shipping"].wait_ready()
    wait_for(lambda: shop["shipping"].state()["shipments"], 10, "the first shipment")
    shop["shipping"].restart()  # SIGKILL mid-batch, then start again
    if bug:
        shop.wait_idle()  # JetStream has nothing left to deliver: what is pending now stays pending
        pending = [o for o, order in shop.orders().items() if order["status"] == "PENDING"]
        assert len(pending) >= 5, pending
    else:
        orders = shop.wait_terminal(order_ids, 15)
        assert {orders[o]["status"] for o in order_ids} == {"COMPLETED"}


@pytest.mark.parametrize("bug", [None, "lost_terminal"], ids=["clean", "lost_terminal"])
def test_lost_terminal_leaves_orders_pending_when_order_was_down(make_shop, bug):
    # Fault: the order service is down (killed) while the outcome events are published.
    shop = make_shop(env(bug))
    shop["shipping"].kill()
    order_ids = [shop.place(body("completed", n))["order_id"] for n in range(5)]
    wait_for(lambda: len(of_type(shop.events(), "inventory.reserved")) == 5, 10, "5 reservations")
    shop["order"].kill()
    shop["shipping"].start()
    shop["shipping"].wait_ready()
    wait_for(lambda: len(of_type(shop.events(), "shipping.scheduled")) == 5, 10, "5 shipments")
    shop["order"].start()
    shop["order"].wait_ready()
    if bug:
        # The outcomes sit in the stream but nothing will ever deliver them to order again. Waiting
        # past one ack_wait (2 s; the clean shop finishes in well under that) shows they stay lost.
        with pytest.raises(AssertionError, match="5 of 5 orders not terminal"):
            shop.wait_terminal(order_ids, 3)
    else:
        orders = shop.wait_terminal(order_ids, 10)
        assert {orders[o]["status"] for o in order_ids} == {"COMPLETED"}


@pytest.mark.parametrize("bug", [None, "field_rename"], ids=["clean", "field_rename"])
def test_field_rename_cancels_orders_that_should_complete(make_shop, bug):
    # Fault: none; every order that reaches shipping is hit.
    shop = make_shop(env(bug))
    order_id = shop.place(body("completed"))["order_id"]
    order = shop.wait_terminal([order_id], 10)[order_id]
    shop.wait_idle()
    found = violations(shop.events())
    if bug:
        assert (order["status"], order["reason"]) == ("CANCELLED", "shipping.failed: undeliverable: no address")
        assert any("inventory.reserved" in v and "shipping's receive contract" in v for v in found), found
    else:
        assert order["status"] == "COMPLETED"
        assert found == []


@pytest.mark.parametrize("bug", [None, "early_complete"], ids=["clean", "early_complete"])
def test_early_complete_contradicts_itself(make_shop, bug):
    # Fault: none. The workload's undeliverable-address path is enough.
    shop = make_shop(env(bug))
    order_id = shop.place(body("undeliverable"))["order_id"]
    assert shop.wait_terminal([order_id], 10)[order_id]["status"] in ("COMPLETED", "CANCELLED")
    shop.wait_idle()
    terminal = [e["type"] for e in shop.events()
                if e["order_id"] == order_id and e["type"] in ("orders.completed", "orders.cancelled")]
    assert terminal == (["orders.completed", "orders.cancelled"] if bug else ["orders.cancelled"])
    assert shop.orders()[order_id]["status"] == "CANCELLED"


@pytest.mark.parametrize("bug", [None, "lost_status"], ids=["clean", "lost_status"])
def test_lost_status_leaves_an_ended_order_pending_after_a_crash(make_shop, bug):
    # Fault: SIGKILL of order right after it decided an order (its status batch, written every 30 s, not yet).
    shop = make_shop(env(bug) | {"SHOP_STATUS_FLUSH_S": "600"})  # never within the test, however slow
    order_id = shop.place(body("completed"))["order_id"]
    assert shop.wait_terminal([order_id], 10)[order_id]["status"] == "COMPLETED"  # reads look right
    wait_for(lambda: of_type(shop.events(), "orders.completed", order_id), 10, "orders.completed on the wire")
    shop["order"].restart()  # SIGKILL, then start again
    shop.wait_idle()
    assert len(of_type(shop.events(), "orders.completed", order_id)) == 1  # the wire is right either way
    assert shop["order"].get(f"/orders/{order_id}")["status"] == ("PENDING" if bug else "COMPLETED")
