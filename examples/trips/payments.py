"""The payments service: charges approved trips (retrying a flaky bank) and refunds them when a hold fails.

* ``risk.approved``: capture the trip's amount at the customer's bank, with the trip as idempotency key.
  The bank is an outside system (simulated: its own SQLite file, ``TRIPS_BANK_MS``, default 10 ms per call).
  Some banks are flaky (``card.bank == "flaky"``): the first capture of a trip goes through but its answer
  times out. Payments then publishes ``payment.failed`` (``retriable: true``) and tries again a moment later;
  the bank recognises the key and answers with the capture it made, so the retry charges nothing more, and
  payments publishes ``payment.charged``.
* ``flight.unavailable`` or ``hotel.unavailable``: refund the trip at the bank and publish
  ``payment.refunded``, once. Nothing charged, or refunded already: nothing to do. ``payment.refunded`` ends
  the saga: trips marks the trip CANCELLED when it sees it.

State (``GET /state``): per trip, the payment's status and failed attempts, and the bank's captures.
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from typing import Any

from trips_common import Event, Settings, Transient, TripService, env_ms, new_event, now_iso, open_db, trip_of

settings = Settings.from_env("payments", default_port=8103)
BUG = settings.bug
BANK_LATENCY = env_ms("TRIPS_BANK_MS", 10)

SCHEMA = """
CREATE TABLE IF NOT EXISTS payments (
    trip_id TEXT PRIMARY KEY, amount INTEGER NOT NULL, status TEXT NOT NULL, payment_id TEXT,
    attempts INTEGER NOT NULL DEFAULT 0, reason TEXT, updated_at TEXT NOT NULL);
"""

# ---------------------------------------------------------------------------- the bank (outside world)

BANK_SCHEMA = """
CREATE TABLE IF NOT EXISTS captures (
    key TEXT PRIMARY KEY, capture_id TEXT NOT NULL, trip_id TEXT NOT NULL, amount INTEGER NOT NULL,
    refunded INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS answered_late (trip_id TEXT PRIMARY KEY);
"""
bank = open_db(settings.data_dir / "bank.db", BANK_SCHEMA)


async def bank_capture(key: str, trip_id: str, amount: int, flaky: bool) -> str:
    """Capture ``amount`` for ``trip_id`` under idempotency ``key``; the same key answers the same capture.
    A flaky bank's first capture of a trip goes through, then its answer times out."""
    await asyncio.sleep(BANK_LATENCY)
    row = bank.execute("SELECT capture_id FROM captures WHERE key = ?", (key,)).fetchone()
    if row is not None:
        known: str = row["capture_id"]
        return known
    capture_id = str(uuid.uuid4())
    bank.execute("INSERT INTO captures (key, capture_id, trip_id, amount) VALUES (?, ?, ?, ?)",
                 (key, capture_id, trip_id, amount))
    if flaky and bank.execute("INSERT OR IGNORE INTO answered_late VALUES (?)", (trip_id,)).rowcount:
        raise Transient("the bank did not answer in time")
    return capture_id


async def bank_refund(trip_id: str) -> None:
    """Refund every capture of a trip (idempotent)."""
    await asyncio.sleep(BANK_LATENCY)
    bank.execute("UPDATE captures SET refunded = amount WHERE trip_id = ?", (trip_id,))


# ---------------------------------------------------------------------------------------- handlers


async def capture(event: Event) -> str:
    data = event["data"]
    trip_id = data["trip_id"]
    row = service.db.execute("SELECT attempts FROM payments WHERE trip_id = ?", (trip_id,)).fetchone()
    attempt = row["attempts"] if row else 0
    # retry_new_key: the key names the attempt, "so that the bank does not turn the retry away as a
    # duplicate" -- and the first attempt, which did go through, is charged again.
    key = f"{trip_id}/{attempt}" if BUG == "retry_new_key" else trip_id
    return await bank_capture(key, trip_id, data["amount"], data["card"]["bank"] == "flaky")


def charge(db: sqlite3.Connection, event: Event, capture_id: str) -> list[Event]:
    data = event["data"]
    trip_id = data["trip_id"]
    row = db.execute("SELECT status FROM payments WHERE trip_id = ?", (trip_id,)).fetchone()
    if row is not None and row["status"] != "RETRYING":
        return []  # charged (or refunded) already
    db.execute("INSERT INTO payments (trip_id, amount, status, payment_id, updated_at) VALUES (?, ?, 'CHARGED', ?, ?) "
               "ON CONFLICT (trip_id) DO UPDATE SET status = 'CHARGED', payment_id = excluded.payment_id, "
               "updated_at = excluded.updated_at", (trip_id, data["amount"], capture_id, now_iso()))
    return [new_event("payment.charged", "payments", trip_id, caused_by=event, payment_id=capture_id,
                      amount=data["amount"], flight=data["flight"], hotel=data["hotel"])]


def charge_failed(db: sqlite3.Connection, event: Event, exc: Exception) -> list[Event]:
    data = event["data"]
    trip_id = data["trip_id"]
    db.execute("INSERT INTO payments (trip_id, amount, status, attempts, reason, updated_at) "
               "VALUES (?, ?, 'RETRYING', 1, ?, ?) ON CONFLICT (trip_id) DO UPDATE SET attempts = attempts + 1, "
               "reason = excluded.reason, updated_at = excluded.updated_at",
               (trip_id, data["amount"], str(exc), now_iso()))
    attempt = db.execute("SELECT attempts FROM payments WHERE trip_id = ?", (trip_id,)).fetchone()["attempts"]
    return [new_event("payment.failed", "payments", trip_id, caused_by=event, attempt=attempt, reason=str(exc),
                      retriable=True)]


async def refund_at_bank(event: Event) -> None:
    await bank_refund(trip_of(event))


def refund(db: sqlite3.Connection, event: Event, _done: None = None) -> list[Event]:
    trip_id = trip_of(event)
    row = db.execute("SELECT * FROM payments WHERE trip_id = ?", (trip_id,)).fetchone()
    if row is None or row["status"] != "CHARGED":
        return []
    reason = f"{event['type']}: {event['data'].get('reason', 'no reason given')}"
    db.execute("UPDATE payments SET status = 'REFUNDED', reason = ?, updated_at = ? WHERE trip_id = ?",
               (reason, now_iso(), trip_id))
    return [new_event("payment.refunded", "payments", trip_id, caused_by=event, payment_id=row["payment_id"],
                      amount=row["amount"], reason=reason)]


def state(db: sqlite3.Connection) -> dict[str, Any]:
    payments = {row["trip_id"]: {"amount": row["amount"], "status": row["status"], "attempts": row["attempts"],
                                 "reason": row["reason"]}
                for row in db.execute("SELECT * FROM payments ORDER BY rowid")}
    captures: dict[str, list[dict[str, Any]]] = {}
    for row in bank.execute("SELECT * FROM captures ORDER BY rowid"):
        captures.setdefault(row["trip_id"], []).append(
            {"capture_id": row["capture_id"], "amount": row["amount"], "refunded": row["refunded"]})
    return {"payments": payments, "bank": captures}


service = TripService(settings, schema=SCHEMA, state_fn=state)
service.on("risk.approved", charge, group="charges", prepare=capture, transient=charge_failed)
for subject in ("flight.unavailable", "hotel.unavailable"):
    service.on(subject, refund, group="refunds", prepare=refund_at_bank)

if __name__ == "__main__":
    service.run()
