"""The trips example's system file and its plain modules: the saga is described the way its authors would
(and loads as they meant it), the workload reaches every path, and the invariants judge state correctly."""

from __future__ import annotations

import random
from collections import Counter
from types import SimpleNamespace

import pytest
from sagaproof.harness.config import load_callable, load_system_file
from trips_fixture import TRIPS_DIR, load_trips_module

workload = load_trips_module("workload")
invariants = load_trips_module("invariants")


def test_the_saga_loads_as_its_authors_meant_it():
    spec = load_system_file(TRIPS_DIR)
    saga = spec.sagas["booking"]
    assert (saga.key, saga.event_id, saga.start) == ("data.trip_id", "id", "trip.requested")
    steps = {s.name: s for s in saga.steps}
    assert steps["screen"].compensation is None  # a decision: nothing to undo
    assert steps["charge"].retriable and steps["charge"].compensation in saga.abort  # the refund ends the saga
    assert steps["hold_flight"].after == steps["hold_hotel"].after == ("charge",)  # parallel
    # One [env] table for every service.
    assert all(svc.env == {"TRIPS_PORT": "{port}", "NATS_URL": "{nats_url}", "DATA_DIR": "{data_dir}"}
               for svc in spec.services.values())
    assert len(spec.services) == 5 and spec.workload.via == "http"


def test_its_workload_and_invariants_resolve_beside_the_shops():
    shop = load_system_file(TRIPS_DIR.parent / "shop")
    assert load_callable(shop, shop.workload.body, "workload.body").__name__ == "order_body"
    trips = load_system_file(TRIPS_DIR)
    assert load_callable(trips, trips.workload.body, "workload.body").__name__ == "trip_body"
    assert load_callable(shop, shop.workload.body, "workload.body").__name__ == "order_body"


def test_workload_is_deterministic_and_reaches_every_path():
    first = [workload.trip_body(i, random.Random(i)) for i in range(20)]
    assert first == [workload.trip_body(i, random.Random(i)) for i in range(20)]
    assert Counter(workload.path_of(i) for i in range(200)) == {
        "confirmed": 120, "rejected": 20, "flight_unavailable": 20, "hotel_unavailable": 20, "flaky_bank": 20}
    for i, body in enumerate(first):
        path = workload.path_of(i)
        assert (body["amount"] > workload.LIMIT) == (path == "rejected")
        assert (body["flight"]["to"] in workload.SOLD_OUT) == (path == "flight_unavailable")
        assert (body["hotel"]["city"] in workload.FULLY_BOOKED) == (path == "hotel_unavailable")
        assert (body["card"]["bank"] == "flaky") == (path == "flaky_bank")
    assert len({b["trip_id"] for b in first}) == 20


def system(trips: dict, bank: dict, flights: dict, hotels: dict) -> SimpleNamespace:
    states = {"trips": {"trips": {t: {"status": s, "amount": 100} for t, s in trips.items()}},
              "payments": {"bank": bank}, "flights": {"holds": flights}, "hotels": {"holds": hotels}}
    return SimpleNamespace(services={
        name: SimpleNamespace(http=SimpleNamespace(get=lambda _path, s=state: SimpleNamespace(json=lambda: s)))
        for name, state in states.items()})


def capture(amount: int = 100, refunded: int = 0) -> dict:
    return {"capture_id": "c", "amount": amount, "refunded": refunded}


def test_money_conserved():
    good = system({"a": "CONFIRMED", "b": "CANCELLED", "c": "REJECTED", "d": "PENDING"},
                  {"a": [capture()], "b": [capture(refunded=100)], "d": [capture()]}, {}, {})
    invariants.money_conserved(good)
    for bank, status, message in (({"a": [capture(), capture()]}, "CONFIRMED", "captured 2 times"),
                                  ({"a": [capture()]}, "CANCELLED", "still holds 100 cents"),
                                  ({}, "CONFIRMED", "never charged")):
        with pytest.raises(AssertionError, match=message):
            invariants.money_conserved(system({"a": status}, bank, {}, {}))


def test_holds_released():
    held, released = {"status": "HELD"}, {"status": "RELEASED"}
    invariants.holds_released(system({"a": "CONFIRMED", "b": "CANCELLED"}, {}, {"a": held, "b": released},
                                     {"a": held}))
    with pytest.raises(AssertionError, match="b is CANCELLED but its room is still held"):
        invariants.holds_released(system({"b": "CANCELLED"}, {}, {}, {"b": held}))
