"""The shop's workload: ``order_body(index, rng)`` builds the JSON body of the index-th order.

The outcome path is chosen by ``index % 10`` so every run of ten or more orders reaches every path
(the rest of the body is drawn from ``rng``, so a seed reproduces a run exactly):

====================  ===========  =====================================================
``index % 10``        share        path
====================  ===========  =====================================================
0-5, 9                70 %         COMPLETED: charged, reserved, shipped
6                     10 %         CANCELLED by ``payments.failed`` (amount above the limit)
7                     10 %         CANCELLED by ``inventory.failed`` -> ``payments.refunded``
8                     10 %         CANCELLED by ``shipping.failed`` -> refund and release
====================  ===========  =====================================================
"""

from __future__ import annotations

import random
from typing import Any

CREDIT_LIMIT = 100_000  # cents; payment's default SHOP_CREDIT_LIMIT
SKUS = ["sku-apple", "sku-book", "sku-chair", "sku-desk", "sku-lamp"]
SOLD_OUT = "sku-sold-out"
COUNTRIES = ["BE", "DE", "DK", "ES", "FR", "GB", "IE", "IT", "NL", "SE", "US"]
UNDELIVERABLE = ["AQ", "KP", "NU"]
CITIES = ["Aarhus", "Berlin", "Cork", "Delft", "Lyon", "Malmo", "Porto", "Seville"]

PATHS = ("completed", "completed", "completed", "completed", "completed", "completed",
         "payment_declined", "out_of_stock", "undeliverable", "completed")


def path_of(index: int) -> str:
    """The outcome path of the index-th order: completed, payment_declined, out_of_stock or undeliverable."""
    return PATHS[index % len(PATHS)]


def order_body(index: int, rng: random.Random) -> dict[str, Any]:
    """The ``POST /orders`` body of the index-th order of a run."""
    path = path_of(index)
    items = [{"sku": sku, "qty": rng.randint(1, 3)} for sku in rng.sample(SKUS, rng.randint(1, 3))]
    if path == "out_of_stock":
        items.append({"sku": SOLD_OUT, "qty": 1})
    if path == "payment_declined":
        amount = rng.randint(CREDIT_LIMIT + 1, 10 * CREDIT_LIMIT)
    else:
        amount = rng.randint(100, CREDIT_LIMIT)
    country = rng.choice(UNDELIVERABLE if path == "undeliverable" else COUNTRIES)
    return {
        "customer_id": f"cust-{rng.randint(1, 50):03d}",
        "amount": amount,
        "items": items,
        "address": {"street": f"{rng.randint(1, 250)} Harbour Street", "city": rng.choice(CITIES),
                    "country": country},
    }


def expected_status(path: str) -> str:
    """The final order status a path must end in."""
    return "COMPLETED" if path == "completed" else "CANCELLED"
