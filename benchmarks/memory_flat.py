"""Peak memory of judging a run against its length: does the judging stay flat as the history grows?

For each size (default 10k, 100k and 500k messages) a child process writes a synthetic history of the example
shop to ``events.jsonl`` with the engine's writer (:class:`harness.history.History`): checkout sagas (mostly
clean, some aborted with compensations, a few double charges and stuck sagas), their start requests, faults
every 500 messages, and what the observed links see of each stored message: its delivery to each service whose
contract receives it and that service's answer (``wire`` records in the broker view's column form, a few
naks and redeliveries), plus the connections and consumers. A history of 500k messages is about what a
30-minute nightly records; running the shop that long here would take the half hour.

Then, each in a fresh process, the history is judged by every registered check with the facts ``sagaproof run``
gives them (the message count, the report directory as scratch, the broker facts from the shop's real
contracts, quiescence), two ways:

* ``engine``: this tree's checks (:data:`harness.checks.CHECKS`, through :func:`harness.checks.run_checks`);
* ``baseline``: the same from ``--baseline-ref`` (default: main before issue 24): its
  ``harness/history.py``, ``harness/checks/__init__.py`` and ``harness/checks/consumption.py`` read from git
  into modules of their own (the rest of the package is this tree's). When the baseline was asked for and
  cannot be loaded, the benchmark says so in one sentence and exits 2; ``--no-baseline`` skips it.

It prints each process's peak RSS (``ru_maxrss``: the interpreter and imports included), its CPU seconds,
whether the verdicts agree, and the growth per message from the smallest size to each larger one, with the
ratio of the baseline's growth to the engine's. Flat is a growth near zero: the target is at most 0.05 KB
per message. Part of what grows is the verdict itself, which the report writes out: a convergence time per
saga (report.json lists them by key), each violation with its events, each finding with its text. The
``results MB`` column is its size (every object the returned results reach, counted once), and the growth is
split into that part and the rest (what the checks hold while they work).

    .venv/bin/python benchmarks/memory_flat.py                      # 10k, 100k, 500k
    .venv/bin/python benchmarks/memory_flat.py --sizes 10000 100000
    .venv/bin/python benchmarks/memory_flat.py --clean     # a correct system's history: no violations
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any

from synthetic import SHOP_SHAPES, fault_record, interleaved

ROOT = Path(__file__).resolve().parent.parent
SHOP = ROOT / "examples" / "shop"
BASELINE_REF = "49f55ea901d2beee947bf960817f05e0f6b027b3"  # main before issue 24
BASELINE_FILES = (("harness/history.py", "history_before", "sagaproof.harness.history"),
                  ("harness/checks/consumption.py", "consumption_before", "sagaproof.harness.checks.consumption"),
                  ("harness/checks/__init__.py", "checks_before", "sagaproof.harness.checks"))
SERVICES = ("order", "payment", "inventory", "shipping")
PRODUCER = {"orders": "order", "payments": "payment", "inventory": "inventory", "shipping": "shipping"}


def shop() -> tuple[Any, Any]:
    from sagaproof.harness.config import load_system_file
    from sagaproof.harness.session.engine import static_contracts

    spec = load_system_file(SHOP)
    return spec, static_contracts(spec)[0]


def write(n: int, directory: Path, clean: bool = False) -> dict[str, Any]:
    """A synthetic shop history of about n messages in directory/events.jsonl (see the module docstring);
    `clean`: only sagas that complete or abort with their compensations (a correct system's run)."""
    from sagaproof.harness.checks.consumption import receives_from_contracts
    from sagaproof.harness.history import History

    _, contracts = shop()
    receivers: dict[str, list[str]] = {}
    for r in receives_from_contracts(contracts):
        receivers.setdefault(r.pattern, []).append(r.service)
    rng = random.Random(1)
    h = History(directory / "events.jsonl", t0=0.0)
    t = 0.0
    for svc in SERVICES:
        h.write({"kind": "nats_connect", "t": t, "service": svc, "conn": 1, "name": svc})
        h.write({"kind": "js_consumer", "t": t, "service": svc, "conn": 1, "stream": "SHOP", "consumer": svc,
                 "durable": True, "filter_subjects": [p for p, s in receivers.items() if svc in s],
                 "ack_policy": "explicit", "ack_wait": 30.0, "max_deliver": -1})
        h.write({"kind": "nats_sub", "t": t, "service": svc, "conn": 1, "subject": f"deliver.{svc}", "queue": None,
                 "sid": "2"})
    wire: dict[str, dict[str, list[Any]]] = {}

    def flush(svc: str) -> None:
        w = wire.pop(svc)
        d, a = w["d"], w["a"]
        h.write({"kind": "wire", "t": round(t, 6), "service": svc,
                 "deliveries": {"t": [x[0] for x in d], "conn": [1] * len(d), "subject": [x[1] for x in d],
                                "sid": ["2"] * len(d), "ack": " ".join(x[2] for x in d)},
                 "answers": {"t": [x[0] for x in a], "conn": [1] * len(a), "how": [x[1] for x in a],
                             "ack": " ".join(x[2] for x in a)}})

    for what, t, about in interleaved(n, SHOP_SHAPES[:2] if clean else SHOP_SHAPES, rng, key="ord-{:08d}".format):
        if what == "saga":  # its start request, accepted
            h.write({"kind": "operation", "t": round(t, 6), "op": "start", "saga": "checkout", "key": about,
                     "outcome": "ok", "completed": round(t, 6), "detail": "201"})
        elif what == "message":
            seq, key, subject = about
            h.write({"kind": "message", "t": round(t, 6), "subject": subject, "stream": "SHOP", "stream_seq": seq,
                     "producer": PRODUCER[subject.split(".")[0]], "headers": {"Nats-Msg-Id": f"m{seq}"},
                     "data": {"order_id": key, "event_id": f"e{seq}", "amount": 42, "items": ["sku-1", "sku-2"]},
                     "size": 120})
            for svc in receivers.get(subject, ()):
                w = wire.setdefault(svc, {"d": [], "a": []})
                tries = 2 if rng.random() < 0.02 else 1
                for k in range(1, tries + 1):
                    ack = f"$JS.ACK.SHOP.{svc}.{k}.{seq}.{seq}.1700000000000000000.0"
                    w["d"].append((round(t + 0.0001 * k, 6), subject, ack))
                    w["a"].append((round(t + 0.0002 * k, 6), "nak" if k < tries else "ack", ack))
                if len(w["d"]) >= 200:
                    flush(svc)
        else:
            h.write(fault_record(what, t, about, at=round(t, 6)))
    for svc in list(wire):
        flush(svc)
    h.close()
    return {"messages": h.messages, "end": h.max_t, "bytes": (directory / "events.jsonl").stat().st_size}


def load_baseline(ref: str) -> dict[str, types.ModuleType]:
    """The baseline's modules from git, or SystemExit(2) with one sentence."""
    modules: dict[str, types.ModuleType] = {}
    for path, name, _ in BASELINE_FILES:
        try:
            source = subprocess.run(["git", "-C", str(ROOT), "show", f"{ref}:{path}"], capture_output=True,
                                    text=True, timeout=60, check=True).stdout
        except (OSError, subprocess.SubprocessError) as exc:
            why = (getattr(exc, "stderr", "") or str(exc)).strip().splitlines()
            raise SystemExit(f"memory_flat: the baseline {path} at {ref} could not be read from git "
                             f"({why[-1] if why else exc}); pass an existing --baseline-ref or --no-baseline") from None
        for _, other, other_dotted in BASELINE_FILES:
            source = source.replace(f"{other_dotted} import", f"{other} import").replace(
                f"import {other_dotted}\n", f"import {other}\n")
        module = types.ModuleType(name)
        module.__file__ = f"{ref}:{path}"
        sys.modules[name] = module  # dataclasses look their module up
        try:
            exec(compile(source, f"{ref}:{path}", "exec"), module.__dict__)  # noqa: S102 - our own history
        except Exception as exc:  # noqa: BLE001 - any failure to load is the one sentence below
            raise SystemExit(f"memory_flat: the baseline {path} at {ref} does not load ({type(exc).__name__}: "
                             f"{exc}); pass an --baseline-ref whose checks match this tree, or --no-baseline") from None
        modules[name] = module
    return modules


def judge(mode: str, directory: Path, facts: dict[str, Any], ref: str) -> dict[str, Any]:
    """Judge directory/events.jsonl as ``sagaproof run`` does; the peak RSS of this process."""
    if mode == "baseline":
        mods = load_baseline(ref)
        checks, reader = mods["checks_before"], mods["history_before"].HistoryReader(directory / "events.jsonl")
    else:
        from sagaproof.harness import checks
        from sagaproof.harness.history import HistoryReader

        reader = HistoryReader(directory / "events.jsonl")
    spec, contracts = shop()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    end = facts["end"]
    ctx = checks.CheckContext(spec, reader, checks.Window(), 0.0, end + 1.0, {
        "messages": facts["messages"], "scratch": directory, "validator": contracts is not None,
        "planned_faults": [], "schedule_tolerance": 0.0, "quiescent_at": end + 0.5,
        "broker": {"receives_from": contracts, "final": True, "streams": {"SHOP": list(spec.nats.streams[0].subjects)},
                   "services": list(SERVICES)}})
    w0, c0 = time.perf_counter(), time.process_time()
    outcomes = checks.run_checks(ctx)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    saga = ctx.facts.get("saga_result")
    seen: set[int] = set()
    results = sum(deep_size(x, seen) for x in (saga, ctx.facts.get("broker_report"), outcomes))
    return {"mode": mode, "peak_kb": peak, "before_kb": before, "cpu": cpu, "wall": wall, "results_kb": results / 1024,
            "verdicts": {o.name: [o.ok, o.summary] for o in outcomes},
            "sagas": saga.sagas_checked if saga is not None else None}


def deep_size(obj: Any, seen: set[int]) -> int:
    """Bytes held by obj and everything it references that was not counted yet (the verdict the checks return:
    per-saga convergence times, violations with their events, findings with their text)."""
    total = 0
    stack = [obj]
    while stack:
        o = stack.pop()
        if id(o) in seen or o is None or isinstance(o, type | types.ModuleType | types.FunctionType):
            continue
        seen.add(id(o))
        total += sys.getsizeof(o)
        if isinstance(o, dict):
            stack.extend(o.keys())
            stack.extend(o.values())
        elif isinstance(o, list | tuple | set | frozenset):
            stack.extend(o)
        elif hasattr(o, "__dict__"):
            stack.append(vars(o))
        elif hasattr(o, "__slots__"):
            stack.extend(getattr(o, name, None) for name in o.__slots__)
    return total


def child(*args: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        print(out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}",
              file=sys.stderr)
        raise SystemExit(out.returncode or 1)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 500_000], help="messages")
    ap.add_argument("--baseline-ref", default=BASELINE_REF, help="git ref of the checks to compare with")
    ap.add_argument("--no-baseline", action="store_true", help="do not run the baseline")
    ap.add_argument("--clean", action="store_true",
                    help="a correct system's history: no double charges, no stuck sagas (so no violations)")
    ap.add_argument("--write", nargs=3, metavar=("N", "DIR", "CLEAN"), help=argparse.SUPPRESS)
    ap.add_argument("--judge", nargs=4, metavar=("MODE", "DIR", "FACTS", "REF"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.write:
        print(json.dumps(write(int(args.write[0]), Path(args.write[1]), args.write[2] == "clean")))
        return 0
    if args.judge:
        mode, d, facts, ref = args.judge
        print(json.dumps(judge(mode, Path(d), json.loads(facts), ref)))
        return 0
    modes = ["engine"] if args.no_baseline else ["engine", "baseline"]
    if not args.no_baseline:
        load_baseline(args.baseline_ref)  # fail at once, in one sentence, when it cannot load
    load = os.getloadavg()
    print(f"load: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores; baseline: "
          f"{'none' if args.no_baseline else args.baseline_ref[:12]}; history: "
          f"{'clean (no violations)' if args.clean else 'with violations (2% double charges, 1% stuck sagas)'}")
    print(f"{'messages':>9} {'file MB':>8} | {'engine peak MB':>14} {'cpu s':>6} {'results MB':>10} | "
          f"{'baseline peak MB':>16} {'cpu s':>6} {'ratio':>6} | verdicts")
    rows: list[dict[str, Any]] = []
    for n in args.sizes:
        with tempfile.TemporaryDirectory(prefix="sp-mem-") as d:
            facts = child("--write", str(n), d, "clean" if args.clean else "failing")
            got = {m: child("--judge", m, d, json.dumps(facts), args.baseline_ref) for m in modes}
        e = got["engine"]
        b = got.get("baseline")
        # the checks both have (checks registered after the baseline, such as the status reads, are this tree's)
        common = sorted(e["verdicts"].keys() & b["verdicts"].keys()) if b else []
        same = b is None or (all(e["verdicts"][k] == b["verdicts"][k] for k in common) and e["sagas"] == b["sagas"])
        rows.append({"n": facts["messages"], **{m: got[m]["peak_kb"] for m in modes}, "results": e["results_kb"]})
        base_txt = (f"{b['peak_kb'] / 1024:>16.1f} {b['cpu']:>6.1f} {b['peak_kb'] / e['peak_kb']:>5.2f}x"
                    if b else f"{'-':>16} {'-':>6} {'-':>6}")
        print(f"{facts['messages']:>9} {facts['bytes'] / 2**20:>8.1f} | {e['peak_kb'] / 1024:>14.1f} {e['cpu']:>6.1f} "
              f"{e['results_kb'] / 1024:>10.1f} | {base_txt} | {'the same' if same else 'DIFFER'} ({e['sagas']} sagas"
              + (f", {len(common)} checks both have" if b else "") + ")", flush=True)
        if not same:
            diff = {k: (e["verdicts"][k], b["verdicts"][k]) for k in common if b and b["verdicts"][k] != e["verdicts"][k]}
            print(f"   differing: {diff}")
    print("growth of the peak per message, from the smallest size:")
    first = rows[0]
    worst = 0.0
    for r in rows[1:]:
        dn = r["n"] - first["n"]
        eg = (r["engine"] - first["engine"]) / dn
        rg = (r["results"] - first["results"]) / dn
        worst = max(worst, eg)
        line = (f"  {first['n']:>9} -> {r['n']:>9}: engine {eg:.4f} KB/msg (of which the verdict it returns "
                f"{rg:.4f}, the rest {eg - rg:.4f})")
        if "baseline" in r:
            bg = (r["baseline"] - first["baseline"]) / dn
            line += f", baseline {bg:.4f} KB/msg" + (f" ({bg / eg:.0f}x the engine's)" if eg > 0 else "")
        print(line)
    print(f"target: at most 0.05 KB per message; the engine's largest growth is {worst:.4f} KB/msg "
          f"({'met' if worst <= 0.05 else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    try:
        sys.exit(main())
    except SystemExit as exc:
        if isinstance(exc.code, str):  # a baseline asked for that cannot load: one sentence, exit 2
            print(exc.code, file=sys.stderr)
            sys.exit(2)
        raise
