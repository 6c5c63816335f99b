"""The trip bookings' workload: ``trip_body(index, rng)`` builds the JSON body of the index-th booking.

The outcome path is chosen by ``index % 10``, so every run of ten or more trips reaches every path (the rest
of the body is drawn from ``rng``, so a seed reproduces a run exactly):

====================  ===========  ==========================================================================
``index % 10``        share        path
====================  ===========  ==========================================================================
0-5                   60 %         CONFIRMED: screened, charged, flight and hotel held
6                     10 %         REJECTED by ``risk.rejected`` (amount above the limit); nothing charged
7                     10 %         CANCELLED: ``flight.unavailable`` -> room released, ``payment.refunded``
8                     10 %         CANCELLED: ``hotel.unavailable`` -> seat released, ``payment.refunded``
9                     10 %         CONFIRMED after a retry: the flaky bank's first answer times out
====================  ===========  ==========================================================================

Each body carries its own ``trip_id``, so a request retried after a time-out books the trip once.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

LIMIT = 500_000  # cents; risk's default TRIPS_LIMIT
ORIGINS = ["AMS", "CDG", "DUB", "FRA", "LHR", "MAD"]
DESTINATIONS = ["ATH", "BCN", "CPH", "LIS", "NCE", "OSL", "PRG", "VIE"]
SOLD_OUT = ["AKL", "HNL"]  # flights' SOLD_OUT
CITIES = ["Athens", "Barcelona", "Copenhagen", "Lisbon", "Nice", "Oslo", "Prague", "Vienna"]
FULLY_BOOKED = ["Reykjavik", "Venice"]  # hotels' FULLY_BOOKED
BANKS = ["abn", "bbva", "bnp", "ing", "revolut"]

PATHS = ("confirmed", "confirmed", "confirmed", "confirmed", "confirmed", "confirmed",
         "rejected", "flight_unavailable", "hotel_unavailable", "flaky_bank")


def path_of(index: int) -> str:
    """The outcome path of the index-th trip."""
    return PATHS[index % len(PATHS)]


def trip_body(index: int, rng: random.Random) -> dict[str, Any]:
    """The ``POST /trips`` body of the index-th trip of a run."""
    path = path_of(index)
    amount = rng.randint(LIMIT + 1, 4 * LIMIT) if path == "rejected" else rng.randint(5_000, LIMIT)
    return {
        "trip_id": f"trip-{index:05d}-{uuid.UUID(int=rng.getrandbits(128)).hex[:8]}",
        "customer_id": f"cust-{rng.randint(1, 50):03d}",
        "amount": amount,
        "flight": {"from": rng.choice(ORIGINS),
                   "to": rng.choice(SOLD_OUT if path == "flight_unavailable" else DESTINATIONS),
                   "date": f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"},
        "hotel": {"city": rng.choice(FULLY_BOOKED if path == "hotel_unavailable" else CITIES),
                  "nights": rng.randint(1, 14)},
        "card": {"bank": "flaky" if path == "flaky_bank" else rng.choice(BANKS), "last4": f"{rng.randint(0, 9999):04d}"},
    }


def expected_status(path: str) -> str:
    """The final status a path must end in."""
    return {"confirmed": "CONFIRMED", "flaky_bank": "CONFIRMED", "rejected": "REJECTED"}.get(path, "CANCELLED")
