"""The risk service: screens every requested trip before anything is charged.

* ``trip.requested``: score the trip (a model call, simulated: ``TRIPS_RISK_MS``, default 20 ms, outside the
  transaction). A trip above the customer's limit (``TRIPS_LIMIT`` cents, default 500000) is rejected
  (``risk.rejected``); any other is approved (``risk.approved``, carrying what payments, flights and hotels
  need).

Screening is a decision: it changes nothing, so there is nothing to undo when a later step fails.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from typing import Any

from trips_common import Event, Settings, TripService, env_ms, new_event, now_iso, trip_of

settings = Settings.from_env("risk", default_port=8102)
BUG = settings.bug
LIMIT = int(os.environ.get("TRIPS_LIMIT", "500000"))
SCORING = env_ms("TRIPS_RISK_MS", 20)

SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
    trip_id TEXT PRIMARY KEY, decision TEXT NOT NULL, reason TEXT, decided_at TEXT NOT NULL);
"""


async def score(event: Event) -> None:
    """The scoring model's round trip (simulated)."""
    await asyncio.sleep(SCORING)


def screen(db: sqlite3.Connection, event: Event, _scored: None = None) -> list[Event]:
    trip_id, data = trip_of(event), event["data"]
    if BUG != "double_screen" and db.execute("SELECT 1 FROM decisions WHERE trip_id = ?", (trip_id,)).fetchone():
        return []  # decided already
    if data["amount"] > LIMIT:
        reason = f"amount {data['amount']} is above the limit {LIMIT}"
        db.execute("INSERT OR REPLACE INTO decisions VALUES (?, 'REJECTED', ?, ?)", (trip_id, reason, now_iso()))
        return [new_event("risk.rejected", "risk", trip_id, caused_by=event, reason=reason)]
    db.execute("INSERT OR REPLACE INTO decisions VALUES (?, 'APPROVED', NULL, ?)", (trip_id, now_iso()))
    return [new_event("risk.approved", "risk", trip_id, caused_by=event, customer_id=data["customer_id"],
                      amount=data["amount"], flight=data["flight"], hotel=data["hotel"], card=data["card"])]


def state(db: sqlite3.Connection) -> dict[str, Any]:
    return {"limit": LIMIT, "decisions": {row["trip_id"]: {"decision": row["decision"], "reason": row["reason"]}
                                          for row in db.execute("SELECT * FROM decisions ORDER BY rowid")}}


service = TripService(settings, schema=SCHEMA, state_fn=state)
# lost_while_away: "a trip must never be scored twice", so risk takes trips from a plain NATS subscription,
# which delivers at most once -- and every trip requested while risk is down or cut off is never screened.
service.on("trip.requested", screen, concurrent=True, prepare=score,
           delivery="core" if BUG == "lost_while_away" else "durable")

if __name__ == "__main__":
    service.run()
