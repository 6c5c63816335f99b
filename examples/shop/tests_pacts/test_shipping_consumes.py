"""shipping's message pact: what it reads from inventory.reserved (inventory), verified against
shipping's real carrier check and handler."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import pact_events as ev
from consumer_kit import PACT_DIR, deliver, state
from sagaproof.contracts.pacts import message_pact


def test_shipping_consumes_inventory_reserved(service: Callable[[str], ModuleType]) -> None:
    shipping = service("shipping")
    seen: list[str] = []

    def handle(body: dict[str, Any], metadata: dict[str, Any]) -> None:
        [out] = deliver(shipping, metadata["subject"], body)
        assert out["type"] == "shipping.scheduled", out
        assert (out["order_id"], out["country"]) == (body["order_id"], body["address"]["country"])
        assert state(shipping)["shipments"][body["order_id"]]["status"] == "SCHEDULED"
        seen.append(body["order_id"])

    with message_pact("shipping", "inventory", PACT_DIR) as pact:
        # shipping reads only the address's country (the carrier decides by it); the rest is ignored.
        pact.expects(ev.STOCK_RESERVED, {
            **ev.envelope("inventory.reserved", ev.STOCK_RESERVED),
            "address": {"country": ev.address()["country"]},
        }, subject="inventory.reserved")
        pact.verify(handle)
    assert len(seen) == 1
