"""Synthetic histories for the benchmarks: saga instances of given shapes interleaved as a busy run interleaves
them, with faults starting and ending throughout.

A run that records a million messages takes hours; the checks' cost depends on the history's shape (how many
sagas are in flight at once, how their events interleave, how many faults), which :func:`interleaved`
reproduces: about :data:`LIVE` sagas in flight, each message from one of them drawn at random, a message every
:data:`STEP` seconds, and every :data:`FAULT_EVERY` messages a fault starting or (60% of the time, when one is
active) the oldest active one ending. ``benchmarks/checker_scale.py`` turns the events into the records it judges,
``benchmarks/memory_flat.py`` writes them with what the links would see of each message. (The tests' histories,
``tests/harness/test_engine_path.py``, are built for the anomalies they must contain, one by one.)
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from sagaproof.harness.config import SagaSpec, StepSpec

__all__ = ["FAULT_EVERY", "LIVE", "SHOP", "SHOP_SHAPES", "STEP", "TRIPS", "TRIPS_SHAPES", "fault_record",
           "interleaved"]

LIVE = 100  # sagas in flight at once
STEP = 0.0005  # seconds between messages
FAULT_EVERY = 500  # messages between fault events

# The example shop's sequential checkout: mostly clean, some aborted with compensation, 2% double charges, 1% stuck.
SHOP = SagaSpec(
    name="checkout", key="order_id", start="orders.created", success=("orders.completed",),
    abort=("orders.cancelled",), deadline=30.0,
    steps=(StepSpec("charge", "payment", "payments.completed", "payments.failed", "payments.refunded"),
           StepSpec("reserve", "inventory", "inventory.reserved", "inventory.failed", "inventory.released"),
           StepSpec("ship", "shipping", "shipping.scheduled", "shipping.failed")),
)
SHOP_SHAPES: list[tuple[float, list[str]]] = [
    (0.85, ["orders.created", "payments.completed", "inventory.reserved", "shipping.scheduled", "orders.completed"]),
    (0.12, ["orders.created", "payments.completed", "inventory.failed", "payments.refunded", "orders.cancelled"]),
    (0.02, ["orders.created", "payments.completed", "payments.completed", "inventory.reserved",
            "shipping.scheduled", "orders.completed"]),
    (0.01, ["orders.created", "payments.completed"]),
]
# The trip bookings' shape: CloudEvents (the key is data.trip_id), a retried charge, two holds in parallel, a
# refund that is both compensation and terminal event, a hold that lands after the saga was decided.
TRIPS = SagaSpec(
    name="booking", key="data.trip_id", event_id="id", start="trip.requested", success=("trip.confirmed",),
    abort=("trip.rejected", "payment.refunded"), deadline=30.0,
    steps=(StepSpec("screen", "risk", "risk.approved", "risk.rejected"),
           StepSpec("charge", "payments", "payment.charged", "payment.failed", "payment.refunded", after=("screen",),
                    retriable=True),
           StepSpec("hold_flight", "flights", "flight.held", "flight.unavailable", "flight.released",
                    after=("charge",)),
           StepSpec("hold_hotel", "hotels", "hotel.held", "hotel.unavailable", "hotel.released", after=("charge",))),
)
_OK = "trip.requested risk.approved payment.charged"
TRIPS_SHAPES: list[tuple[float, list[str]]] = [
    (0.45, f"{_OK} flight.held hotel.held trip.confirmed".split()),
    (0.15, f"{_OK} hotel.held flight.held trip.confirmed".split()),
    (0.10, "trip.requested risk.approved payment.failed payment.charged flight.held hotel.held trip.confirmed".split()),
    (0.10, "trip.requested risk.rejected trip.rejected".split()),
    (0.08, f"{_OK} flight.unavailable payment.refunded hotel.held hotel.released".split()),
    (0.08, f"{_OK} flight.held hotel.unavailable flight.released payment.refunded".split()),
    (0.02, f"{_OK} flight.unavailable payment.refunded hotel.held".split()),  # a late hold never released
    (0.02, f"{_OK} flight.held trip.confirmed hotel.held".split()),  # confirmed before the hotel
]


def interleaved(n_messages: int, shapes: Sequence[tuple[float, list[str]]], rng: random.Random, *,
                key: Callable[[int], str] = "k{}".format) -> Iterator[tuple[str, float, Any]]:
    """The events of a history of `n_messages` messages, in order, as ``(what, t, about)``:

    * ``("saga", t, key)``: a saga instance is drawn (its shape chosen by the shares in `shapes`), before any of
      its messages; `key(n)` names the n-th;
    * ``("message", t, (seq, key, subject))``: the next message of a saga in flight (seq from 1);
    * ``("fault_start", t, fault_id)`` and ``("fault_end", t, fault_id)``.

    Everything random comes from `rng`, drawn as the events are taken, so a caller may draw from it too between
    two events (the same seed gives the same history as long as it draws the same way).
    """
    cumulative, total = [], 0.0
    for share, shape in shapes:
        total += share
        cumulative.append((total, shape))
    live: list[tuple[str, list[str], int]] = []
    t = 0.0
    seq = saga_no = fault_no = 0
    open_faults: list[str] = []
    while seq < n_messages:
        while len(live) < LIVE:
            r = rng.random() * total
            k = key(saga_no)
            live.append((k, next(s for c, s in cumulative if r < c), 0))
            yield "saga", t, k
            saga_no += 1
        i = rng.randrange(len(live))
        k, shape, pos = live[i]
        seq += 1
        t += STEP
        yield "message", t, (seq, k, shape[pos])
        if pos + 1 == len(shape):
            live[i] = live[-1]
            live.pop()
        else:
            live[i] = (k, shape, pos + 1)
        if seq % FAULT_EVERY == 0:
            if open_faults and rng.random() < 0.6:
                yield "fault_end", t, open_faults.pop(0)
            else:
                fault_no += 1
                open_faults.append(f"f{fault_no}")
                yield "fault_start", t, f"f{fault_no}"


def fault_record(what: str, t: float, fault_id: str, *, at: float | None = None) -> dict[str, Any]:
    """The history record of a ``fault_start`` or ``fault_end`` event of :func:`interleaved` (a one-second
    latency fault on the payment service), recorded at `at` (default `t`)."""
    at = t if at is None else at
    if what == "fault_end":
        return {"kind": "fault_end", "t": at, "fault_id": fault_id}
    return {"kind": "fault_start", "t": at, "fault": {"id": fault_id, "kind": "latency", "target": "payment",
                                                      "start": t, "duration": 1.0, "params": {}}}
