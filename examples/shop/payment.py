"""The payment service: charges orders and refunds them when a later step fails.

* ``orders.created``: if ``amount`` is above the customer's credit limit (``SHOP_CREDIT_LIMIT``
  cents, default 100000) publish ``payments.failed``; otherwise charge it and publish
  ``payments.completed`` (carrying the items and address the next steps need). Charging asks the card
  network first (simulated: ``SHOP_PAYMENT_GATEWAY_MS``, default 10 ms, outside the transaction).
* ``inventory.failed`` or ``shipping.failed``: refund what was charged for the order and publish
  ``payments.refunded``.  Nothing charged, or refunded already: nothing to do.

State: per order the amount charged and refunded and how many charges and refunds were made; the
balance is everything charged minus everything refunded.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import uuid
from typing import Any

from shop_common import Event, Settings, ShopService, new_event

settings = Settings.from_env("payment", default_port=8002)
BUG = settings.bug
CREDIT_LIMIT = int(os.environ.get("SHOP_CREDIT_LIMIT", "100000"))
GATEWAY_DELAY = float(os.environ.get("SHOP_PAYMENT_GATEWAY_MS", "10")) / 1000

SCHEMA = """
CREATE TABLE IF NOT EXISTS payments (
    order_id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, amount INTEGER NOT NULL,
    charged INTEGER NOT NULL DEFAULT 0, refunded INTEGER NOT NULL DEFAULT 0,
    charges INTEGER NOT NULL DEFAULT 0, refunds INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL, reason TEXT, payment_id TEXT);
"""


async def ask_gateway(event: Event) -> None:
    """The card network's authorisation round trip (simulated: SHOP_PAYMENT_GATEWAY_MS, default 10 ms)."""
    await asyncio.sleep(GATEWAY_DELAY)


def charge(db: sqlite3.Connection, event: Event, _authorised: None = None) -> list[Event]:
    order_id, amount = event["order_id"], event["amount"]
    if amount > CREDIT_LIMIT:
        reason = f"amount {amount} exceeds the credit limit {CREDIT_LIMIT}"
        db.execute("INSERT OR IGNORE INTO payments (order_id, customer_id, amount, status, reason) "
                   "VALUES (?, ?, ?, 'DECLINED', ?)", (order_id, event["customer_id"], amount, reason))
        return [new_event("payments.failed", order_id, caused_by=event, amount=amount, reason=reason)]
    payment_id = str(uuid.uuid4())
    # Each processed orders.created is one charge.  The shared consumer loop makes sure an event is
    # processed once (dedupe by event_id); without that, a redelivery charges again.
    db.execute(
        "INSERT INTO payments (order_id, customer_id, amount, charged, charges, status, payment_id) "
        "VALUES (?, ?, ?, ?, 1, 'CHARGED', ?) ON CONFLICT (order_id) DO UPDATE SET "
        "charged = charged + excluded.charged, charges = charges + 1, status = 'CHARGED'",
        (order_id, event["customer_id"], amount, amount, payment_id))
    return [new_event("payments.completed", order_id, caused_by=event, payment_id=payment_id, amount=amount,
                      customer_id=event["customer_id"], items=event["items"], address=event["address"])]


def refund(db: sqlite3.Connection, event: Event) -> list[Event]:
    row = db.execute("SELECT * FROM payments WHERE order_id = ?", (event["order_id"],)).fetchone()
    if row is None or row["charged"] - row["refunded"] <= 0:
        return []
    owed = row["charged"] - row["refunded"]
    db.execute("UPDATE payments SET refunded = refunded + ?, refunds = refunds + 1, status = 'REFUNDED', "
               "reason = ? WHERE order_id = ?", (owed, event["type"], event["order_id"]))
    return [new_event("payments.refunded", event["order_id"], caused_by=event, payment_id=row["payment_id"],
                      amount=owed, reason=f"{event['type']}: {event.get('reason', '')}")]


def state(db: sqlite3.Connection) -> dict[str, Any]:
    payments = {
        row["order_id"]: {
            "customer_id": row["customer_id"], "amount": row["amount"], "charged": row["charged"],
            "refunded": row["refunded"], "charges": row["charges"], "refunds": row["refunds"],
            "status": row["status"], "reason": row["reason"],
        }
        for row in db.execute("SELECT * FROM payments ORDER BY rowid")
    }
    balance = sum(p["charged"] - p["refunded"] for p in payments.values())
    return {"credit_limit": CREDIT_LIMIT, "balance": balance, "payments": payments}


service = ShopService(settings, schema=SCHEMA, state_fn=state,
                      # double_charge: no dedupe, so a redelivered orders.created is charged again.
                      dedupe=BUG != "double_charge")
service.on("orders.created", charge, prepare=ask_gateway)
if BUG != "no_refund":  # no_refund: nobody subscribed payment to inventory.failed
    service.on("inventory.failed", refund)
service.on("shipping.failed", refund)

if __name__ == "__main__":
    service.run()
