"""The trip bookings' invariants over the services' ``GET /state``, for sagaproof's ``[invariants]``.

Each function takes the running ``system`` and raises ``AssertionError`` naming every trip that breaks the
rule. Trips still PENDING are in flight and only checked for what can never be right (a second capture).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the harness hands each invariant the running system
    from sagaproof import System


def _state(system: System, service: str) -> dict[str, Any]:
    state: dict[str, Any] = system.services[service].http.get("/state").json()
    return state


def _fail(rule: str, problems: list[str]) -> None:
    if problems:
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise AssertionError(f"{rule}: {len(problems)} problem(s)\n  " + "\n  ".join(problems[:20]) + more)


def money_conserved(system: System) -> None:
    """The bank captured each trip at most once; a CONFIRMED trip keeps exactly its amount; a REJECTED or
    CANCELLED trip keeps nothing (refunded in full, or never charged)."""
    trips = _state(system, "trips")["trips"]
    bank = _state(system, "payments")["bank"]
    problems = []
    for trip_id, captures in bank.items():
        trip = trips.get(trip_id, {})
        status = trip.get("status", "UNKNOWN")
        kept = sum(c["amount"] - c["refunded"] for c in captures)
        if len(captures) > 1:
            problems.append(f"trip {trip_id} ({status}) was captured {len(captures)} times at the bank: "
                            f"{sum(c['amount'] for c in captures)} cents for an amount of {captures[0]['amount']}")
        elif status in ("REJECTED", "CANCELLED") and kept:
            problems.append(f"trip {trip_id} is {status} but the bank still holds {kept} cents of it")
        elif status == "CONFIRMED" and kept != trip["amount"]:
            problems.append(f"trip {trip_id} is CONFIRMED but the bank holds {kept} cents for {trip['amount']}")
    for trip_id, trip in trips.items():
        if trip["status"] == "CONFIRMED" and trip_id not in bank:
            problems.append(f"trip {trip_id} is CONFIRMED but was never charged")
    _fail("money is not conserved", problems)


def holds_released(system: System) -> None:
    """A CONFIRMED trip holds its seat and its room; a REJECTED or CANCELLED trip holds neither."""
    trips = _state(system, "trips")["trips"]
    problems = []
    for service, what in (("flights", "seat"), ("hotels", "room")):
        holds = _state(system, service)["holds"]
        for trip_id, trip in trips.items():
            status = holds.get(trip_id, {}).get("status")
            if trip["status"] == "CONFIRMED" and status != "HELD":
                problems.append(f"trip {trip_id} is CONFIRMED but its {what} is {status or 'not held'}")
            elif trip["status"] in ("REJECTED", "CANCELLED") and status == "HELD":
                problems.append(f"trip {trip_id} is {trip['status']} but its {what} is still held")
    _fail("holds are not released", problems)
