"""inventory's message pacts: what it reads from payments.completed (payment) and shipping.failed
(shipping), verified against inventory's real handlers."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import pact_events as ev
from consumer_kit import PACT_DIR, deliver, state
from sagaproof.contracts.pacts import message_pact
from shop_common import new_event


def _available(inventory: ModuleType, sku: str) -> int:
    available: int = state(inventory)["stock"][sku]["available"]
    return available


def test_inventory_consumes_payments_completed(service: Callable[[str], ModuleType]) -> None:
    inventory = service("inventory")
    seen: list[str] = []

    def handle(body: dict[str, Any], metadata: dict[str, Any]) -> None:
        before = _available(inventory, "sku-book")
        [out] = deliver(inventory, metadata["subject"], body)
        assert out["type"] == "inventory.reserved", out
        assert (out["order_id"], out["causation_id"]) == (body["order_id"], body["event_id"])
        assert out["address"] == body["address"] and out["items"] == body["items"]  # shipping needs the address
        assert _available(inventory, "sku-book") == before - body["items"][0]["qty"]
        seen.append(body["order_id"])

    with message_pact("inventory", "payment", PACT_DIR) as pact:
        pact.expects(ev.PAYMENT_COMPLETED, {
            **ev.envelope("payments.completed", ev.PAYMENT_COMPLETED),
            "items": ev.items(),
            "address": ev.address(),
        }, subject="payments.completed")
        pact.verify(handle)
    assert len(seen) == 1


def test_inventory_consumes_shipping_failed(service: Callable[[str], ModuleType]) -> None:
    inventory = service("inventory")
    released: list[str] = []

    def handle(body: dict[str, Any], metadata: dict[str, Any]) -> None:
        before = _available(inventory, "sku-lamp")
        paid = new_event("payments.completed", body["order_id"], payment_id="pay-1", amount=900,
                         customer_id="cust-001", items=[{"sku": "sku-lamp", "qty": 3}],
                         address={"street": "1 Quay Street", "city": "Cork", "country": "IE"})
        [reserved] = deliver(inventory, "payments.completed", paid)
        assert reserved["type"] == "inventory.reserved" and _available(inventory, "sku-lamp") == before - 3
        [out] = deliver(inventory, metadata["subject"], body)
        assert out["type"] == "inventory.released" and out["items"] == [{"sku": "sku-lamp", "qty": 3}], out
        assert _available(inventory, "sku-lamp") == before
        assert state(inventory)["reservations"][body["order_id"]]["status"] == "RELEASED"
        released.append(body["order_id"])

    with message_pact("inventory", "shipping", PACT_DIR) as pact:
        pact.expects(ev.SHIPPING_FAILED, ev.envelope("shipping.failed", ev.SHIPPING_FAILED),
                     given=ev.UNSERVED_COUNTRY, subject="shipping.failed")
        pact.verify(handle)
    assert len(released) == 1
