"""Peak memory of the harness against run length: does it stay flat as a run grows?

Runs the real engine (`sagaproof run` as a function) on the example shop, without faults, for runs of
growing length, each in a fresh process, and prints the harness process's peak RSS (the services are
other processes) against the number of messages recorded. Three modes, measured in the same invocation:

* engine:    the harness as it is: the history streams to events.jsonl, the checks and reports read it back;
* no-broker: the same without the broker checks (harness.checks.consumption, which index the whole history in
             memory when they judge it), to show the rest of the engine on its own;
* baseline:  the engine plus what the harness used to do: keep every history record in memory (one dict per
             record) and judge the list at the end.

The shop's invariants are left out: they fetch every service's whole state (every order, payment and
reservation), which grows with the run by the example's design, whatever the harness does.

For each mode it prints the growth per 1,000 messages from one run length to the next, and the ratio to the
baseline's over the longest step. Flat means the growth stays near zero once a run is longer than the pieces
the engine reads at a time (its saga checks hold 2,500 messages' worth, its sort 5,000 records).

    .venv/bin/python benchmarks/memory_flat.py                 # 6 s, 18 s and 54 s runs
    .venv/bin/python benchmarks/memory_flat.py --durations 5 20
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def one(mode: str, duration: float) -> dict[str, float]:
    import dataclasses

    from sagaproof.harness.checks.checker import check_history
    from sagaproof.harness.config import load_system_file
    from sagaproof.harness.events import Event, EventBus, RunFinished
    from sagaproof.harness.session.engine import RunOptions, run

    spec = dataclasses.replace(load_system_file(ROOT / "examples" / "shop"), invariants=())
    bus = EventBus()
    kept: list[dict] = []
    if mode == "no-broker":
        from sagaproof.harness import checks

        checks.CHECKS.remove(checks.broker_checks)
    if mode == "baseline":
        import time

        t0 = time.time()

        def keep(event: Event) -> None:
            if isinstance(event, RunFinished):
                # the old run loop judged the whole list it had kept
                check_history(list(kept), spec.sagas, healed_at=0.0, end_at=1e9)
            elif event.recorded:
                kept.append(event.to_record(t0))

        bus.subscribe(keep)
    with tempfile.TemporaryDirectory(prefix="sp-mem-") as d:
        code, result = run(spec, RunOptions(seed=1, duration=duration, chaos=False, report_dir=Path(d)), bus)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"mode": mode, "duration": duration, "messages": result.messages_recorded, "peak_mb": peak_mb,
            "exit": code, "kept": len(kept)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--durations", type=float, nargs="+", default=[6, 18, 54], help="run lengths in seconds")
    ap.add_argument("--one", nargs=2, metavar=("MODE", "DURATION"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one[0], float(args.one[1]))))
        return 0
    rows: dict[str, list[dict[str, float]]] = {"engine": [], "no-broker": [], "baseline": []}
    print(f"{'mode':9s} {'run':>6s} {'messages':>9s} {'peak RSS':>9s}")
    for duration in args.durations:
        for mode in rows:
            out = subprocess.run([sys.executable, __file__, "--one", mode, str(duration)], capture_output=True,
                                 text=True, cwd=ROOT, timeout=600 + 10 * duration)
            if out.returncode != 0:
                print(out.stdout[-2000:], out.stderr[-2000:])
                return 1
            row = json.loads(out.stdout.strip().splitlines()[-1])
            rows[mode].append(row)
            print(f"{mode:9s} {duration:5.0f}s {row['messages']:9.0f} {row['peak_mb']:7.1f} MB", flush=True)
    growth = {}
    for mode, rs in rows.items():
        for a, b in zip(rs, rs[1:], strict=False):
            dm = max(1.0, b["messages"] - a["messages"])
            growth[mode] = (b["peak_mb"] - a["peak_mb"]) / dm * 1000
            print(f"{mode}: {growth[mode]:+.2f} MB per 1,000 more messages from {a['messages']:.0f} to "
                  f"{b['messages']:.0f} messages ({a['peak_mb']:.1f} -> {b['peak_mb']:.1f} MB)")
    if growth.get("baseline", 0) > 0:
        for mode in ("engine", "no-broker"):
            print(f"{mode} growth / baseline growth over the longest step: {growth[mode] / growth['baseline']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
