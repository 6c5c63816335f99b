"""Start-up benchmark: from launching `sagaproof up` to every service ready, beside nats-server alone.

Measures, 5 times each, (a) the wall time from spawning the CLI on the example shop (or the 4-service
stand-in in tests/fixtures/mini if the shop is absent) to the moment it has written system.json, which it
does once every readiness probe passed; (b) the floor: spawning nats-server with JetStream to its /healthz
answering 200. Prints both medians and their ratio. Target: median (a) <= 1.5 s on a 2-core machine.
"""

from __future__ import annotations

import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from sagaproof.harness.env.nats_server import find_nats_server, free_port

ROOT = Path(__file__).resolve().parent.parent


RUNS = 5


def time_harness(system_dir: Path) -> float:
    report = Path(tempfile.mkdtemp(prefix="sp-bench-"))
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "sagaproof", "up", str(system_dir), "--report-dir", str(report)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
    try:
        while not (report / "system.json").exists():
            if proc.poll() is not None:
                raise SystemExit(f"sagaproof up failed: {proc.stderr.read().decode()}")
            if time.monotonic() - t0 > 60:
                raise SystemExit("sagaproof up did not come up within 60 s")
            time.sleep(0.005)
        elapsed = time.monotonic() - t0
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        shutil.rmtree(report, ignore_errors=True)
    return elapsed


def time_nats_alone() -> float:
    d = Path(tempfile.mkdtemp(prefix="sp-bench-nats-"))
    port, http = free_port(), free_port()
    t0 = time.monotonic()
    proc = subprocess.Popen([find_nats_server(), "-a", "127.0.0.1", "-p", str(port), "-m", str(http), "-js", "-sd",
                             str(d)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{http}/healthz", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() - t0 > 30:
                raise SystemExit("nats-server did not become healthy within 30 s")
            time.sleep(0.005)
        return time.monotonic() - t0
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(d, ignore_errors=True)


def main() -> None:
    shop = ROOT / "examples" / "shop"
    system_dir = shop if (shop / "sagaproof.toml").exists() else ROOT / "tests" / "fixtures" / "mini"
    floor = [time_nats_alone() for _ in range(RUNS)]
    full = [time_harness(system_dir) for _ in range(RUNS)]
    mf, mh = statistics.median(floor), statistics.median(full)
    print(f"system: {system_dir.relative_to(ROOT)}  runs: {RUNS}")
    print(f"nats-server alone to /healthz     median {mf * 1000:7.1f} ms   runs {[round(x * 1000) for x in floor]}")
    print(f"sagaproof up to all services ready median {mh * 1000:7.1f} ms   runs {[round(x * 1000) for x in full]}")
    print(f"ratio harness / nats floor: {mh / mf:.1f}x   target median <= 1500 ms: {'MET' if mh <= 1.5 else 'NOT MET'}")


if __name__ == "__main__":
    main()
