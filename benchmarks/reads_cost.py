"""What the status reads cost: the clean shop at default settings, run with its status reads on and off, side by
side in one invocation (the same seeds, alternating, so the machine's load weighs on both).

The shop declares `[sagas.checkout.status]` (GET /orders/{key} on the order service), so a default run reads a
sample of the orders while they run and every order once the system is quiescent. The baseline is the same
system file with `[reads] enabled = false`. Prints one line per run (wall time, the run's own duration, reads
made) and the ratio of the medians; the target is at most 1.10 (reads cost at most 10% of the run's wall time).
Runs the real CLI: real nats-server, real services, real fault proxies.

    .venv/bin/python benchmarks/reads_cost.py                  # seeds 1-2, both ways
    .venv/bin/python benchmarks/reads_cost.py --seeds 1-4 --no-chaos
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHOP = ROOT / "examples" / "shop"
TARGET = 1.10


def shop_without_reads(dest: Path) -> Path:
    """A copy of the shop whose system file turns the reads off."""
    shutil.copytree(SHOP, dest, ignore=shutil.ignore_patterns("__pycache__", ".sagaproof", "sagaproof-report"))
    if not (dest.parent / "_lib").exists():  # the examples' service kit, where the shop's services look for it
        shutil.copytree(SHOP.parent / "_lib", dest.parent / "_lib", ignore=shutil.ignore_patterns("__pycache__"))
    toml = dest / "sagaproof.toml"
    toml.write_text(toml.read_text() + "\n[reads]\nenabled = false\n")
    return dest


def final_span(history: Path) -> float:
    """Seconds from the first final read's start to the last one's end: what the final reads add to the run."""
    first = last = None
    with open(history) as f:
        for line in f:
            if line.startswith('{"kind":"read"') and '"phase":"final"' in line:
                rec = json.loads(line)
                first = rec["invoked"] if first is None else min(first, rec["invoked"])
                last = rec["completed"] if last is None else max(last, rec["completed"])
    return 0.0 if first is None or last is None else last - first


def run(system: Path, seed: int, chaos: bool) -> tuple[int, float, float, int, float]:
    report = Path(tempfile.mkdtemp(prefix="sp-reads-"))
    cmd = [sys.executable, "-m", "sagaproof", "run", str(system), "--seed", str(seed), "--report-dir", str(report)]
    if not chaos:
        cmd.append("--no-chaos")
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    took = time.monotonic() - t0
    data = json.loads((report / "report.json").read_text()) if (report / "report.json").exists() else {}
    history = report / "events.jsonl"
    reads = sum(1 for line in open(history) if line.startswith('{"kind":"read"')) if history.exists() else 0
    span = final_span(history) if history.exists() else 0.0
    shutil.rmtree(report, ignore_errors=True)
    return proc.returncode, took, float(data.get("duration_s") or 0.0), reads, span


def seeds_of(text: str) -> list[int]:
    if "-" in text:
        a, b = text.split("-", 1)
        return list(range(int(a), int(b) + 1))
    return [int(s) for s in text.split(",")]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="1-2", help="seeds to run both ways (default 1-2)")
    ap.add_argument("--no-chaos", action="store_true", help="run without faults (less noise, smaller runs)")
    args = ap.parse_args()
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} "
          f"(1/5/15 min) on {os.cpu_count()} cores")
    off_dir = shop_without_reads(Path(tempfile.mkdtemp(prefix="sp-shop-noreads-")) / "shop")
    on_wall: list[float] = []
    off_wall: list[float] = []
    spans: list[float] = []
    on_runs: list[float] = []
    bad = 0
    try:
        for seed in seeds_of(args.seeds):
            for label, system in (("reads off", off_dir), ("reads on", SHOP)):
                rc, took, duration, reads, span = run(system, seed, not args.no_chaos)
                print(f"seed {seed:3d}  {label:9s}  exit {rc}  wall {took:6.1f}s  run {duration:6.1f}s  "
                      f"reads {reads}" + (f"  final reads took {span:.2f}s" if reads else ""), flush=True)
                (on_wall if label == "reads on" else off_wall).append(took)
                if label == "reads on":
                    spans.append(span)
                    on_runs.append(duration)
                bad += rc != 0
    finally:
        shutil.rmtree(off_dir.parent, ignore_errors=True)
    on, off = statistics.median(on_wall), statistics.median(off_wall)
    ratio = on / off
    print(f"median wall: reads on {on:.1f}s, reads off {off:.1f}s: ratio {ratio:.3f} (target <= {TARGET:.2f}); "
          f"mean ratio {statistics.mean(on_wall) / statistics.mean(off_wall):.3f}")
    print(f"final reads (the part of the reads that adds to a run's length; the sampled reads overlap the "
          f"workload): mean {statistics.mean(spans):.2f}s = {statistics.mean(spans) / statistics.mean(on_runs):.1%} "
          f"of the mean run ({statistics.mean(on_runs):.1f}s)")
    print(f"load after: {os.getloadavg()[0]:.2f}")
    if bad:
        print(f"{bad} run(s) did not pass (exit code not 0): the clean shop must pass both ways")
    return 0 if ratio <= TARGET and not bad else 1


if __name__ == "__main__":
    raise SystemExit(main())
