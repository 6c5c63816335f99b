"""Acceptance figures for `sagaproof run` on the example systems (the shop and the trip bookings) at default
settings.

For each example:
1. the correct system, 10 different seeds in a row: every run must pass (exit 0);
2. every seeded bug (its bugs.py EXPECTED_FIRST) with the demo's seed: every run must fail (exit 1) with the
   right check named first, and take at most 1.3 times the wall time of the clean run of the same seed (a
   failing run ends once the system is quiescent instead of waiting out every deadline);
3. optional (--bug-seeds N): each bug over N seeds, to show how reliably the default fault menu exposes it.
Prints one line per run (exit code, first failure, duration, faults injected) and a summary; exits 1 if an
expectation is not met. Runs the real CLI: real nats-server, real services, real fault proxies.

    .venv/bin/python benchmarks/acceptance.py                      # both examples, 10 clean seeds each
    .venv/bin/python benchmarks/acceptance.py --examples trips --seeds 3
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# example -> the environment variable that switches its seeded bugs on
EXAMPLES = {"shop": "SHOP_BUG", "trips": "TRIPS_BUG"}
MAX_RATIO = 1.3  # a failing run's wall time over the clean run's of the same seed


def expected_first(example: str) -> dict[str, str]:
    """The example's own table of seeded bugs and the check that must catch each."""
    spec = importlib.util.spec_from_file_location(f"{example}_bugs", ROOT / "examples" / example / "bugs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return dict(module.EXPECTED_FIRST)


def run(example: str, seed: int, bug: str | None) -> tuple[int, str | None, float, int]:
    report = Path(tempfile.mkdtemp(prefix="sp-accept-"))
    cmd = [sys.executable, "-m", "sagaproof", "run", f"examples/{example}", "--seed", str(seed),
           "--report-dir", str(report)]
    if bug:
        cmd += ["--env", f"{EXAMPLES[example]}={bug}"]
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
    ap.add_argument("--examples", default=",".join(EXAMPLES), help="comma-separated: shop,trips")
    ap.add_argument("--seeds", type=int, default=10, help="clean runs per example (seeds 1..N)")
    ap.add_argument("--bug-seeds", type=int, default=1, help="seeds per bug (1..N)")
    args = ap.parse_args()
    ok = True
    summary: list[str] = []
    for example in args.examples.split(","):
        if example not in EXAMPLES:
            print(f"unknown example {example!r}; the examples are {', '.join(EXAMPLES)}", file=sys.stderr)
            return 2
        clean_times, clean_pass = [], 0
        for seed in range(1, args.seeds + 1):
            code, first, took, faults = run(example, seed, None)
            clean_times.append(took)
            clean_pass += code == 0
            ok &= code == 0
            print(f"{example:5s} clean            seed {seed:3d}: exit {code}  first failure {first}  {took:5.1f}s  "
                  f"{faults} faults", flush=True)
        caught: dict[str, int] = {}
        ratios: dict[str, float] = {}
        for bug, expected in expected_first(example).items():
            for seed in range(1, args.bug_seeds + 1):
                code, first, took, faults = run(example, seed, bug)
                right = code == 1 and first == expected
                caught[bug] = caught.get(bug, 0) + right
                ratio = took / clean_times[seed - 1] if seed <= len(clean_times) else float("nan")
                if seed == 1:
                    ok &= right and not ratio > MAX_RATIO
                    ratios[bug] = ratio
                print(f"{example:5s} {bug:17s} seed {seed:3d}: exit {code}  first failure {first}  (expected "
                      f"{expected})  {took:5.1f}s  {faults} faults  failing/clean {ratio:.2f}", flush=True)
        if clean_times:
            summary.append(f"{example}: clean {clean_pass}/{len(clean_times)} seeds passed, median "
                           f"{statistics.median(clean_times):.1f}s per run")
        summary += [f"{example} {bug}: caught with the right check first in {n}/{args.bug_seeds} seeds"
                    for bug, n in caught.items()]
        summary += [f"{example} {bug}: failing run / clean run of seed 1 = {r:.2f} (at most {MAX_RATIO})"
                    for bug, r in ratios.items()]
    print()
    print("\n".join(summary))
    print("ACCEPTANCE", "MET" if ok else "NOT MET")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
