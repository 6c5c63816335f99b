"""The shipping service: books a delivery for every order whose stock is reserved.

* ``inventory.reserved``: ask the carrier (simulated: it takes ``SHOP_SHIPPING_DELAY_MS``
  milliseconds, default 10) whether it delivers to the address.  The carrier delivers to the
  countries in ``COUNTRIES``; any other country, or no address at all, is undeliverable and
  gives ``shipping.failed``.  Otherwise publish ``shipping.scheduled``.  One shipment per order.

Shipping is the last step and has no compensation of its own: a failure here makes payment refund
and inventory release.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import uuid
from typing import Any

from shop_common import Event, Settings, ShopService, new_event

settings = Settings.from_env("shipping", default_port=8004)
CARRIER_DELAY = float(os.environ.get("SHOP_SHIPPING_DELAY_MS", "20")) / 1000
COUNTRIES = frozenset({"BE", "DE", "DK", "ES", "FR", "GB", "IE", "IT", "NL", "SE", "US"})

SCHEMA = """
CREATE TABLE IF NOT EXISTS shipments (
    order_id TEXT PRIMARY KEY, shipment_id TEXT, status TEXT NOT NULL, country TEXT, reason TEXT);
"""


async def ask_carrier(event: Event) -> str | None:
    """The carrier's answer for this address: ``None`` if it delivers, else why not."""
    await asyncio.sleep(CARRIER_DELAY)
    # A tolerant reader: a missing address is not a crash, it is an address we cannot deliver to.
    country = (event.get("address") or {}).get("country")
    if country is None:
        return "undeliverable: no address"
    if country not in COUNTRIES:
        return f"undeliverable: no carrier delivers to {country}"
    return None


def schedule(db: sqlite3.Connection, event: Event, refusal: str | None) -> list[Event]:
    order_id = event["order_id"]
    if db.execute("SELECT 1 FROM shipments WHERE order_id = ?", (order_id,)).fetchone():
        return []
    country = (event.get("address") or {}).get("country")
    if refusal is not None:
        db.execute("INSERT INTO shipments VALUES (?, NULL, 'FAILED', ?, ?)", (order_id, country, refusal))
        return [new_event("shipping.failed", order_id, caused_by=event, reason=refusal)]
    shipment_id = str(uuid.uuid4())
    db.execute("INSERT INTO shipments VALUES (?, ?, 'SCHEDULED', ?, NULL)", (order_id, shipment_id, country))
    return [new_event("shipping.scheduled", order_id, caused_by=event, shipment_id=shipment_id, country=country)]


def state(db: sqlite3.Connection) -> dict[str, Any]:
    shipments = {row["order_id"]: {"shipment_id": row["shipment_id"], "status": row["status"],
                                   "country": row["country"], "reason": row["reason"]}
                 for row in db.execute("SELECT * FROM shipments ORDER BY rowid")}
    return {"shipments": shipments}


service = ShopService(settings, schema=SCHEMA, state_fn=state)
service.on("inventory.reserved", schedule, prepare=ask_carrier)

if __name__ == "__main__":
    service.run()
