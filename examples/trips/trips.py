"""The trips service: takes trip bookings over HTTP and owns each trip's outcome.

``POST /trips`` stores the trip as PENDING and publishes ``trip.requested`` (through the outbox, so a trip is
accepted even while NATS is unreachable). It then follows the saga and decides the trip once:

* ``risk.rejected``                     -> REJECTED, publishes ``trip.rejected`` (the saga's end)
* ``flight.held`` and ``hotel.held``    -> CONFIRMED once both are held (the fan-in), publishes
  ``trip.confirmed`` (the saga's end)
* ``payment.refunded``                  -> CANCELLED; publishes nothing: payments refunds last, and its
  ``payment.refunded`` is the saga's end

Releasing holds and refunding are done by the services that own them; trips does not wait for them.
"""

from __future__ import annotations

import json
import re
import sqlite3
import uuid
from typing import Any

from trips_common import (
    Event,
    HttpResult,
    Request,
    Settings,
    TripService,
    add_to_outbox,
    new_event,
    now_iso,
    transaction,
    trip_of,
)

settings = Settings.from_env("trips", default_port=8101)
BUG = settings.bug

SCHEMA = """
CREATE TABLE IF NOT EXISTS trips (
    trip_id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, amount INTEGER NOT NULL, flight TEXT NOT NULL,
    hotel TEXT NOT NULL, card TEXT NOT NULL, status TEXT NOT NULL, reason TEXT,
    flight_held INTEGER NOT NULL DEFAULT 0, hotel_held INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
"""

ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
IATA_RE = re.compile(r"[A-Z]{3}")
DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")


class BadTrip(ValueError):
    """The request body is not a valid trip; the message says which field and why."""


def _field(obj: Any, name: str, kind: type, where: str = "") -> Any:
    if not isinstance(obj, dict) or name not in obj:
        raise BadTrip(f"'{where}{name}' is missing")
    value = obj[name]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise BadTrip(f"'{where}{name}' must be a{'n integer' if kind is int else ' string'}")
    return value


def _match(value: str, pattern: re.Pattern[str], name: str) -> str:
    if not pattern.fullmatch(value):
        raise BadTrip(f"'{name}' must match {pattern.pattern}")
    return value


def parse_trip(body: Any) -> dict[str, Any]:
    """Check a ``POST /trips`` body and return the normalised trip."""
    if not isinstance(body, dict):
        raise BadTrip("the body must be a JSON object")
    amount = _field(body, "amount", int)
    if not 1 <= amount <= 10_000_000:
        raise BadTrip("'amount' must be between 1 and 10000000 (cents)")
    flight, hotel, card = body.get("flight"), body.get("hotel"), body.get("card")
    nights = _field(hotel, "nights", int, "hotel.")
    if not 1 <= nights <= 60:
        raise BadTrip("'hotel.nights' must be between 1 and 60")
    return {
        "trip_id": _match(_field(body, "trip_id", str), ID_RE, "trip_id") if "trip_id" in body else None,
        "customer_id": _field(body, "customer_id", str),
        "amount": amount,
        "flight": {"from": _match(_field(flight, "from", str, "flight."), IATA_RE, "flight.from"),
                   "to": _match(_field(flight, "to", str, "flight."), IATA_RE, "flight.to"),
                   "date": _match(_field(flight, "date", str, "flight."), DATE_RE, "flight.date")},
        "hotel": {"city": _field(hotel, "city", str, "hotel."), "nights": nights},
        "card": {"bank": _field(card, "bank", str, "card."), "last4": _field(card, "last4", str, "card.")},
    }


def _trip_json(row: sqlite3.Row) -> dict[str, Any]:
    return {"trip_id": row["trip_id"], "status": row["status"], "reason": row["reason"],
            "customer_id": row["customer_id"], "amount": row["amount"], "flight": json.loads(row["flight"]),
            "hotel": json.loads(row["hotel"]), "created_at": row["created_at"], "updated_at": row["updated_at"]}


def create_trip(req: Request) -> HttpResult:
    """POST /trips: store the trip and queue ``trip.requested`` in one transaction."""
    try:
        trip = parse_trip(req.json())
    except BadTrip as exc:
        return 400, {"error": str(exc)}
    except ValueError:
        return 400, {"error": "the request body must be a JSON object"}
    trip_id = trip["trip_id"] or str(uuid.uuid4())
    with transaction(service.db) as db:
        row = db.execute("SELECT * FROM trips WHERE trip_id = ?", (trip_id,)).fetchone()
        if row is not None:  # a retried request: answer with what the first one created
            return 200, _trip_json(row)
        now = now_iso()
        db.execute("INSERT INTO trips (trip_id, customer_id, amount, flight, hotel, card, status, created_at, "
                   "updated_at) VALUES (?, ?, ?, ?, ?, ?, 'PENDING', ?, ?)",
                   (trip_id, trip["customer_id"], trip["amount"], json.dumps(trip["flight"]),
                    json.dumps(trip["hotel"]), json.dumps(trip["card"]), now, now))
        add_to_outbox(db, [new_event("trip.requested", "trips", trip_id, customer_id=trip["customer_id"],
                                     amount=trip["amount"], flight=trip["flight"], hotel=trip["hotel"],
                                     card=trip["card"])])
        row = db.execute("SELECT * FROM trips WHERE trip_id = ?", (trip_id,)).fetchone()
    service.relay.kick()
    return 201, _trip_json(row)


def get_trip(req: Request) -> HttpResult:
    row = service.db.execute("SELECT * FROM trips WHERE trip_id = ?", (req.params["trip_id"],)).fetchone()
    if row is None:
        return 404, {"error": f"no trip {req.params['trip_id']!r}"}
    return 200, _trip_json(row)


# ------------------------------------------------------------------------------------- outcomes


def _row(db: sqlite3.Connection, event: Event) -> sqlite3.Row | None:
    row: sqlite3.Row | None = db.execute("SELECT * FROM trips WHERE trip_id = ?", (trip_of(event),)).fetchone()
    return row


def _set(db: sqlite3.Connection, trip_id: str, status: str, reason: str | None) -> None:
    db.execute("UPDATE trips SET status = ?, reason = ?, updated_at = ? WHERE trip_id = ?",
               (status, reason, now_iso(), trip_id))


def on_rejected(db: sqlite3.Connection, event: Event) -> list[Event]:
    row = _row(db, event)
    if row is None or row["status"] != "PENDING":
        return []
    reason = f"risk.rejected: {event['data'].get('reason', 'no reason given')}"
    _set(db, row["trip_id"], "REJECTED", reason)
    return [new_event("trip.rejected", "trips", row["trip_id"], caused_by=event, reason=reason)]


def on_held(db: sqlite3.Connection, event: Event) -> list[Event]:
    """The fan-in: a trip is confirmed once its flight and its hotel are both held."""
    row = _row(db, event)
    if row is None:
        return []
    column = "flight_held" if event["type"] == "flight.held" else "hotel_held"
    db.execute(f"UPDATE trips SET {column} = 1 WHERE trip_id = ?", (row["trip_id"],))
    row = _row(db, event)
    assert row is not None
    if BUG == "early_confirm":
        # The bug: the confirmation rule predates hotel bookings; hotels became a parallel branch and the
        # rule was never updated, so a held flight alone confirms the trip.
        both = bool(row["flight_held"])
    else:
        both = bool(row["flight_held"] and row["hotel_held"])
    if BUG == "status_flip":
        # The bug: the page shows a trip as booked as soon as one hold is in ("the customer wants to see
        # progress"); the confirmation event still waits for both, but if the other hold fails the refund
        # later overwrites CONFIRMED with CANCELLED.
        early = row["status"] == "CONFIRMED" and row["reason"] == "one hold in"
        if not both:
            if row["status"] == "PENDING":
                _set(db, row["trip_id"], "CONFIRMED", "one hold in")
            return []
        if row["status"] != "PENDING" and not early:
            return []
    elif not both or row["status"] != "PENDING":
        return []
    _set(db, row["trip_id"], "CONFIRMED", None)
    return [new_event("trip.confirmed", "trips", row["trip_id"], caused_by=event)]


def on_refunded(db: sqlite3.Connection, event: Event) -> list[Event]:
    row = _row(db, event)
    if row is not None and (row["status"] == "PENDING" or (BUG == "status_flip" and row["status"] == "CONFIRMED")):
        _set(db, row["trip_id"], "CANCELLED", event["data"].get("reason") or "refunded")
    return []  # payment.refunded itself ends the saga


def state(db: sqlite3.Connection) -> dict[str, Any]:
    trips = {row["trip_id"]: _trip_json(row) for row in db.execute("SELECT * FROM trips ORDER BY created_at")}
    counts: dict[str, int] = {}
    for trip in trips.values():
        counts[trip["status"]] = counts.get(trip["status"], 0) + 1
    return {"trips": trips, "counts": counts}


service = TripService(settings, schema=SCHEMA, state_fn=state)
service.on("risk.rejected", on_rejected)
service.on("flight.held", on_held)
service.on("hotel.held", on_held)
service.on("payment.refunded", on_refunded)
service.route("POST", "/trips", create_trip)
service.route("GET", "/trips/{trip_id}", get_trip)

if __name__ == "__main__":
    service.run()
