"""payment's message pacts: what it reads from orders.created (order), inventory.failed (inventory) and
shipping.failed (shipping), verified against payment's real handlers."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import pact_events as ev
from consumer_kit import PACT_DIR, deliver, state
from pact import match
from sagaproof.contracts.pacts import message_pact
from shop_common import new_event


def _charge(payment: ModuleType, order_id: str, amount: int = 4200) -> None:
    """Put payment in the state a refund needs: the order was charged."""
    created = new_event("orders.created", order_id, customer_id="cust-001", amount=amount,
                        items=[{"sku": "sku-book", "qty": 1}],
                        address={"street": "1 Quay Street", "city": "Cork", "country": "IE"})
    [completed] = deliver(payment, "orders.created", created)
    assert completed["type"] == "payments.completed"


def test_payment_consumes_orders_created(service: Callable[[str], ModuleType]) -> None:
    payment = service("payment")
    seen: list[dict[str, Any]] = []

    def handle(body: dict[str, Any], metadata: dict[str, Any]) -> None:
        [out] = deliver(payment, metadata["subject"], body)
        assert out["type"] == "payments.completed", out
        assert (out["order_id"], out["amount"], out["causation_id"]) == (body["order_id"], body["amount"],
                                                                         body["event_id"])
        assert out["items"] == body["items"] and out["address"] == body["address"]  # passed on to the next steps
        assert state(payment)["balance"] == body["amount"]
        seen.append(body)

    with message_pact("payment", "order", PACT_DIR) as pact:
        pact.expects(ev.ORDER_CREATED, {
            **ev.envelope("orders.created", ev.ORDER_CREATED),
            "customer_id": match.str("cust-001"),
            "amount": match.int(1250),
            "items": ev.items(),
            "address": ev.address(),
        }, subject="orders.created")
        pact.verify(handle)
    assert len(seen) == 1


def _refund_pact(service: Callable[[str], ModuleType], provider: str, subject: str, description: str,
                 given: str, reason: str) -> None:
    payment = service("payment")
    refunded: list[str] = []

    def handle(body: dict[str, Any], metadata: dict[str, Any]) -> None:
        _charge(payment, body["order_id"], amount=4200)
        [out] = deliver(payment, metadata["subject"], body)
        assert out["type"] == "payments.refunded" and out["amount"] == 4200, out
        assert out["reason"] == f"{subject}: {body['reason']}"
        assert state(payment)["balance"] == 0
        assert deliver(payment, metadata["subject"], {**body, "event_id": ev.example_event_id("again")}) == [], \
            "a second failure event for the same order must not refund twice"
        refunded.append(body["order_id"])

    with message_pact("payment", provider, PACT_DIR) as pact:
        pact.expects(description, {**ev.envelope(subject, description), "reason": ev.reason(reason)},
                     given=given, subject=subject)
        pact.verify(handle)
    assert len(refunded) == 1


def test_payment_consumes_inventory_failed(service: Callable[[str], ModuleType]) -> None:
    _refund_pact(service, "inventory", "inventory.failed", ev.STOCK_SHORT, ev.SOLD_OUT_SKU,
                 "out of stock: sku-sold-out")


def test_payment_consumes_shipping_failed(service: Callable[[str], ModuleType]) -> None:
    _refund_pact(service, "shipping", "shipping.failed", ev.SHIPPING_FAILED, ev.UNSERVED_COUNTRY,
                 "undeliverable: no carrier delivers to AQ")
