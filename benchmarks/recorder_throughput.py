"""Benchmark: the recorder with live contract validation against a bare nats-py consumer, on one stream.

Issue 13's target: the recorder (``harness/session/recorder.py``: ordered consumer per stream, core ``>``
subscription, live validation with the contracts' ``LiveValidator``, every message written to the history
``events.jsonl`` through the run's ``EventBus``) reads a JetStream stream at >= 0.8x the message rate of a
bare nats-py subscriber on the same stream, and loses nothing.

One nats-server is started as the engine starts embedded NATS (``harness.env.nats_server.NatsCluster``, with
the recorder's own user for core traffic, denied the stream's subjects); a stream ``BENCH`` (``orders.>``)
is filled with N valid 241-byte order messages once. Then, for each round, every contender reads the whole
stream from sequence 1 in a fresh child process (the timer starts before it connects and stops when it has
every message; for the recorder, once the history file holds them, flushed). The contenders, in an order
that rotates each round:

* ``bare``: a nats-py ordered consumer whose callback does what a minimal real consumer does: parse the
  JSON body and count it (the target's baseline);
* ``bare-count``: the same, counting only (shown for reference, the fastest nats-py can hand out messages);
* ``recorder``: this tree's recorder, a ``History`` on an ``EventBus``, a ``LiveValidator`` over 21
  channels (one with a wildcard), as the engine wires it;
* ``recorder-attach``: the same with an existing NATS's wiring (no recorder user: the core subscription
  shares the streams' connection and leaves out the stream messages it receives again itself);
* ``recorder@REF`` (``--baseline-ref REF``): the recorder of a git ref of this repository, run from a copy
  of that ref's tree, with the same child code, for a before/after in one run.

After each recorder round the child checks what it recorded: ``drain()`` (stream state vs what it saw), no
recorder problems, no contract violations, and the history file read back holds exactly N message records
with stream sequences 1..N in order. Any shortfall is printed and fails the run (exit 1).

Printed: each round's msgs/s, the median per contender, each contender's rate over the bare consumer's in
the same round (median, min-max; the target is the median of the recorder's, PASS/FAIL), the child's own CPU
time per message (what load on a shared machine changes least), counts, the load average at start and end.
Bounded: N messages (default 20,000), R rounds (default 5), each child gives up after 120 s.

    python benchmarks/recorder_throughput.py [-n 20000] [--rounds 5] [--baseline-ref issue-11]
                                             [--busy] [--profile DIR]

``--busy`` keeps one core busy with a process it starts and stops; ``--profile DIR`` writes a cProfile
of each recorder child to DIR (slower; for finding costs, not for figures).
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SUBJECT = "orders.created"
SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["order_id", "customer", "amount", "currency", "items"],
    "properties": {
        "order_id": {"type": "string", "format": "uuid"},
        "customer": {"type": "string", "minLength": 1},
        "amount": {"type": "number", "minimum": 0},
        "currency": {"enum": ["EUR", "USD"]},
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["sku"],
                "properties": {"sku": {"type": "string"}, "qty": {"type": "integer"}},
            },
        },
    },
}
BUSY = "while True: pass"
CHILD_TIMEOUT = 120.0


def order(i: int) -> bytes:
    return json.dumps({
        "order_id": f"2a0f19e1-1655-5703-aedb-{i:012d}",
        "customer": f"c-{i % 97}",
        "amount": 12.5 + i % 10,
        "currency": "EUR",
        "items": [{"sku": "A", "qty": 1}, {"sku": "B", "qty": i % 5}],
        "note": "x" * 64,
    }).encode()


# ------------------------------------------------------------------------------------------ children
async def _wait_for(count: Any, n: int, t0: float) -> None:
    while count() < n and time.perf_counter() - t0 < CHILD_TIMEOUT:
        await asyncio.sleep(0.001)


async def child_bare(url: str, n: int, parse: bool) -> dict[str, Any]:
    import nats

    got = 0
    bad = 0

    async def cb(msg: Any) -> None:
        nonlocal got, bad
        if parse:
            try:
                json.loads(msg.data)
            except ValueError:
                bad += 1
        got += 1

    t0 = time.perf_counter()
    c0 = time.process_time()
    nc = await nats.connect(url, pending_size=256 * 1024 * 1024)
    js = nc.jetstream()
    await js.subscribe(">", stream="BENCH", ordered_consumer=True, cb=cb, pending_msgs_limit=1_000_000,
                       pending_bytes_limit=512 * 1024 * 1024)
    await _wait_for(lambda: got, n, t0)
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - c0
    await nc.close()
    return {"rate": n / elapsed, "cpu_us": cpu / n * 1e6, "got": got,
            "problems": [f"{bad} bodies were not JSON"] if bad else []}


async def child_recorder(url: str, n: int, tmp: str, t0_wall: float, core_url: str | None,
                         core_denied: list[str]) -> dict[str, Any]:
    import nats  # noqa: F401 - imported before the timer starts, as the bare consumer's is
    import nats.js.api  # noqa: F401
    from sagaproof.contracts.live import LiveValidator
    from sagaproof.contracts.model import Channel, ContractSet, Message
    from sagaproof.harness.events import EventBus
    from sagaproof.harness.history import History, read_records
    from sagaproof.harness.session.recorder import Recorder

    cs = ContractSet()
    for i in range(20):  # a realistic number of channels, one with a wildcard
        cs.channels[f"svc{i}.event"] = Channel(f"svc{i}.event", producers={f"s{i}": [Message("E", SCHEMA)]})
    cs.channels["orders.*"] = Channel("orders.*", producers={"order": [Message("OrderCreated", SCHEMA)]})
    path = Path(tmp) / "events.jsonl"
    bus = EventBus()
    history = History(path, t0=t0_wall)  # the run began before the stream was filled, as in a real run
    bus.subscribe(history)
    extra: dict[str, Any] = {}
    if core_url and "core" in inspect.signature(Recorder).parameters:
        extra["core"] = ([core_url], core_denied)  # as the engine wires it with embedded NATS
    recorder = Recorder([url], bus.emit, validator=LiveValidator(cs), producer_of=lambda s: "order", **extra)
    t0 = time.perf_counter()
    c0 = time.process_time()
    await recorder.start()
    await _wait_for(lambda: recorder.per_stream.get("BENCH", 0), n, t0)
    history.flush()  # the history holds them (written to the file, not only queued)
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - c0
    await recorder.drain(timeout=10)
    got = recorder.per_stream.get("BENCH", 0)
    problems = list(recorder.problems)
    violations = recorder.violations if isinstance(recorder.violations, int) else len(recorder.violations)
    await recorder.stop()
    history.close()
    seqs = [r["stream_seq"] for r in read_records(path, kinds=("message",))]
    if seqs != list(range(1, n + 1)):
        problems.append(f"the history holds {len(seqs)} message records, not stream sequences 1..{n} in order")
    if violations:
        problems.append(f"{violations} contract violations on valid messages")
    if not history.in_order:
        problems.append("the history needed sorting: records were written out of time order")
    return {"rate": n / elapsed, "cpu_us": cpu / n * 1e6, "got": got, "recorded": len(seqs), "problems": problems}


def child_main(args: argparse.Namespace) -> int:
    if args.child in ("recorder", "recorder-attach"):
        with tempfile.TemporaryDirectory() as tmp:
            core = args.core_url if args.child == "recorder" else None
            coro = child_recorder(args.url, args.n, tmp, args.t0, core, args.core_deny.split(","))
            if args.profile:
                import cProfile

                prof = cProfile.Profile()
                res = prof.runcall(asyncio.run, coro)
                prof.dump_stats(args.profile)
            else:
                res = asyncio.run(coro)
    else:
        res = asyncio.run(child_bare(args.url, args.n, parse=args.child == "bare"))
    print("RESULT " + json.dumps(res), flush=True)
    return 0


# ------------------------------------------------------------------------------------------ parent
def start_nats(tmp: Path) -> Any:
    """The engine's embedded NATS (harness.env.nats_server.NatsCluster): its users, the recorder's core user."""
    from sagaproof.harness.env.nats_server import NatsCluster

    # as System does for a declared stream: the recorder's core user is never sent the stream's subjects
    cluster = NatsCluster(tmp / "run", tmp / "logs", size=1, recorder_deny=["orders.>"])
    (tmp / "run").mkdir(parents=True, exist_ok=True)
    (tmp / "logs").mkdir(parents=True, exist_ok=True)
    cluster.start()
    return cluster


async def fill_stream(url: str, n: int) -> None:
    import nats

    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.add_stream(name="BENCH", subjects=["orders.>"])
    pending = []
    for i in range(n):
        pending.append(await js.publish_async(SUBJECT, order(i)))
        if len(pending) >= 2000:
            await asyncio.gather(*pending)
            pending = []
    await asyncio.gather(*pending)
    info = await js.stream_info("BENCH")
    assert info.state.messages == n, info.state
    await nc.close()


def export_ref(ref: str, dest: Path) -> Path:
    """A directory holding a ``sagaproof`` package built from ``ref``'s tree (put it first on PYTHONPATH)."""
    src = dest / "src"
    src.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    pkg = dest / "path" / "sagaproof"
    shutil.copytree(src / "sagaproof", pkg)
    for part in ("harness", "contracts", "chaos"):
        shutil.copytree(src / part, pkg / part)
    return dest / "path"


def run_child(kind: str, url: str, n: int, pythonpath: str | None, profile: str | None, t0: float,
              core: tuple[str, str] = ("", "")) -> dict[str, Any]:
    env = dict(os.environ)
    cwd = None
    if pythonpath:
        env["PYTHONPATH"] = pythonpath + os.pathsep + env.get("PYTHONPATH", "")
        cwd = pythonpath
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", kind, "--url", url, "-n", str(n), "--t0", str(t0),
           "--core-url", core[0], "--core-deny", core[1]]
    if profile:
        cmd += ["--profile", profile]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=CHILD_TIMEOUT + 60)
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return {"rate": float("nan"), "cpu_us": float("nan"), "got": 0,
            "problems": [f"{kind} child failed: {out.stderr.strip()[-400:]}"]}


def measure(url: str, n: int, rounds: int, t0: float, baseline: str | None = None, baseline_ref: str = "",
            profile_dir: str | None = None, log: Any = None, core: tuple[str, str] = ("", "")) -> dict[str, Any]:
    """Alternating rounds of every contender on one filled stream; returns per-contender results."""
    contenders: list[tuple[str, str, str | None]] = [("bare", "bare", None), ("bare-count", "bare-count", None),
                                                     ("recorder", "recorder", None),
                                                     ("recorder-attach", "recorder-attach", None)]
    if baseline:
        contenders.append((f"recorder@{baseline_ref}", "recorder", baseline))
    results: dict[str, list[dict[str, Any]]] = {label: [] for label, _, _ in contenders}
    for r in range(rounds):
        k = r % len(contenders)
        for label, kind, path in contenders[k:] + contenders[:k]:
            prof = None
            if profile_dir and kind.startswith("recorder"):
                prof = str(Path(profile_dir) / f"{label.replace('@', '_at_').replace('/', '_')}-{r}.prof")
            res = run_child(kind, url, n, path, prof, t0, core)
            results[label].append(res)
            if log:
                log(f"  round {r + 1} {label}: {res['rate']:.0f} msgs/s, {res['cpu_us']:.1f} us CPU/msg, got {res['got']}/{n}"
                    + (f", problems: {res['problems']}" if res["problems"] else ""))
    return results


def paired(results: dict[str, list[dict[str, Any]]], label: str, base: str = "bare") -> list[float]:
    """Each round's rate of `label` over the same round's rate of `base` (measured moments apart, so a
    machine whose load drifts between rounds moves both)."""
    return [a["rate"] / b["rate"] for a, b in zip(results[label], results[base], strict=True)]


def summary(results: dict[str, list[dict[str, Any]]], n: int) -> tuple[list[str], bool]:
    lines = []
    ok = True
    med = {label: statistics.median(r["rate"] for r in rs) for label, rs in results.items()}
    cpu = {label: statistics.median(r["cpu_us"] for r in rs) for label, rs in results.items()}
    for label, rs in results.items():
        rates = [r["rate"] for r in rs]
        got = min(r["got"] for r in rs)
        recorded = min((r.get("recorded", r["got"]) for r in rs), default=0)
        problems = [p for r in rs for p in r["problems"]]
        pr = paired(results, label)
        lines.append(f"{label:<18} median {med[label]:6.0f} msgs/s ({', '.join(f'{x:.0f}' for x in rates)}); "
                     f"x bare: paired median {statistics.median(pr):4.2f} ({min(pr):.2f}-{max(pr):.2f}); "
                     f"{cpu[label]:5.1f} us CPU/msg; got {got}/{n}" + (f", recorded {recorded}/{n}" if "recorder" in label else "")
                     + (f"  PROBLEMS: {problems}" if problems else ""))
        if got < n or recorded < n or problems:
            ok = False
    ratio = statistics.median(paired(results, "recorder"))
    target = ratio >= 0.8
    lines.append(f"ratio of the medians recorder/bare {med['recorder'] / med['bare']:.2f}x; recorder vs bare-count "
                 f"(nats-py hands out messages, nothing else) {statistics.median(paired(results, 'recorder', 'bare-count')):.2f}x; "
                 f"CPU per message recorder/bare {cpu['recorder'] / cpu['bare']:.2f}x")
    lost = "nothing lost" if ok else "SOMETHING LOST (see above)"
    lines.append(f"target: recorder with live validation {ratio:.2f}x the bare consumer (median of the rounds' "
                 f"ratios) >= 0.8x: {'PASS' if target else 'FAIL'}; {lost}")
    return lines, ok


def run(n: int, rounds: int, *, baseline_ref: str = "", busy: bool = False, profile_dir: str | None = None,
        log: Any = None) -> dict[str, list[dict[str, Any]]]:
    """Start the embedded NATS, fill the stream, measure every contender (see the module docstring), stop."""
    procs: list[subprocess.Popen] = []
    cluster = None
    with tempfile.TemporaryDirectory() as tmp:
        try:
            cluster = start_nats(Path(tmp))
            url = cluster.url
            core = (cluster.recorder_core_urls[0], ",".join(cluster.recorder_denied))
            t0 = time.time()  # the run's start: before the stream was filled
            asyncio.run(fill_stream(url, n))
            baseline = str(export_ref(baseline_ref, Path(tmp) / "baseline")) if baseline_ref else None
            if profile_dir:
                Path(profile_dir).mkdir(parents=True, exist_ok=True)
            if busy:
                procs.append(subprocess.Popen([sys.executable, "-c", BUSY]))
                time.sleep(0.5)
            return measure(url, n, rounds, t0, baseline, baseline_ref, profile_dir, log=log, core=core)
        finally:
            for p in procs:
                p.terminate()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)
            if cluster is not None:
                cluster.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=20_000, help="messages in the stream (default 20000)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (default 5)")
    parser.add_argument("--baseline-ref", default="", help="also measure the recorder of this git ref")
    parser.add_argument("--busy", action="store_true", help="keep one core busy while measuring")
    parser.add_argument("--profile", default="", help="write cProfile files of the recorder children here")
    parser.add_argument("--child", choices=["bare", "bare-count", "recorder", "recorder-attach"], help=argparse.SUPPRESS)
    parser.add_argument("--core-url", default="", help=argparse.SUPPRESS)
    parser.add_argument("--core-deny", default="", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--t0", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child_main(args)
    if not 1 <= args.n <= 1_000_000 or not 1 <= args.rounds <= 20:
        print("-n must be 1..1000000 and --rounds 1..20.", file=sys.stderr)
        return 2
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start; "
          f"{args.n} messages of {len(order(0))} bytes, {args.rounds} rounds", flush=True)
    results = run(args.n, args.rounds, baseline_ref=args.baseline_ref, busy=args.busy,
                  profile_dir=args.profile or None, log=lambda s: print(s, flush=True))
    lines, ok = summary(results, args.n)
    print(("with one core kept busy" if args.busy else "idle machine") + ":")
    for line in lines:
        print("  " + line)
    print(f"load average {os.getloadavg()[0]:.2f} at the end", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
