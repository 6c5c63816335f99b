"""Pure-logic tests of the shop's workload and invariants (no processes)."""

from __future__ import annotations

import random
from collections import Counter
from types import SimpleNamespace

import pytest
from shop_fixture import load_shop_module

workload = load_shop_module("workload")
invariants = load_shop_module("invariants")


def test_workload_is_deterministic_and_reaches_every_path():
    first = [workload.order_body(i, random.Random(i)) for i in range(20)]
    assert first == [workload.order_body(i, random.Random(i)) for i in range(20)]
    assert Counter(workload.path_of(i) for i in range(200)) == {
        "completed": 140, "payment_declined": 20, "out_of_stock": 20, "undeliverable": 20}
    for i, body in enumerate(first):
        path = workload.path_of(i)
        assert (body["amount"] > workload.CREDIT_LIMIT) == (path == "payment_declined")
        assert any(item["sku"] == workload.SOLD_OUT for item in body["items"]) == (path == "out_of_stock")
        assert (body["address"]["country"] in workload.UNDELIVERABLE) == (path == "undeliverable")


def system(orders: dict, payments: dict, reservations: dict, available: int) -> SimpleNamespace:
    states = {
        "order": {"orders": {o: {"status": s, "amount": 100} for o, s in orders.items()}},
        "payment": {"payments": payments,
                    "balance": sum(p["charged"] - p["refunded"] for p in payments.values())},
        "inventory": {"reservations": reservations,
                      "stock": {"sku-apple": {"initial": 10, "available": available}}},
    }
    return SimpleNamespace(services={
        name: SimpleNamespace(http=SimpleNamespace(get=lambda _path, s=state: SimpleNamespace(json=lambda: s)))
        for name, state in states.items()})


def pay(charged: int, refunded: int = 0, charges: int = 1) -> dict:
    return {"amount": 100, "charged": charged, "refunded": refunded, "charges": charges,
            "refunds": int(refunded > 0)}


def held(status: str = "RESERVED") -> dict:
    return {"items": [{"sku": "sku-apple", "qty": 2}], "status": status}


GOOD = system({"a": "COMPLETED", "b": "CANCELLED", "c": "PENDING"},
              {"a": pay(100), "b": pay(100, 100), "c": pay(100)},
              {"a": held(), "b": held("RELEASED"), "c": held()}, available=6)


def test_invariants_hold_for_a_consistent_state():
    invariants.money_conserved(GOOD)
    invariants.stock_conserved(GOOD)


@pytest.mark.parametrize(("state", "check", "message"), [
    (system({"a": "CANCELLED"}, {"a": pay(100)}, {}, 10), "money_conserved",
     "order a is CANCELLED but 100 cents are still charged"),
    (system({"a": "COMPLETED"}, {"a": pay(200, charges=2)}, {"a": held()}, 8), "money_conserved",
     "order a (COMPLETED) was charged 2 times"),
    (system({"a": "COMPLETED"}, {}, {"a": held()}, 8), "money_conserved",
     "order a is COMPLETED but payment has no record of it"),
    (system({"a": "CANCELLED"}, {}, {"a": held()}, 8), "stock_conserved",
     "order a is CANCELLED but its stock is still reserved"),
    (system({"a": "COMPLETED"}, {}, {"a": held()}, 10), "stock_conserved",
     "sku-apple: initial 10 != available 10 + reserved 2"),
    (system({"a": "COMPLETED"}, {}, {}, 10), "stock_conserved",
     "order a is COMPLETED but inventory never reserved its stock"),
])
def test_invariants_name_the_order_that_breaks_them(state, check, message):
    with pytest.raises(AssertionError, match="not conserved") as info:
        getattr(invariants, check)(state)
    assert message in str(info.value)
