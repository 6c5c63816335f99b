"""Catch rate of every seeded bug of the example systems, false alarms on the clean ones, and the run time the
targeted phase costs -- all at default settings, through the real CLI (real nats-server, services and proxies).

For every seeded bug of both examples (each example's bugs.py ``EXPECTED_FIRST``) and every seed, one
``sagaproof run examples/<example> --seed N --env <X>_BUG=<bug>``; a run counts as caught when it fails (exit 1)
and its *first* failed check is the expected one. The clean shop and the clean trips run over the same seeds:
any failure there is a false alarm. Then the clean shop's run time at default settings (targeted and random
phases) beside ``--phases random`` (the nemesis as it was before the targeted phase), seed by seed, alternating,
in this same invocation (the target: at most 1.3x).

    .venv/bin/python benchmarks/catch_rate.py                        # seeds 1-20, 2 runs at once
    .venv/bin/python benchmarks/catch_rate.py --seeds 1-5 --jobs 2 --examples shop --bugs double_charge,no_reconnect
    .venv/bin/python benchmarks/catch_rate.py --timing-seeds 1-5 --no-bugs --no-clean   # only the run-time pairs

Prints one line per run as it ends and the tables at the end (markdown, as docs/checks.md shows them); with
``--json FILE`` every run's result is also written there. Exits 1 if a bug is caught in less than 0.95 of its
seeds, a clean run fails, or the time ratio is above 1.3.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = {"shop": "SHOP_BUG", "trips": "TRIPS_BUG"}
TARGET_RATE = 0.95
MAX_RATIO = 1.3


def expected_first(example: str) -> dict[str, str]:
    """The example's table of seeded bugs and the check that must be named first for each."""
    spec = importlib.util.spec_from_file_location(f"{example}_bugs", ROOT / "examples" / example / "bugs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return dict(module.EXPECTED_FIRST)


def seeds_arg(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-", 1)
            out += list(range(int(a), int(b) + 1))
        elif part.strip():
            out.append(int(part))
    return out


def run(example: str, seed: int, bug: str | None, phases: str | None = None) -> dict[str, object]:
    """One `sagaproof run`; its exit code, first failed check, wall time and fault coverage."""
    report = Path(tempfile.mkdtemp(prefix="sp-catch-"))
    cmd = [sys.executable, "-m", "sagaproof", "run", f"examples/{example}", "--seed", str(seed),
           "--report-dir", str(report)]
    if bug:
        cmd += ["--env", f"{EXAMPLES[example]}={bug}"]
    if phases:
        cmd += ["--phases", phases]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    took = time.monotonic() - t0
    try:
        data = json.loads((report / "report.json").read_text())
    except (OSError, ValueError):
        data = {}
    out = {"example": example, "bug": bug, "seed": seed, "phases": phases or "default", "exit": proc.returncode,
           "first_failure": data.get("first_failure"), "seconds": round(took, 2),
           "coverage": (data.get("coverage") or {}).get("summary")}
    if proc.returncode not in (0, 1):
        out["tail"] = (proc.stdout[-1500:] + proc.stderr[-1500:])
    if proc.returncode == 0 or os.environ.get("CATCH_RATE_KEEP") is None:
        shutil.rmtree(report, ignore_errors=True)
    else:
        out["report_dir"] = str(report)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=seeds_arg, default=seeds_arg("1-20"), help="seeds per bug and clean system (1-20)")
    ap.add_argument("--jobs", type=int, default=2, help="runs at once (2)")
    ap.add_argument("--examples", default=",".join(EXAMPLES), help="comma-separated: shop,trips")
    ap.add_argument("--bugs", default=None, help="only these bugs (comma-separated; default every one)")
    ap.add_argument("--no-bugs", action="store_true", help="skip the seeded bugs")
    ap.add_argument("--no-clean", action="store_true", help="skip the clean systems")
    ap.add_argument("--timing-seeds", type=seeds_arg, default=None,
                    help="seeds of the clean-shop run-time pairs (default: --seeds); 'none' is not accepted, use 0")
    ap.add_argument("--json", type=Path, default=None, help="write every run's result here")
    args = ap.parse_args()
    examples = [e for e in args.examples.split(",") if e]
    for e in examples:
        if e not in EXAMPLES:
            print(f"unknown example {e!r}; the examples are {', '.join(EXAMPLES)}", file=sys.stderr)
            return 2
    only = set(args.bugs.split(",")) if args.bugs else None
    jobs: list[tuple[str, int, str | None, str | None]] = []
    expected: dict[tuple[str, str], str] = {}
    if not args.no_bugs:
        for example in examples:
            for bug, check in expected_first(example).items():
                if only is None or bug in only:
                    expected[(example, bug)] = check
                    jobs += [(example, s, bug, None) for s in args.seeds]
    if not args.no_clean:
        jobs += [(example, s, None, None) for example in examples for s in args.seeds]
    timing_seeds = [s for s in (args.timing_seeds if args.timing_seeds is not None else args.seeds) if s > 0]
    if "shop" in examples:
        for s in timing_seeds:  # alternating, so load changes hit both sides alike
            jobs += [("shop", s, None, "random"), ("shop", s, None, "targeted,random")]
    print(f"{len(jobs)} runs, {args.jobs} at once; load: {os.getloadavg()}", flush=True)
    results: list[dict[str, object]] = []
    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {pool.submit(run, *job): job for job in jobs}
        for fut in as_completed(futures):
            r = fut.result()
            results.append(r)
            print(f"{r['example']:5s} {str(r['bug'] or 'clean'):17s} {r['phases']:16s} seed {r['seed']:3d}: "
                  f"exit {r['exit']}  first failure {r['first_failure']}  {r['seconds']:6.1f}s  {r['coverage']}",
                  flush=True)
            if args.json is not None:
                args.json.write_text(json.dumps(results, indent=1))
    ok = True
    print(f"\n{len(results)} runs in {time.monotonic() - t0:.0f}s; load at the end: {os.getloadavg()}\n")
    if expected:
        print("| example | seeded bug | expected first check | caught first | seeds | rate |")
        print("| --- | --- | --- | --- | --- | --- |")
        for (example, bug), check in expected.items():
            rs = [r for r in results if r["example"] == example and r["bug"] == bug and r["phases"] == "default"]
            caught = sum(1 for r in rs if r["exit"] == 1 and r["first_failure"] == check)
            rate = caught / len(rs) if rs else 0.0
            ok &= rate >= TARGET_RATE
            others = sorted({str(r["first_failure"]) for r in rs if not (r["exit"] == 1 and r["first_failure"] == check)})
            miss = f" (missed: {', '.join(others)})" if others else ""
            print(f"| {example} | {bug} | {check} | {caught}{miss} | {len(rs)} | {rate:.2f} |")
    clean = [r for r in results if r["bug"] is None]  # the run-time pairs are clean runs too
    if clean:
        print("\n| clean system | phases | runs | false alarms |\n| --- | --- | --- | --- |")
        for example in examples:
            for phases in sorted({str(r["phases"]) for r in clean if r["example"] == example}):
                rs = [r for r in clean if r["example"] == example and r["phases"] == phases]
                alarms = [f"seed {r['seed']}: {r['first_failure'] or 'exit ' + str(r['exit'])}" for r in rs
                          if r["exit"] != 0]
                ok &= not alarms
                print(f"| {example} | {phases} | {len(rs)} | {len(alarms)}"
                      f"{' (' + '; '.join(alarms) + ')' if alarms else ''} |")
    pairs = [(r, q) for r in results if r["phases"] == "random" for q in results
             if q["phases"] == "targeted,random" and q["seed"] == r["seed"] and q["example"] == r["example"]]
    if pairs:
        rnd = statistics.median(float(r["seconds"]) for r, _ in pairs)  # type: ignore[arg-type]
        both = statistics.median(float(q["seconds"]) for _, q in pairs)  # type: ignore[arg-type]
        ratio = both / rnd
        ok &= ratio <= MAX_RATIO
        print(f"\nclean shop run time, median of {len(pairs)} seeds: default (targeted + random) {both:.1f}s, "
              f"random only {rnd:.1f}s, ratio {ratio:.2f} (target <= {MAX_RATIO})")
    print("CATCH RATE", "MET" if ok else "NOT MET")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
