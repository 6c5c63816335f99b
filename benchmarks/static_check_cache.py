"""The static contract check of a run: how long it takes as main ran it (in the run's process, before start-up)
against a run with unchanged contracts (the cached answer), on an example system.

Measures in one invocation, so both sides see the same machine load:
1. baseline: ``static_contracts(spec)``, load and check in this process, as a run did before it started anything;
2. first run: ``StaticCheck.start`` with an empty cache (a process of its own; the time until its answer);
3. second run: ``StaticCheck.start`` again, unchanged contracts (the cached answer).
Prints the figures and the ratio baseline / cached; exits 1 if the cached answer differs from the computed one
or the cached check takes 1 s or more.

    .venv/bin/python benchmarks/static_check_cache.py                 # the trips example
    .venv/bin/python benchmarks/static_check_cache.py --example shop
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--example", default="trips")
    args = parser.parse_args()
    from sagaproof.harness.config import load_system_file
    from sagaproof.harness.session.engine import static_contracts
    from sagaproof.harness.session.static_check import StaticCheck

    with tempfile.TemporaryDirectory(prefix="sagaproof-bench-") as tmp:
        system_dir = Path(tmp) / args.example
        shutil.copytree(ROOT / "examples" / args.example, system_dir,
                        ignore=shutil.ignore_patterns(".sagaproof", "__pycache__"))
        spec = load_system_file(system_dir)
        print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} (1, 5, 15 min)")
        t = time.monotonic()
        _, baseline, _ = static_contracts(spec)
        base_s = time.monotonic() - t
        print(f"baseline (in the run's process, before start-up): {base_s:.3f} s, ok={baseline.ok if baseline else None}")
        first = StaticCheck.start(spec, Path(tmp) / "work")
        assert first is not None
        computed = first.result()
        print(f"first run (own process, empty cache):             {first.seconds:.3f} s, ok={computed.ok}")
        second = StaticCheck.start(spec, Path(tmp) / "work")
        assert second is not None
        cached = second.result()
        print(f"second run (unchanged contracts, cached):         {second.seconds:.3f} s, ok={cached.ok}, "
              f"cached={second.cached}")
        print(f"ratio baseline / cached: {base_s / max(second.seconds, 1e-6):.0f}x")
        same = (cached.ok, cached.details) == (computed.ok, computed.details) == (baseline.ok, baseline.details)
        if not second.cached or not same or second.seconds >= 1.0:
            print("FAIL: the cached answer must be the computed one, read back in under 1 s")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
