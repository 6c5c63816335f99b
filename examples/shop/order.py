"""The order service: takes orders over HTTP and owns each order's outcome.

``POST /orders`` stores the order as PENDING and publishes ``orders.created`` (through the outbox, so
an order is accepted even while NATS is unreachable).  It then listens to the saga's outcome events
and decides the order once:

* ``shipping.scheduled``                                      -> COMPLETED, publishes ``orders.completed``
* ``payments.failed``, ``inventory.failed``, ``shipping.failed`` -> CANCELLED with the failure as
  reason, publishes ``orders.cancelled``

Compensations (refund, stock release) are run by the services that own those resources; the order
service does not wait for them.  Its HTTP API is described by the OpenAPI document at
``/openapi.json``.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import time
import uuid
from typing import Any

from shop_common import (
    Event,
    HttpResult,
    Request,
    Settings,
    ShopService,
    add_to_outbox,
    new_event,
    now_iso,
    transaction,
)

settings = Settings.from_env("order", default_port=8001)
BUG = settings.bug

SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    order_id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, amount INTEGER NOT NULL,
    items TEXT NOT NULL, address TEXT NOT NULL, status TEXT NOT NULL, reason TEXT,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
"""

FAILURES = ["payments.failed", "inventory.failed", "shipping.failed"]

# ------------------------------------------------------------------------------- request checks

ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
COUNTRY_RE = re.compile(r"[A-Z]{2}")
MAX_AMOUNT = 1_000_000_000
MAX_ITEMS = 20
MAX_QTY = 1000


class BadOrder(ValueError):
    """The request body is not a valid order; the message says which field and why."""


def _int(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise BadOrder(f"'{name}' must be an integer")
    if not low <= value <= high:
        raise BadOrder(f"'{name}' must be between {low} and {high}")
    return int(value)


def _str(value: Any, name: str, max_len: int, pattern: re.Pattern[str] | None = None) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= max_len:
        raise BadOrder(f"'{name}' must be a string of 1 to {max_len} characters")
    if pattern is not None and not pattern.fullmatch(value):
        raise BadOrder(f"'{name}' must match {pattern.pattern}")
    return value


def _object(value: Any, name: str, required: set[str], optional: frozenset[str] = frozenset()) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadOrder(f"'{name}' must be an object")
    missing = required - value.keys()
    if missing:
        raise BadOrder(f"'{name}' is missing {', '.join(sorted(missing))}")
    unknown = value.keys() - required - optional
    if unknown:
        raise BadOrder(f"'{name}' has unknown field(s) {', '.join(sorted(unknown))}")
    return value


def parse_order(body: Any) -> dict[str, Any]:
    """Check a ``POST /orders`` body against the OpenAPI schema and return the normalised order."""
    body = _object(body, "order", {"customer_id", "amount", "items", "address"}, frozenset({"order_id"}))
    items = body["items"]
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_ITEMS:
        raise BadOrder(f"'items' must be a list of 1 to {MAX_ITEMS} items")
    address = _object(body["address"], "address", {"street", "city", "country"})
    return {
        "order_id": _str(body["order_id"], "order_id", 64, ID_RE) if "order_id" in body else None,
        "customer_id": _str(body["customer_id"], "customer_id", 64),
        "amount": _int(body["amount"], "amount", 1, MAX_AMOUNT),
        "items": [
            {"sku": _str(item["sku"], "sku", 64), "qty": _int(item["qty"], "qty", 1, MAX_QTY)}
            for item in (_object(i, "item", {"sku", "qty"}) for i in items)
        ],
        "address": {
            "street": _str(address["street"], "street", 200),
            "city": _str(address["city"], "city", 100),
            "country": _str(address["country"], "country", 2, COUNTRY_RE),
        },
    }


# ----------------------------------------------------------------------------------------- http


def _order_json(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "order_id": row["order_id"], "status": row["status"], "reason": row["reason"],
        "customer_id": row["customer_id"], "amount": row["amount"],
        "items": json.loads(row["items"]), "address": json.loads(row["address"]),
        "created_at": row["created_at"], "updated_at": row["updated_at"],
    }


def create_order(req: Request) -> HttpResult:
    """POST /orders: store the order and queue ``orders.created`` in one transaction."""
    try:
        order = parse_order(req.json())
    except BadOrder as exc:
        return 400, {"error": str(exc)}
    except ValueError:
        return 400, {"error": "the request body must be a JSON object"}
    # The order's id: the body's order_id, else the request's Idempotency-Key (a client's retry of a request whose
    # answer it never got names the same order), else a new one.
    key = req.headers.get("idempotency-key", "")
    order_id = order["order_id"] or (key if ID_RE.fullmatch(key) else None) or str(uuid.uuid4())
    with transaction(service.db) as db:
        row = db.execute("SELECT * FROM orders WHERE order_id = ?", (order_id,)).fetchone()
        if row is not None:  # a retried request: answer with what the first one created
            return 200, _order_json(row)
        now = now_iso()
        db.execute(
            "INSERT INTO orders VALUES (?, ?, ?, ?, ?, 'PENDING', NULL, ?, ?)",
            (order_id, order["customer_id"], order["amount"], json.dumps(order["items"]),
             json.dumps(order["address"]), now, now))
        event = new_event("orders.created", order_id, customer_id=order["customer_id"],
                          amount=order["amount"], items=order["items"], address=order["address"])
        add_to_outbox(db, [event])
        row = db.execute("SELECT * FROM orders WHERE order_id = ?", (order_id,)).fetchone()
    service.relay.kick()
    return 201, _order_json(row)


def get_order(req: Request) -> HttpResult:
    if BUG == "lost_status":
        flush_statuses(service.db, in_transaction=False)
    row = service.db.execute("SELECT * FROM orders WHERE order_id = ?", (req.params["order_id"],)).fetchone()
    if row is None:
        return 404, {"error": f"no order {req.params['order_id']!r}"}
    order = _order_json(row)
    if BUG == "lost_status" and order["order_id"] in UNWRITTEN:
        order["status"], order["reason"] = UNWRITTEN[order["order_id"]]
    return 200, order


def openapi(_req: Request) -> HttpResult:
    return 200, OPENAPI


# ------------------------------------------------------------------------------------- outcomes


# lost_status: a "write-behind" optimisation. A decision queues its outcome event in the transaction as it
# should, but the order's new status waits in memory and is written to the table in batches, every 30 s;
# reads see it (they look in memory first), so all looks well until the service crashes: the batch is lost,
# the events it answered were acknowledged, and those orders stay PENDING for ever.
UNWRITTEN: dict[str, tuple[str, str | None]] = {}
FLUSH_EVERY = float(os.environ.get("SHOP_STATUS_FLUSH_S", "30"))
_last_flush = [time.monotonic()]  # when the batch now in memory was opened


def flush_statuses(db: sqlite3.Connection, *, in_transaction: bool) -> None:
    """lost_status: write the batch of decided statuses to the table once it is FLUSH_EVERY seconds old."""
    if not UNWRITTEN or time.monotonic() - _last_flush[0] < FLUSH_EVERY:
        return
    batch = list(UNWRITTEN.items())
    rows = [(status, reason, now_iso(), order_id) for order_id, (status, reason) in batch]
    if in_transaction:
        db.executemany("UPDATE orders SET status = ?, reason = ?, updated_at = ? WHERE order_id = ?", rows)
    else:
        with transaction(db):
            db.executemany("UPDATE orders SET status = ?, reason = ?, updated_at = ? WHERE order_id = ?", rows)
    for order_id, decided in batch:
        if UNWRITTEN.get(order_id) == decided:
            del UNWRITTEN[order_id]
    _last_flush[0] = time.monotonic()


def _decide(db: sqlite3.Connection, event: Event, status: str, reason: str | None) -> list[Event]:
    row = db.execute("SELECT status FROM orders WHERE order_id = ?", (event["order_id"],)).fetchone()
    if row is None:
        return []  # not one of ours
    current = row["status"]
    if BUG == "lost_status":
        flush_statuses(db, in_transaction=True)
        current = UNWRITTEN.get(event["order_id"], (current, None))[0]
        if current != "PENDING":
            return []
        if not UNWRITTEN:
            _last_flush[0] = time.monotonic()  # a new batch opens
        UNWRITTEN[event["order_id"]] = (status, reason)
        if status == "COMPLETED":
            return [new_event("orders.completed", event["order_id"], caused_by=event)]
        return [new_event("orders.cancelled", event["order_id"], caused_by=event, reason=reason)]
    if BUG == "early_complete":
        # The bug: "completed" is declared on inventory.reserved, and the guard below only stops a
        # repeat of the same decision, so a later shipping.failed flips COMPLETED to CANCELLED.
        if current == status:
            return []
    elif current != "PENDING":
        return []  # decided already: an order's outcome never changes
    db.execute("UPDATE orders SET status = ?, reason = ?, updated_at = ? WHERE order_id = ?",
               (status, reason, now_iso(), event["order_id"]))
    if status == "COMPLETED":
        return [new_event("orders.completed", event["order_id"], caused_by=event)]
    return [new_event("orders.cancelled", event["order_id"], caused_by=event, reason=reason)]


def on_failure(db: sqlite3.Connection, event: Event) -> list[Event]:
    reason = f"{event['type']}: {event.get('reason', 'no reason given')}"
    return _decide(db, event, "CANCELLED", reason)


def on_scheduled(db: sqlite3.Connection, event: Event) -> list[Event]:
    return _decide(db, event, "COMPLETED", None)


def state(db: sqlite3.Connection) -> dict[str, Any]:
    orders = {row["order_id"]: _order_json(row) for row in db.execute("SELECT * FROM orders ORDER BY created_at")}
    for order_id, (status, reason) in UNWRITTEN.items():  # lost_status: what it shows while it runs
        if order_id in orders:
            orders[order_id]["status"], orders[order_id]["reason"] = status, reason
    counts: dict[str, int] = {}
    for order in orders.values():
        counts[order["status"]] = counts.get(order["status"], 0) + 1
    return {"orders": orders, "counts": counts}


# --------------------------------------------------------------------------------------- openapi

_ERROR = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}
_ITEM = {
    "type": "object", "additionalProperties": False, "required": ["sku", "qty"],
    "properties": {"sku": {"type": "string", "minLength": 1, "maxLength": 64},
                   "qty": {"type": "integer", "minimum": 1, "maximum": MAX_QTY}},
}
_ADDRESS = {
    "type": "object", "additionalProperties": False, "required": ["street", "city", "country"],
    "properties": {"street": {"type": "string", "minLength": 1, "maxLength": 200},
                   "city": {"type": "string", "minLength": 1, "maxLength": 100},
                   "country": {"type": "string", "pattern": "^[A-Z]{2}$",
                               "description": "ISO 3166-1 alpha-2 code"}},
}
_ORDER_ID = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}
_NEW_ORDER = {
    "type": "object", "additionalProperties": False, "required": ["customer_id", "amount", "items", "address"],
    "properties": {
        "order_id": {**_ORDER_ID, "description": "Optional idempotency key: a retry with the same "
                     "order_id returns the order created first, unchanged."},
        "customer_id": {"type": "string", "minLength": 1, "maxLength": 64},
        "amount": {"type": "integer", "minimum": 1, "maximum": MAX_AMOUNT, "description": "Total in cents"},
        "items": {"type": "array", "minItems": 1, "maxItems": MAX_ITEMS, "items": _ITEM},
        "address": _ADDRESS,
    },
}
_ORDER = {
    "type": "object",
    "required": ["order_id", "status", "reason", "customer_id", "amount", "items", "address",
                 "created_at", "updated_at"],
    "properties": {
        "order_id": {"type": "string"},
        "status": {"type": "string", "enum": ["PENDING", "COMPLETED", "CANCELLED"]},
        "reason": {"type": ["string", "null"]},
        "customer_id": {"type": "string"},
        "amount": {"type": "integer"},
        "items": {"type": "array", "items": _ITEM},
        "address": _ADDRESS,
        "created_at": {"type": "string"},
        "updated_at": {"type": "string"},
    },
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "shop order service", "version": "1.0.0"},
    "paths": {
        "/orders": {"post": {
            "operationId": "createOrder",
            "summary": "Place an order; its outcome arrives later (poll GET /orders/{order_id}).",
            "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False, "schema": _ORDER_ID,
                            "description": "Names the order when the body has no order_id: a retry with the same "
                                           "key returns the order created first, unchanged."}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": _NEW_ORDER}}},
            "responses": {
                "201": {**_json(_ORDER, "The order was accepted as PENDING and orders.created queued."),
                        "links": {"GetOrder": {"operationId": "getOrder",
                                               "parameters": {"order_id": "$response.body#/order_id"}}}},
                "200": _json(_ORDER, "An order with this order_id exists already; it is returned unchanged."),
                "400": _json(_ERROR, "The body is not a valid order."),
            },
        }},
        "/orders/{order_id}": {"get": {
            "operationId": "getOrder",
            "parameters": [{"name": "order_id", "in": "path", "required": True, "schema": _ORDER_ID}],
            "responses": {"200": _json(_ORDER, "The order."), "404": _json(_ERROR, "No such order.")},
        }},
        "/health": {"get": {
            "operationId": "health",
            "responses": {
                "200": _json({"type": "object"}, "Ready: connected to NATS and consuming."),
                "503": _json({"type": "object"}, "Still starting."),
            },
        }},
    },
}

# ----------------------------------------------------------------------------------------- wiring

service = ShopService(
    settings, schema=SCHEMA, state_fn=state,
    # lost_terminal: outcomes come from a plain core NATS subscription, not the durable consumer,
    # so whatever is published while this service is down or cut off is never seen.
    delivery="core" if BUG == "lost_terminal" else "durable",
)
for subject in FAILURES:
    service.on(subject, on_failure)
service.on("inventory.reserved" if BUG == "early_complete" else "shipping.scheduled", on_scheduled)
if BUG == "early_complete":
    service.on("shipping.scheduled", on_scheduled)
service.route("POST", "/orders", create_order)
service.route("GET", "/orders/{order_id}", get_order)
service.route("GET", "/openapi.json", openapi)

if __name__ == "__main__":
    service.run()
