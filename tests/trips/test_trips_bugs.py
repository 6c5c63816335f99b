"""Each seeded bug of the trips example, shown for real: under the conditions that trigger it the buggy system
reaches a wrong outcome, while the correct system, under the same conditions, does not. (Catching the bug
is sagaproof's job, see test_trips_run.py; these tests only prove there is something to catch.)"""

from __future__ import annotations

import pytest


def env(bug: str | None) -> dict[str, str]:
    return {"TRIPS_BUG": bug} if bug else {}


@pytest.mark.parametrize("bug", [None, "early_confirm"], ids=["clean", "early_confirm"])
def test_early_confirm_confirms_a_trip_whose_hotel_then_fails(make_trips, bug):
    trips = make_trips(env(bug))
    trip_id = trips.book("hotel_unavailable")
    trips.wait_events(trip_id, "payment.refunded")
    trips.wait_idle()
    outcomes = [s for s in trips.subjects(trip_id) if s in ("trip.confirmed", "payment.refunded")]
    assert outcomes == (["trip.confirmed", "payment.refunded"] if bug else ["payment.refunded"])
    assert trips.trips()[trip_id]["status"] == ("CONFIRMED" if bug else "CANCELLED")


@pytest.mark.parametrize("bug", [None, "early_hold"], ids=["clean", "early_hold"])
def test_early_hold_holds_a_seat_before_the_trip_is_paid(make_trips, bug):
    # No fault: the flaky bank's first answer times out, so the charge comes 0.3 s after the approval.
    trips = make_trips(env(bug))
    trip_id = trips.book("flaky_bank")
    assert trips.wait_terminal([trip_id])[trip_id]["status"] == "CONFIRMED"
    subjects = trips.subjects(trip_id)
    assert (subjects.index("flight.held") < subjects.index("payment.charged")) == bool(bug)


@pytest.mark.parametrize("bug", [None, "lost_release"], ids=["clean", "lost_release"])
def test_lost_release_keeps_the_room_of_a_trip_whose_flight_failed_first(make_trips, bug):
    # No fault: the flight fails in milliseconds while the hotel takes 150 ms to hold the room, so the
    # release request reaches hotels before the hold it must undo.
    trips = make_trips(env(bug))
    trip_id = trips.book("flight_unavailable")
    subjects = trips.wait_events(trip_id, "payment.refunded", "hotel.held")
    assert subjects.index("flight.unavailable") < subjects.index("hotel.held")  # the branch lands after the abort
    trips.wait_idle()
    assert trips.trips()[trip_id]["status"] == "CANCELLED"
    assert trips.state("hotels")["holds"][trip_id]["status"] == ("HELD" if bug else "RELEASED")
    assert ("hotel.released" in trips.subjects(trip_id)) == (not bug)


@pytest.mark.parametrize("bug", [None, "retry_new_key"], ids=["clean", "retry_new_key"])
def test_retry_new_key_charges_a_flaky_banks_trip_twice(make_trips, bug):
    trips = make_trips(env(bug))
    trip_id = trips.book("flaky_bank")
    assert trips.wait_terminal([trip_id])[trip_id]["status"] == "CONFIRMED"
    trips.wait_idle()
    assert trips.subjects(trip_id).count("payment.failed") == 1  # the first answer timed out either way
    assert trips.subjects(trip_id).count("payment.charged") == 1
    assert len(trips.state("payments")["bank"][trip_id]) == (2 if bug else 1)


@pytest.mark.parametrize("bug", [None, "lost_while_away"], ids=["clean", "lost_while_away"])
def test_lost_while_away_never_screens_trips_requested_while_risk_was_down(make_trips, bug):
    trips = make_trips(env(bug))
    trips["risk"].kill()
    trip_ids = [trips.book("confirmed", n) for n in range(3)]
    for trip_id in trip_ids:
        trips.wait_events(trip_id, "trip.requested")
    trips["risk"].start()
    if bug:
        # The requests sit in the stream but nothing will deliver them to risk again: once every durable
        # consumer has drained, nothing more can happen to them.
        trips.wait_idle()
        assert trips.state("risk")["processed_events"] == 0
        assert {trips.trips()[t]["status"] for t in trip_ids} == {"PENDING"}
        assert all(trips.subjects(t) == ["trip.requested"] for t in trip_ids)
    else:
        assert {trips.wait_terminal(trip_ids)[t]["status"] for t in trip_ids} == {"CONFIRMED"}

