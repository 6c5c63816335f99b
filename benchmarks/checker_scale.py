"""Scale benchmark of the saga checker: is `check_history` linear in the history's size?

Builds synthetic shop histories of 10k, 100k and 1M messages (mostly clean sagas, some aborted with
compensation, a few with double effects and stuck sagas, faults starting and ending throughout), times
`check_history` on each (history generation is not timed) and prints microseconds per message and the
ratio to the smallest size. A linear checker keeps the per-message time roughly flat (ratio near 1.0).

    .venv/bin/python benchmarks/checker_scale.py            # 10k, 100k, 1M
    .venv/bin/python benchmarks/checker_scale.py 10000 50000
"""

from __future__ import annotations

import gc
import random
import sys
import time
from typing import Any

from sagaproof.harness.checker import check_history
from sagaproof.harness.config import SagaSpec, StepSpec

SPEC = SagaSpec(
    name="checkout", key="order_id", start="orders.created", success=("orders.completed",),
    abort=("orders.cancelled",), deadline=30.0,
    steps=(StepSpec("charge", "payment", "payments.completed", "payments.failed", "payments.refunded"),
           StepSpec("reserve", "inventory", "inventory.reserved", "inventory.failed", "inventory.released"),
           StepSpec("ship", "shipping", "shipping.scheduled", "shipping.failed")),
)
HAPPY = ["orders.created", "payments.completed", "inventory.reserved", "shipping.scheduled", "orders.completed"]
ABORT = ["orders.created", "payments.completed", "inventory.failed", "payments.refunded", "orders.cancelled"]
DOUBLE = ["orders.created", "payments.completed", "payments.completed", "inventory.reserved",
          "shipping.scheduled", "orders.completed"]
STUCK = ["orders.created", "payments.completed"]


def synthetic_history(n_messages: int, seed: int = 1) -> list[dict[str, Any]]:
    """About n_messages message records, interleaving ~100 sagas at a time, with a fault every ~500 messages."""
    rng = random.Random(seed)
    records: list[dict[str, Any]] = []
    live: list[tuple[str, list[str], int]] = []
    t = 0.0
    seq = 0
    saga_no = 0
    fault_no = 0
    open_faults: list[str] = []
    while seq < n_messages:
        while len(live) < 100:
            r = rng.random()
            shape = HAPPY if r < 0.85 else ABORT if r < 0.97 else DOUBLE if r < 0.99 else STUCK
            live.append((f"o{saga_no}", shape, 0))
            saga_no += 1
        i = rng.randrange(len(live))
        key, shape, pos = live[i]
        seq += 1
        t += 0.0005
        subject = shape[pos]
        records.append({"kind": "message", "seq": seq, "t": t, "subject": subject, "stream": "SHOP",
                        "stream_seq": seq, "producer": subject.split(".")[0], "headers": {},
                        "data": {"order_id": key, "event_id": f"e{seq}"}, "size": 64})
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
                fid = f"f{fault_no}"
                open_faults.append(fid)
                records.append({"kind": "fault_start", "t": t, "fault": {"id": fid, "kind": "latency",
                                                                          "target": "payment", "start": t,
                                                                          "duration": 1.0, "params": {}}})
    return records


def main(sizes: list[int]) -> None:
    print(f"{'messages':>10} {'seconds':>9} {'us/msg':>8} {'ratio':>6} {'sagas':>8} {'violations':>10}")
    base = None
    per = 0.0
    for n in sizes:
        history = synthetic_history(n)
        end = history[-1]["t"] + 100.0
        gc.collect()
        gc.freeze()  # the history is the caller's; keep the collector from rescanning it
        t0 = time.perf_counter()
        result = check_history(history, {"checkout": SPEC}, healed_at=history[-1]["t"], end_at=end)
        elapsed = time.perf_counter() - t0
        per = elapsed / n * 1e6
        base = base or per
        print(f"{n:>10} {elapsed:>9.3f} {per:>8.2f} {per / base:>6.2f} {result.sagas_checked:>8} "
              f"{len(result.violations):>10}", flush=True)
        del history, result
        gc.unfreeze()
    if len(sizes) > 1 and base:
        growth = sizes[-1] / sizes[0]
        print(f"size grew x{growth:.0f}; time per message grew x{per / base:.2f} "
              f"(linear: ~x1, growing only with cache misses on larger tables; quadratic: ~x{growth:.0f})")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [10_000, 100_000, 1_000_000])
