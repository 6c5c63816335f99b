"""The shop's sagaproof.toml as sagaproof loads it: the harness brings the shop up from the system
file, the configured workload and invariants resolve, and the invariants pass on the clean shop
and fail on a seeded bug."""

from __future__ import annotations

import random
import time

import pytest
from sagaproof.harness.config import load_callable, load_system_file
from sagaproof.harness.env.system import System
from shop_fixture import SHOP_DIR


def run_workload(system: System, spec, count: int) -> None:
    order_body = load_callable(spec, spec.workload.body, "workload.body")
    order = system.services[spec.workload.service]
    ids = [order.http.post(spec.workload.path, json=order_body(i, random.Random(i))).json()["order_id"]
           for i in range(count)]
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:  # polling: the order state has no change notification
        orders = order.http.get("/state").json()["orders"]
        if all(orders[o]["status"] != "PENDING" for o in ids):
            return
        time.sleep(0.1)
    raise AssertionError("the shop did not finish the workload")


def check_invariants(system: System, spec, timeout: float) -> None:
    for invariant in spec.invariants:
        check = load_callable(spec, invariant.target, f"invariants.{invariant.name}")
        deadline = time.monotonic() + timeout
        while True:  # the invariants are "eventually": a refund may still be in flight
            try:
                check(system)
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


@pytest.mark.parametrize("bug", [None, "no_refund"], ids=["clean", "no_refund"])
def test_the_system_file_runs_the_shop(tmp_path, bug):
    spec = load_system_file(SHOP_DIR)
    assert set(spec.services) == {"order", "payment", "inventory", "shipping"}
    assert {i.name for i in spec.invariants} == {"money_conserved", "stock_conserved"}
    with System(spec, report_dir=tmp_path, env={"SHOP_BUG": bug} if bug else {}) as system:
        run_workload(system, spec, 20)
        if bug:
            with pytest.raises(AssertionError, match="CANCELLED but .* cents are still charged"):
                check_invariants(system, spec, timeout=1)
        else:
            check_invariants(system, spec, timeout=5)
