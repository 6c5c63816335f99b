"""order's message pacts: the outcome events it decides an order by, from payment (payments.failed),
inventory (inventory.failed) and shipping (shipping.failed, shipping.scheduled), verified against
order's real handlers on an order placed through its real ``POST /orders`` route."""

from __future__ import annotations

import json
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pact_events as ev
from consumer_kit import PACT_DIR, deliver
from sagaproof.contracts.pacts import message_pact


def _place(order: ModuleType, order_id: str) -> None:
    body = {"order_id": order_id, "customer_id": "cust-001", "amount": 1250,
            "items": [{"sku": "sku-book", "qty": 1}],
            "address": {"street": "1 Quay Street", "city": "Cork", "country": "IE"}}
    status, created = order.create_order(order.Request("POST", "/orders", {}, {}, json.dumps(body).encode()))
    assert status == 201 and created["status"] == "PENDING", created


def _status(order: ModuleType, order_id: str) -> dict[str, Any]:
    status, body = order.get_order(order.Request("GET", f"/orders/{order_id}", {"order_id": order_id}, {}, b""))
    assert status == 200
    document: dict[str, Any] = body
    return document


def _decides(order: ModuleType, handled: list[str]) -> Callable[[dict[str, Any], dict[str, Any]], None]:
    def handle(body: dict[str, Any], metadata: dict[str, Any]) -> None:
        subject = metadata["subject"]
        _place(order, body["order_id"])
        [out] = deliver(order, subject, body)
        current = _status(order, body["order_id"])
        if subject == "shipping.scheduled":
            assert out["type"] == "orders.completed" and current["status"] == "COMPLETED", (out, current)
        else:
            assert out["type"] == "orders.cancelled" and current["status"] == "CANCELLED", (out, current)
            assert current["reason"] == out["reason"] == f"{subject}: {body['reason']}"
        assert out["causation_id"] == body["event_id"]
        handled.append(subject)

    return handle


def _failure(subject: str, description: str, reason: str) -> dict[str, Any]:
    return {**ev.envelope(subject, description), "reason": ev.reason(reason)}


def test_order_consumes_payments_failed(service: Callable[[str], ModuleType]) -> None:
    handled: list[str] = []
    with message_pact("order", "payment", PACT_DIR) as pact:
        pact.expects(ev.PAYMENT_DECLINED,
                     _failure("payments.failed", ev.PAYMENT_DECLINED, "amount 250000 exceeds the credit limit 100000"),
                     given=ev.ABOVE_CREDIT_LIMIT, subject="payments.failed")
        pact.verify(_decides(service("order"), handled))
    assert handled == ["payments.failed"]


def test_order_consumes_inventory_failed(service: Callable[[str], ModuleType]) -> None:
    handled: list[str] = []
    with message_pact("order", "inventory", PACT_DIR) as pact:
        pact.expects(ev.STOCK_SHORT, _failure("inventory.failed", ev.STOCK_SHORT, "out of stock: sku-sold-out"),
                     given=ev.SOLD_OUT_SKU, subject="inventory.failed")
        pact.verify(_decides(service("order"), handled))
    assert handled == ["inventory.failed"]


def test_order_consumes_shipping_outcomes(service: Callable[[str], ModuleType]) -> None:
    handled: list[str] = []
    with message_pact("order", "shipping", PACT_DIR) as pact:
        pact.expects(ev.SHIPMENT_SCHEDULED, ev.envelope("shipping.scheduled", ev.SHIPMENT_SCHEDULED),
                     subject="shipping.scheduled")
        pact.expects(ev.SHIPPING_FAILED,
                     _failure("shipping.failed", ev.SHIPPING_FAILED, "undeliverable: no carrier delivers to AQ"),
                     given=ev.UNSERVED_COUNTRY, subject="shipping.failed")
        pact.verify(_decides(service("order"), handled))
    assert sorted(handled) == ["shipping.failed", "shipping.scheduled"]
