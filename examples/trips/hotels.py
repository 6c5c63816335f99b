"""The hotels service: holds a room in the trip's city once the trip is paid, and lets it go when the flight
cannot be booked.

* ``payment.charged``: ask the hotel (simulated: ``TRIPS_HOTEL_MS``, default 150 ms: hotels answer slowly).
  A fully booked city (``FULLY_BOOKED``) gives ``hotel.unavailable``; any other gives ``hotel.held``.
* ``flight.unavailable``: release the room (``hotel.released``), even if the hold is still being made: the
  flight usually fails long before the hotel has answered (see holds.py).
"""

from __future__ import annotations

from typing import Any

from holds import Holds
from trips_common import Settings, env_ms

FULLY_BOOKED = frozenset({"Reykjavik", "Venice"})


def refuse(hotel: dict[str, Any]) -> str | None:
    if hotel["city"] in FULLY_BOOKED:
        return f"no room left in {hotel['city']}"
    return None


holds = Holds(Settings.from_env("hotels", default_port=8105), "hotel", "hotel", env_ms("TRIPS_HOTEL_MS", 150),
              refuse, released_by="flight.unavailable")
service = holds.service

if __name__ == "__main__":
    service.run()
