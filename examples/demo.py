"""`make demo`: one clean chaos run of the example shop, then one run with a seeded bug, with their reports.

Runs the real CLI twice on examples/shop with embedded NATS:
1. the correct shop under the default fault menu: expected to pass (exit 0);
2. the shop with SHOP_BUG=no_refund (payment keeps the money of orders cancelled for lack of stock):
   expected to fail (exit 1) with a missing compensation named first.
Exits 0 when both behave as expected, so `make demo` is itself a check.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEED = "1"


def run(title: str, report_dir: str, *extra: str) -> int:
    print(f"\n=== {title} ===", flush=True)
    cmd = [sys.executable, "-m", "sagaproof", "run", "examples/shop", "--seed", SEED, "--report-dir", report_dir, *extra]
    print("$ sagaproof " + " ".join(cmd[3:]), flush=True)
    return subprocess.run(cmd, cwd=ROOT).returncode


def main() -> int:
    clean = run("1/2 the correct shop, with faults", "sagaproof-report/clean")
    buggy = run("2/2 the shop with SHOP_BUG=no_refund, same seed", "sagaproof-report/no_refund",
                "--env", "SHOP_BUG=no_refund")
    print("\n=== demo summary ===")
    print(f"clean run:  exit {clean} ({'pass, as expected' if clean == 0 else 'UNEXPECTED'})  "
          f"report: {ROOT / 'sagaproof-report/clean/report.html'}")
    print(f"buggy run:  exit {buggy} ({'caught, as expected' if buggy == 1 else 'UNEXPECTED'})  "
          f"report: {ROOT / 'sagaproof-report/no_refund/report.html'}")
    return 0 if (clean, buggy) == (0, 1) else 1


if __name__ == "__main__":
    sys.exit(main())
