"""The flights service: holds a seat on the trip's flight once the trip is paid, and lets it go when the
hotel cannot be booked.

* ``payment.charged``: ask the airline (simulated: ``TRIPS_AIRLINE_MS``, default 10 ms). Flights to a
  sold-out destination (``SOLD_OUT``) give ``flight.unavailable``; any other gives ``flight.held``.
* ``hotel.unavailable``: release the seat (``flight.released``), even if the hold is still being made
  (see holds.py).
"""

from __future__ import annotations

from typing import Any

from holds import Holds
from trips_common import Settings, env_ms

SOLD_OUT = frozenset({"AKL", "HNL"})


def refuse(flight: dict[str, Any]) -> str | None:
    if flight["to"] in SOLD_OUT:
        return f"no seat left to {flight['to']} on {flight['date']}"
    return None


holds = Holds(Settings.from_env("flights", default_port=8104), "flight", "flight", env_ms("TRIPS_AIRLINE_MS", 10),
              refuse, released_by="hotel.unavailable")
service = holds.service

if __name__ == "__main__":
    service.run()
