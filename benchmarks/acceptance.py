"""Acceptance figures for `sagaproof run` on the example shop at default settings.

1. The clean shop, 10 different seeds in a row: every run must pass (exit 0).
2. Every seeded bug (SHOP_BUG=...) with the demo's seed: every run must fail (exit 1) with the right check
   named first.
3. Optional (--bug-seeds N): each bug over N seeds, to show how reliably the default fault menu exposes it.
Prints one line per run (exit code, first failure, duration, faults injected) and a summary; exits 1 if an
expectation is not met. Runs the real CLI: real nats-server, real services, real fault proxies.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
def _shop_bugs():  # the shop's own table of seeded bugs and the check that must catch each
    import importlib.util

    spec = importlib.util.spec_from_file_location("shop_bugs", ROOT / "examples" / "shop" / "bugs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


EXPECTED_FIRST = _shop_bugs().EXPECTED_FIRST


def run(seed: int, bug: str | None) -> tuple[int, str | None, float, int]:
    report = Path(tempfile.mkdtemp(prefix="sp-accept-"))
    cmd = [sys.executable, "-m", "sagaproof", "run", "examples/shop", "--seed", str(seed), "--report-dir", str(report)]
    if bug:
        cmd += ["--env", f"SHOP_BUG={bug}"]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    took = time.monotonic() - t0
    try:
        data = json.loads((report / "report.json").read_text())
    except OSError:
        print(proc.stdout[-2000:], proc.stderr[-2000:])
        data = {}
    shutil.rmtree(report, ignore_errors=True)
    return proc.returncode, data.get("first_failure"), took, len(data.get("faults") or [])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=10, help="clean runs (seeds 1..N)")
    ap.add_argument("--bug-seeds", type=int, default=1, help="seeds per bug (1..N)")
    args = ap.parse_args()
    ok = True
    clean_times = []
    for seed in range(1, args.seeds + 1):
        code, first, took, faults = run(seed, None)
        clean_times.append(took)
        ok &= code == 0
        print(f"clean  seed {seed:3d}: exit {code}  first failure {first}  {took:5.1f}s  {faults} faults", flush=True)
    caught: dict[str, int] = {}
    for bug, expected in EXPECTED_FIRST.items():
        for seed in range(1, args.bug_seeds + 1):
            code, first, took, faults = run(seed, bug)
            right = code == 1 and first == expected
            caught[bug] = caught.get(bug, 0) + right
            if seed == 1:
                ok &= right
            print(f"{bug:17s} seed {seed:3d}: exit {code}  first failure {first}  (expected {expected})  "
                  f"{took:5.1f}s  {faults} faults", flush=True)
    print(f"\nclean: {sum(1 for _ in clean_times)} runs, median {statistics.median(clean_times):.1f}s")
    for bug, n in caught.items():
        print(f"{bug}: caught with the right check first in {n}/{args.bug_seeds} seeds")
    print("ACCEPTANCE", "MET" if ok else "NOT MET")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
