"""Holding a seat or a room, and letting it go: the pattern flights and hotels share.

A :class:`Holds` keeps one row per trip in its own table. Two consumers work on it, so that a slow supplier
API on the hold side never delays a release:

* ``holds``: ``payment.charged`` -> ask the supplier (outside the transaction, for a whole batch of trips
  at once), then either hold (``<kind>.held``) or report it unavailable (``<kind>.unavailable``);
* ``releases``: the *other* branch's ``*.unavailable`` -> let the hold go (``<kind>.released``).

Because the two consumers run side by side, a release can be handled before the hold it undoes is
finished (the other branch failed fast while this supplier was still answering). The release then leaves
a note (status ``RELEASE_PENDING``), and the hold, when it lands, is released in the same transaction: the
branch succeeds after the saga was decided, and is undone.
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import Callable
from typing import Any

from trips_common import Event, Settings, TripService, new_event, now_iso, trip_of


class Holds:
    """Holds of one kind (``flight`` or ``hotel``) for one service."""

    def __init__(self, settings: Settings, kind: str, detail: str, latency: float,
                 refuse: Callable[[dict[str, Any]], str | None], released_by: str) -> None:
        self.kind, self.detail, self.latency, self.refuse = kind, detail, latency, refuse
        self.bug = settings.bug
        self.service = TripService(settings, state_fn=self.state, schema="""
CREATE TABLE IF NOT EXISTS holds (
    trip_id TEXT PRIMARY KEY, hold_id TEXT, status TEXT NOT NULL, detail TEXT, reason TEXT, updated_at TEXT NOT NULL);
""")
        # early_hold: "so that the seat is not lost while the bank thinks", flights holds as soon as the trip is
        # approved, instead of once it is paid.
        trigger = "risk.approved" if self.bug == "early_hold" and kind == "flight" else "payment.charged"
        self.service.on(trigger, self.hold, group="holds", concurrent=True, prepare=self.ask_supplier)
        self.service.on(released_by, self.release, group="releases")

    async def ask_supplier(self, event: Event) -> str | None:
        """The supplier's answer (simulated latency): None if it can hold, else why not."""
        await asyncio.sleep(self.latency)
        return self.refuse(event["data"][self.detail])

    def _row(self, db: sqlite3.Connection, trip_id: str) -> sqlite3.Row | None:
        row: sqlite3.Row | None = db.execute("SELECT * FROM holds WHERE trip_id = ?", (trip_id,)).fetchone()
        return row

    def _put(self, db: sqlite3.Connection, trip_id: str, status: str, hold_id: str | None = None,
             detail: Any = None, reason: str | None = None) -> None:
        db.execute("INSERT INTO holds VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (trip_id) DO UPDATE SET "
                   "hold_id = COALESCE(excluded.hold_id, hold_id), status = excluded.status, "
                   "detail = COALESCE(excluded.detail, detail), reason = COALESCE(excluded.reason, reason), "
                   "updated_at = excluded.updated_at",
                   (trip_id, hold_id, status, None if detail is None else str(detail), reason, now_iso()))

    def hold(self, db: sqlite3.Connection, event: Event, refusal: str | None) -> list[Event]:
        trip_id = trip_of(event)
        row = self._row(db, trip_id)
        if row is not None and row["status"] != "RELEASE_PENDING":
            return []  # one hold per trip
        if refusal is not None:
            self._put(db, trip_id, "UNAVAILABLE", reason=refusal)
            return [new_event(f"{self.kind}.unavailable", self.service.settings.name, trip_id, caused_by=event,
                              reason=refusal)]
        hold_id = str(uuid.uuid4())
        held = new_event(f"{self.kind}.held", self.service.settings.name, trip_id, caused_by=event, hold_id=hold_id)
        if row is not None:  # the saga was decided while we were asking: hold, and let go at once
            self._put(db, trip_id, "RELEASED", hold_id, event["data"][self.detail], row["reason"])
            return [held, new_event(f"{self.kind}.released", self.service.settings.name, trip_id, caused_by=event,
                                    hold_id=hold_id, reason=row["reason"])]
        self._put(db, trip_id, "HELD", hold_id, event["data"][self.detail])
        return [held]

    def release(self, db: sqlite3.Connection, event: Event) -> list[Event]:
        trip_id = trip_of(event)
        row = self._row(db, trip_id)
        reason = f"{event['type']}: {event['data'].get('reason', 'no reason given')}"
        if row is None:
            if self.bug == "lost_release" and self.kind == "hotel":
                # The bug: "nothing held, nothing to release" -- and the hold that is still on its way is
                # never released.
                return []
            self._put(db, trip_id, "RELEASE_PENDING", reason=reason)
            return []
        if row["status"] != "HELD":
            return []
        self._put(db, trip_id, "RELEASED", reason=reason)
        return [new_event(f"{self.kind}.released", self.service.settings.name, trip_id, caused_by=event,
                          hold_id=row["hold_id"], reason=reason)]

    def state(self, db: sqlite3.Connection) -> dict[str, Any]:
        return {"holds": {row["trip_id"]: {"hold_id": row["hold_id"], "status": row["status"],
                                           "reason": row["reason"]}
                          for row in db.execute("SELECT * FROM holds ORDER BY rowid")}}
