"""Start-up benchmark: time to every service ready, and memory at start of the command line and the fault proxy.

Time: measures, 5 times each, (a) the wall time from spawning the CLI on the example shop (or the 4-service
stand-in in tests/fixtures/mini if the shop is absent) to the moment it has written system.json, which it
does once every readiness probe passed; (b) the floor: spawning nats-server with JetStream to its /healthz
answering 200. Prints both medians and their ratio. Target: median (a) <= 1.5 s on a 2-core machine.

Memory (Linux): the resident memory of ``sagaproof toxiproxy`` (the Toxiproxy-compatible server) once its API
answers ``/version``, and the peak of ``sagaproof --help``, each 3 times (the median), beside the same from the
command line at ``--baseline-ref`` (default: main before issue 24's lazy imports: its ``harness/front/cli.py``
read from git and run in place of this tree's, the rest of the package being this tree's) and beside the real
Toxiproxy server when ``--real-toxiproxy PATH`` names one (or ``$SAGAPROOF_REAL_TOXIPROXY``; without one it
says so). ``--memory-only`` skips the timing part.

    .venv/bin/python benchmarks/startup.py --memory-only --real-toxiproxy ../helpers/toxiproxy-real/toxiproxy-server
"""

from __future__ import annotations

import argparse
import os
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
MEMORY_RUNS = 3
BASELINE_REF = "127783a0e09dd69e33cc148e6973ff9434a7dc5a"  # main before issue 24's lazy imports
# Runs the command line of a git ref: its harness/front/cli.py (source in $SP_CLI_SOURCE) in place of this tree's.
_RUN_CLI_SOURCE = ("import os, sys, types; m = types.ModuleType('sagaproof_cli_before'); "
                   "sys.modules[m.__name__] = m; "
                   "exec(compile(os.environ['SP_CLI_SOURCE'], 'cli_before.py', 'exec'), m.__dict__); "
                   "sys.exit(m.main(sys.argv[1:]))")
_RUN_CLI = "import sys; from sagaproof.harness.front.cli import main; sys.exit(main(sys.argv[1:]))"
# Writes the process's own peak resident memory (VmHWM: since its exec, unlike ru_maxrss, which counts the
# parent's pages a forked child started with) to $SP_HWM_FILE as it exits; prefixed to the code it measures.
_HWM = ("import atexit, os\n"
        "def _hwm():\n"
        "    with open('/proc/self/status') as f:\n"
        "        kb = next(line.split()[1] for line in f if line.startswith('VmHWM:'))\n"
        "    with open(os.environ['SP_HWM_FILE'], 'w') as out:\n"
        "        out.write(kb)\n"
        "atexit.register(_hwm)\n")


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


def _vm_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise SystemExit(f"startup: no VmRSS for process {pid}")


def proxy_start_rss(cmd: list[str], env: dict[str, str] | None = None) -> float:
    """Resident MB of a Toxiproxy-compatible server (`cmd` with PORT replaced) once /version answers."""
    port = free_port()
    proc = subprocess.Popen([a.replace("PORT", str(port)) for a in cmd], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env, cwd=ROOT)
    try:
        t0 = time.monotonic()
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/version", timeout=1) as r:
                    r.read()
                break
            except OSError:
                pass
            if proc.poll() is not None:
                raise SystemExit(f"startup: {' '.join(cmd)} exited with {proc.returncode} before serving")
            if time.monotonic() - t0 > 30:
                raise SystemExit(f"startup: {' '.join(cmd)} did not serve /version within 30 s")
            time.sleep(0.01)
        time.sleep(0.2)  # settled: what it holds while idle, ready for clients
        return _vm_rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def peak_rss(code: str, args: list[str], env: dict[str, str] | None = None) -> float:
    """Peak resident MB of `python -c code args...` run to its end (its own VmHWM)."""
    with tempfile.NamedTemporaryFile("r", prefix="sp-hwm-") as out:
        proc = subprocess.run([sys.executable, "-c", _HWM + code, *args], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, env={**(env or os.environ), "SP_HWM_FILE": out.name}, cwd=ROOT,
                              timeout=60)
        if proc.returncode != 0:
            raise SystemExit(f"startup: {code} {' '.join(args)} exited with {proc.returncode}: {proc.stderr[-300:]!r}")
        return int(out.read()) / 1024


def memory(real: str | None, ref: str) -> None:
    """Memory at start: `sagaproof toxiproxy` and `sagaproof --help`, this tree's beside the baseline's and the
    real Toxiproxy's, all measured now."""
    try:
        source = subprocess.run(["git", "-C", str(ROOT), "show", f"{ref}:harness/front/cli.py"], capture_output=True,
                                text=True, timeout=60, check=True).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        why = (getattr(exc, "stderr", "") or str(exc)).strip().splitlines()
        raise SystemExit(f"startup: the baseline harness/front/cli.py at {ref} could not be read from git "
                         f"({why[-1] if why else exc}); pass an existing --baseline-ref") from None
    before_env = {**os.environ, "SP_CLI_SOURCE": source}
    ours = [sys.executable, "-m", "sagaproof"]
    before = [sys.executable, "-c", _RUN_CLI_SOURCE]
    rows: list[tuple[str, list[float]]] = [
        ("sagaproof toxiproxy, this tree", [proxy_start_rss([*ours, "toxiproxy", "--port", "PORT"])
                                            for _ in range(MEMORY_RUNS)]),
        (f"sagaproof toxiproxy at {ref[:12]}", [proxy_start_rss([*before, "toxiproxy", "--port", "PORT"], before_env)
                                                for _ in range(MEMORY_RUNS)]),
    ]
    if real:
        rows.append(("real Toxiproxy", [proxy_start_rss([real, "-host", "127.0.0.1", "-port", "PORT"])
                                        for _ in range(MEMORY_RUNS)]))
    help_rows = [("sagaproof --help, this tree", [peak_rss(_RUN_CLI, ["--help"]) for _ in range(MEMORY_RUNS)]),
                 (f"sagaproof --help at {ref[:12]}", [peak_rss(_RUN_CLI_SOURCE, ["--help"], before_env)
                                                      for _ in range(MEMORY_RUNS)])]
    load = os.getloadavg()
    print(f"memory at start (MB, median of {MEMORY_RUNS}; load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f})")
    ours_mb = statistics.median(rows[0][1])
    for name, values in rows:
        m = statistics.median(values)
        print(f"  {name:<40} resident once serving {m:6.1f}   runs {[round(v, 1) for v in values]}   "
              f"this tree / it {ours_mb / m:.2f}x")
    if not real:
        print("  real Toxiproxy: not measured (pass --real-toxiproxy PATH or set SAGAPROOF_REAL_TOXIPROXY)")
    help_mb = statistics.median(help_rows[0][1])
    for name, values in help_rows:
        m = statistics.median(values)
        print(f"  {name:<40} peak                   {m:6.1f}   runs {[round(v, 1) for v in values]}   "
              f"this tree / it {help_mb / m:.2f}x")
    print(f"  (a bare `{Path(sys.executable).name} -c pass` peaks at {peak_rss('pass', []):.1f} MB here)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--real-toxiproxy", default=os.environ.get("SAGAPROOF_REAL_TOXIPROXY"), metavar="PATH",
                    help="the real Toxiproxy server binary, to compare memory at start with")
    ap.add_argument("--baseline-ref", default=BASELINE_REF, help="git ref of the command line to compare with")
    ap.add_argument("--memory-only", action="store_true", help="only the memory at start")
    args = ap.parse_args()
    if sys.platform.startswith("linux"):
        memory(args.real_toxiproxy, args.baseline_ref)
    else:
        print("memory at start: measured on Linux only (/proc)")
    if args.memory_only:
        return
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
    try:
        main()
    except SystemExit as exc:
        if isinstance(exc.code, str):  # one sentence (a baseline that cannot load, a server that would not start)
            print(exc.code, file=sys.stderr)
            sys.exit(2)
        raise
