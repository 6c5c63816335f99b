"""The inventory service: reserves stock for paid orders and releases it when shipping fails.

* ``payments.completed``: reserve every line of the order at once.  If any SKU has less stock
  available than ordered (``sku-sold-out`` always has none; unknown SKUs count as none) publish
  ``inventory.failed`` and reserve nothing; otherwise publish ``inventory.reserved`` (carrying the
  address shipping needs).  One reservation per order: a second payment event for the same order
  reserves nothing more.
* ``shipping.failed``: put a reserved order's stock back and publish ``inventory.released``.

State: the initial and available stock per SKU and every reservation, so that
``initial == available + reserved`` can be checked per SKU.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from shop_common import Event, Settings, ShopService, new_event

settings = Settings.from_env("inventory", default_port=8003)
BUG = settings.bug

# Plenty of everything except the one SKU that is always sold out.
INITIAL_STOCK = {"sku-apple": 100_000, "sku-book": 100_000, "sku-chair": 100_000,
                 "sku-desk": 100_000, "sku-lamp": 100_000, "sku-sold-out": 0}

SCHEMA = """
CREATE TABLE IF NOT EXISTS stock (sku TEXT PRIMARY KEY, initial INTEGER NOT NULL, available INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS reservations (
    order_id TEXT PRIMARY KEY, items TEXT NOT NULL, status TEXT NOT NULL, reason TEXT);
"""


def _wanted(items: list[dict[str, Any]]) -> dict[str, int]:
    wanted: dict[str, int] = {}
    for item in items:
        wanted[item["sku"]] = wanted.get(item["sku"], 0) + item["qty"]
    return wanted


def reserve(db: sqlite3.Connection, event: Event) -> list[Event]:
    order_id = event["order_id"]
    if db.execute("SELECT 1 FROM reservations WHERE order_id = ?", (order_id,)).fetchone():
        return []
    wanted = _wanted(event["items"])
    short: list[dict[str, Any]] = []
    for sku, qty in sorted(wanted.items()):
        row = db.execute("SELECT available FROM stock WHERE sku = ?", (sku,)).fetchone()
        available = row["available"] if row else 0
        if available < qty:
            short.append({"sku": sku, "requested": qty, "available": available})
    if short:
        reason = "out of stock: " + ", ".join(s["sku"] for s in short)
        db.execute("INSERT INTO reservations VALUES (?, ?, 'FAILED', ?)", (order_id, json.dumps(event["items"]), reason))
        return [new_event("inventory.failed", order_id, caused_by=event, reason=reason, short=short)]
    for sku, qty in wanted.items():
        db.execute("UPDATE stock SET available = available - ? WHERE sku = ?", (qty, sku))
    db.execute("INSERT INTO reservations VALUES (?, ?, 'RESERVED', NULL)", (order_id, json.dumps(event["items"])))
    if BUG == "field_rename":
        # The bug: a refactor renamed the field; shipping's contract still requires `address`.
        return [new_event("inventory.reserved", order_id, caused_by=event, items=event["items"],
                          shipping_address=event["address"])]
    return [new_event("inventory.reserved", order_id, caused_by=event, items=event["items"],
                      address=event["address"])]


def release(db: sqlite3.Connection, event: Event) -> list[Event]:
    row = db.execute("SELECT * FROM reservations WHERE order_id = ?", (event["order_id"],)).fetchone()
    if row is None or row["status"] != "RESERVED":
        return []
    items = json.loads(row["items"])
    for sku, qty in _wanted(items).items():
        db.execute("UPDATE stock SET available = available + ? WHERE sku = ?", (qty, sku))
    db.execute("UPDATE reservations SET status = 'RELEASED', reason = ? WHERE order_id = ?",
               (event["type"], event["order_id"]))
    return [new_event("inventory.released", event["order_id"], caused_by=event, items=items)]


def state(db: sqlite3.Connection) -> dict[str, Any]:
    stock = {row["sku"]: {"initial": row["initial"], "available": row["available"]}
             for row in db.execute("SELECT * FROM stock ORDER BY sku")}
    reservations = {row["order_id"]: {"items": json.loads(row["items"]), "status": row["status"],
                                      "reason": row["reason"]}
                    for row in db.execute("SELECT * FROM reservations ORDER BY rowid")}
    return {"stock": stock, "reservations": reservations}


service = ShopService(settings, schema=SCHEMA, state_fn=state)
service.db.executemany("INSERT OR IGNORE INTO stock VALUES (?, ?, ?)",
                       [(sku, qty, qty) for sku, qty in INITIAL_STOCK.items()])
service.on("payments.completed", reserve)
service.on("shipping.failed", release)

if __name__ == "__main__":
    service.run()
