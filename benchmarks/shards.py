"""Sharded-run benchmark: `sagaproof run --seeds 1-6 --jobs 2` beside the same six seeds run one by one.

Runs (a) the six single runs `sagaproof run examples/shop --seed S --sagas N` one after the other and sums
their wall times (the baseline, measured in this same invocation), then (b) `--seeds 1-6 --jobs 2` with the
same options, and prints both, their ratio, and the verdicts (every seed must pass: a false alarm is a
failure of this benchmark). On a 2-core machine the ideal ratio is 0.5; start-up and convergence waits
overlap well, the workload and the checker compete for the cores.

    .venv/bin/python benchmarks/shards.py [--sagas 30] [--jobs 2] [--seeds 1-6]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHOP = ROOT / "examples" / "shop"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sagas", type=int, default=30)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--seeds", default="1-6")
    args = ap.parse_args()
    from sagaproof.harness.session.shards import parse_seeds

    seeds = parse_seeds(args.seeds)
    work = Path(tempfile.mkdtemp(prefix="sp-bench-shards-"))
    cli = [sys.executable, "-m", "sagaproof", "run", str(SHOP), "--sagas", str(args.sagas)]

    singles: list[float] = []
    for seed in seeds:
        t0 = time.monotonic()
        proc = subprocess.run([*cli, "--seed", str(seed), "--report-dir", str(work / f"single-{seed}")],
                              capture_output=True, text=True)
        singles.append(time.monotonic() - t0)
        verdict = json.loads((work / f"single-{seed}" / "report.json").read_text())["verdict"]
        print(f"single run seed {seed}: {singles[-1]:6.1f}s  exit {proc.returncode}  {verdict}")
        if proc.returncode != 0:
            print(proc.stdout[-2000:], proc.stderr[-2000:])
            return 1

    t0 = time.monotonic()
    proc = subprocess.run([*cli, "--seeds", args.seeds, "--jobs", str(args.jobs), "--report-dir", str(work / "sharded")],
                          capture_output=True, text=True)
    sharded = time.monotonic() - t0
    merged = json.loads((work / "sharded" / "report.json").read_text())
    print(f"sharded --seeds {args.seeds} --jobs {args.jobs}: exit {proc.returncode}, "
          f"{merged['passed']} passed, {merged['failed']} failed, {merged['errors']} did not complete")
    total = sum(singles)
    children = sum(e.get("wall_s") or 0 for e in merged["seeds"])
    print()
    print(f"sum of the {len(seeds)} single runs (one by one): {total:7.1f}s")
    print(f"sharded run, {args.jobs} at a time (wall):        {sharded:7.1f}s   ratio {sharded / total:.2f} "
          f"(speed-up x{total / sharded:.2f})")
    print(f"  its children's wall times summed:          {children:7.1f}s   (each seed slower when sharing the cores: "
          f"x{children / total:.2f})")
    return 0 if proc.returncode == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
