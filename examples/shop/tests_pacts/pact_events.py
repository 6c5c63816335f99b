"""The shop's message pacts, from the consumers' side: descriptions, provider states and matcher bodies.

Every consumer declares only the fields it reads, with pact matchers so the provider may send any
value of the right shape: ``event_id`` must look like a uuid, ``occurred_at`` like the shop's RFC 3339
timestamps, ids and reasons are strings of any value, amounts and quantities integers. ``type`` is
matched exactly (it always equals the subject).

The descriptions and provider states here are what ``[pacts]`` in ``examples/shop/sagaproof.toml``
keys its triggers on, so a description changes in both places at once.
"""

from __future__ import annotations

import uuid
from typing import Any

from pact import match

# Message descriptions (one per event type, shared by every consumer of that event).
ORDER_CREATED = "an order was created"
PAYMENT_COMPLETED = "a payment was completed"
PAYMENT_DECLINED = "a payment was declined"
STOCK_RESERVED = "stock was reserved for an order"
STOCK_SHORT = "stock was short for an order"
SHIPMENT_SCHEDULED = "a shipment was scheduled"
SHIPPING_FAILED = "shipping failed for an order"

# Provider states: the situation in which the provider emits the failure events.
ABOVE_CREDIT_LIMIT = "an order above the credit limit"
SOLD_OUT_SKU = "an order for a sold-out SKU"
UNSERVED_COUNTRY = "an order to a country no carrier serves"

# The shop writes timestamps as 2025-03-01T12:00:00.000Z (shop_common.now_iso).
TIMESTAMP_FORMAT = "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'"
EXAMPLE_TIME = "2025-03-01T12:00:00.000Z"


def example_order_id(description: str) -> str:
    """A fixed example order id per description, so the examples of one pact never share an order."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"sagaproof-shop-order/{description}"))


def example_event_id(description: str) -> str:
    """A fixed example event id per description (deterministic pact files)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"sagaproof-shop-event/{description}"))


def envelope(subject: str, description: str) -> dict[str, Any]:
    """The envelope every shop event starts with, as matchers."""
    return {
        "event_id": match.uuid(example_event_id(description)),
        "type": subject,
        "order_id": match.str(example_order_id(description)),
        "occurred_at": match.datetime(EXAMPLE_TIME, format=TIMESTAMP_FORMAT, disable_conversion=True),
    }


def items() -> Any:
    """At least one order line: a SKU and a positive quantity."""
    return match.each_like({"sku": match.str("sku-book"), "qty": match.int(2)}, min=1)


def address(country: str = "IE") -> dict[str, Any]:
    """A delivery address; ``country`` is an ISO 3166-1 alpha-2 code."""
    return {"street": match.str("1 Quay Street"), "city": match.str("Cork"),
            "country": match.regex(country, regex=r"^[A-Z]{2}$")}


def reason(example: str) -> Any:
    """A failure's reason: any string."""
    return match.str(example)
