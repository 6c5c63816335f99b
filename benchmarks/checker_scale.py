"""Scale benchmark of the saga checker: is `check_history` linear in the history's size, and how much faster
than the checker before the richer saga model (issue 9), measured in the same run on the same histories?

Two synthetic histories per size (generation is not timed):

* ``shop``: the shop's sequential checkout (mostly clean sagas, some aborted with compensation, a few double
  effects and stuck sagas), faults starting and ending throughout. Both checkers judge it.
* ``trips``: the trip bookings' shape on the new model: CloudEvents (the key is ``data.trip_id``), a retried
  charge, two holds in parallel, a refund that is both compensation and terminal event, a hold that lands
  after the saga was decided. Only the new checker can judge it (the old one has no model for it).

For each it prints wall and CPU seconds, microseconds per message, the ratio of the per-message time to the
smallest size (a linear checker stays near 1.0), and, for ``shop``, the old checker's time and the speed-up.
The old checker is read from git (``--baseline-ref``, default the commit before issue 9); without git it is
skipped.

    .venv/bin/python benchmarks/checker_scale.py            # 10k, 100k, 1M
    .venv/bin/python benchmarks/checker_scale.py 10000 50000
"""

from __future__ import annotations

import argparse
import gc
import random
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

from sagaproof.harness.checks.checker import check_history
from sagaproof.harness.config import SagaSpec, StepSpec

ROOT = Path(__file__).resolve().parent.parent
BASELINE_REF = "48c0137aebd1015ac687b6fcff8d850d561a4434"  # main before issue 9

SHOP = SagaSpec(
    name="checkout", key="order_id", start="orders.created", success=("orders.completed",),
    abort=("orders.cancelled",), deadline=30.0,
    steps=(StepSpec("charge", "payment", "payments.completed", "payments.failed", "payments.refunded"),
           StepSpec("reserve", "inventory", "inventory.reserved", "inventory.failed", "inventory.released"),
           StepSpec("ship", "shipping", "shipping.scheduled", "shipping.failed")),
)
SHOP_SHAPES = [
    (0.85, ["orders.created", "payments.completed", "inventory.reserved", "shipping.scheduled", "orders.completed"]),
    (0.12, ["orders.created", "payments.completed", "inventory.failed", "payments.refunded", "orders.cancelled"]),
    (0.02, ["orders.created", "payments.completed", "payments.completed", "inventory.reserved",
            "shipping.scheduled", "orders.completed"]),
    (0.01, ["orders.created", "payments.completed"]),
]
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
TRIPS_SHAPES = [
    (0.45, f"{_OK} flight.held hotel.held trip.confirmed".split()),
    (0.15, f"{_OK} hotel.held flight.held trip.confirmed".split()),
    (0.10, "trip.requested risk.approved payment.failed payment.charged flight.held hotel.held trip.confirmed".split()),
    (0.10, "trip.requested risk.rejected trip.rejected".split()),
    (0.08, f"{_OK} flight.unavailable payment.refunded hotel.held hotel.released".split()),
    (0.08, f"{_OK} flight.held hotel.unavailable flight.released payment.refunded".split()),
    (0.02, f"{_OK} flight.unavailable payment.refunded hotel.held".split()),  # a late hold never released
    (0.02, f"{_OK} flight.held trip.confirmed hotel.held".split()),  # confirmed before the hotel
]


def synthetic_history(n_messages: int, shapes: list[tuple[float, list[str]]], nested: bool,
                      seed: int = 1) -> list[dict[str, Any]]:
    """About n_messages message records, interleaving ~100 sagas at a time, with a fault every ~500 messages."""
    rng = random.Random(seed)
    cumulative, total = [], 0.0
    for share, shape in shapes:
        total += share
        cumulative.append((total, shape))
    records: list[dict[str, Any]] = []
    live: list[tuple[str, list[str], int]] = []
    t = 0.0
    seq = saga_no = fault_no = 0
    open_faults: list[str] = []
    while seq < n_messages:
        while len(live) < 100:
            r = rng.random() * total
            live.append((f"k{saga_no}", next(s for c, s in cumulative if r < c), 0))
            saga_no += 1
        i = rng.randrange(len(live))
        key, shape, pos = live[i]
        seq += 1
        t += 0.0005
        subject = shape[pos]
        data = ({"specversion": "1.0", "id": f"e{seq}", "type": subject, "data": {"trip_id": key}} if nested
                else {"order_id": key, "event_id": f"e{seq}"})
        records.append({"kind": "message", "seq": seq, "t": t, "subject": subject, "stream": "S", "stream_seq": seq,
                        "producer": subject.split(".")[0], "headers": {}, "data": data, "size": 64})
        if pos + 1 == len(shape):
            live[i] = live[-1]
            live.pop()
        else:
            live[i] = (key, shape, pos + 1)
        if seq % 500 == 0:
            if open_faults and rng.random() < 0.6:
                records.append({"kind": "fault_end", "t": t, "fault_id": open_faults.pop(0)})
            else:
                fault_no += 1
                open_faults.append(f"f{fault_no}")
                records.append({"kind": "fault_start", "t": t, "fault": {
                    "id": f"f{fault_no}", "kind": "latency", "target": "payment", "start": t, "duration": 1.0,
                    "params": {}}})
    return records


def baseline_checker(ref: str) -> Any:
    """The checker as it was at git ``ref``, as a module; None when git or the ref is not there."""
    try:
        source = subprocess.run(["git", "-C", str(ROOT), "show", f"{ref}:harness/checks/checker.py"], capture_output=True,
                                text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    module = types.ModuleType("checker_before_issue_9")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(source, f"{ref}:harness/checks/checker.py", "exec"), module.__dict__)  # noqa: S102 - our own history
    return module


def timed(fn: Any, history: list[dict[str, Any]], spec: SagaSpec) -> tuple[float, float, Any]:
    gc.collect()
    gc.freeze()  # the history is the caller's; keep the collector from rescanning it
    w0, c0 = time.perf_counter(), time.process_time()
    result = fn(history, {spec.name: spec}, healed_at=history[-1]["t"], end_at=history[-1]["t"] + 100.0)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    gc.unfreeze()
    return wall, cpu, result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("sizes", nargs="*", type=int, default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--baseline-ref", default=BASELINE_REF, help="git ref of the checker to compare with")
    args = ap.parse_args()
    old = baseline_checker(args.baseline_ref)
    if old is None:
        print(f"(no baseline: git show {args.baseline_ref}:harness/checks/checker.py failed)")
    print(f"{'history':>7} {'messages':>10} {'wall s':>8} {'cpu s':>7} {'us/msg':>7} {'ratio':>6} {'sagas':>8} "
          f"{'violations':>10} {'before: wall s':>14} {'cpu s':>7} {'speed-up (cpu)':>14}")
    for name, spec, shapes, nested in (("shop", SHOP, SHOP_SHAPES, False), ("trips", TRIPS, TRIPS_SHAPES, True)):
        base = None
        for n in args.sizes:
            history = synthetic_history(n, shapes, nested)
            wall, cpu, result = timed(check_history, history, spec)
            per = cpu / n * 1e6
            base = base or per
            line = (f"{name:>7} {n:>10} {wall:>8.3f} {cpu:>7.3f} {per:>7.2f} {per / base:>6.2f} "
                    f"{result.sagas_checked:>8} {len(result.violations):>10}")
            if old is not None and name == "shop":
                owall, ocpu, oresult = timed(old.check_history, history, spec)
                agree = {(v.key, v.check) for v in oresult.violations} == {(v.key, v.check) for v in result.violations}
                line += f" {owall:>14.3f} {ocpu:>7.3f} {ocpu / cpu:>13.1f}x" + ("" if agree else "  (verdicts differ)")
            print(line, flush=True)
            del history, result
    print("linear: the ratio stays near 1 as the size grows 100x (a quadratic checker's would grow ~100x)")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
