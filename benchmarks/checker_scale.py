"""Scale benchmark of the saga checks on the path a run takes: a written ``events.jsonl`` judged by what
``sagaproof run`` calls, beside the checker over a list in memory, and beside the engine path of an older
commit, all measured in the same run on the same histories.

Two synthetic histories per size (generation and writing are not timed):

* ``shop``: the shop's sequential checkout (mostly clean sagas, some aborted with compensation, a few double
  effects and stuck sagas), faults starting and ending throughout.
* ``trips``: the trip bookings' shape: CloudEvents (the key is ``data.trip_id``), a retried charge, two holds
  in parallel, a refund that is both compensation and terminal event, a hold that lands after the saga was
  decided.

Three ways of judging each, timed (wall and CPU seconds, microseconds per message):

* ``engine``: the history written to ``events.jsonl`` by the engine's writer (:class:`harness.history.History`)
  and judged by the registered saga check (:func:`harness.checks.saga_checks`, which ``sagaproof run`` runs
  through :func:`harness.checks.run_checks`) with the facts a run gives it (the message count, the report
  directory as scratch): the stream, the sharding, the merge;
* ``memory``: :func:`harness.checks.checker.check_history` over the list in memory (no file, no shards);
* a ref: the engine path of each ``--baseline-ref`` (repeatable; default: main before issue 24), its
  ``harness/history.py``, ``harness/checks/spill.py`` (when it has one), ``harness/checks/checker.py`` (with
  ``saga_result.py``, ``saga_model.py`` and ``saga_verdict.py`` when it has them) and
  ``harness/checks/__init__.py`` read from git, on the same file, up to ``--baseline-max`` messages (the
  default baseline took 45 s of CPU for 1M). When a baseline was asked for and cannot be loaded, the benchmark
  says so in one sentence and exits 2; ``--no-baseline`` skips them.

It checks that every path's verdict agrees with the engine path's (sagas, counts, violations by check and key,
messages, duplicates) and prints each path's CPU relative to the engine path's. The last column is the
per-message CPU of the engine path relative to the smallest size (a linear path stays near 1.0); the last line
gives the worst per-message CPU as seconds per 1M messages against the target of 10.

    .venv/bin/python benchmarks/checker_scale.py                       # 10k, 100k, 1M (baseline up to 200k)
    .venv/bin/python benchmarks/checker_scale.py 10000 200000 1000000 --baseline-ref 49f55ea --baseline-ref main
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any

from sagaproof.harness.checks.checker import check_history
from sagaproof.harness.config import ChaosSpec, NatsSpec, SagaSpec, SystemSpec, WorkloadSpec
from sagaproof.harness.history import History, HistoryReader
from synthetic import SHOP, SHOP_SHAPES, TRIPS, TRIPS_SHAPES, fault_record, interleaved

ROOT = Path(__file__).resolve().parent.parent
BASELINE_REF = "49f55ea901d2beee947bf960817f05e0f6b027b3"  # main before issue 24 (the JSON shard files)

def synthetic_history(n_messages: int, shapes: list[tuple[float, list[str]]], nested: bool,
                      seed: int = 1) -> list[dict[str, Any]]:
    """About n_messages message records (:func:`synthetic.interleaved`: ~100 sagas in flight, a fault every ~500
    messages); `nested`: CloudEvents, the key in ``data.trip_id``."""
    records: list[dict[str, Any]] = []
    for what, t, about in interleaved(n_messages, shapes, random.Random(seed)):
        if what == "message":
            seq, key, subject = about
            data = ({"specversion": "1.0", "id": f"e{seq}", "type": subject, "data": {"trip_id": key}} if nested
                    else {"order_id": key, "event_id": f"e{seq}"})
            records.append({"kind": "message", "seq": seq, "t": t, "subject": subject, "stream": "S",
                            "stream_seq": seq, "producer": subject.split(".")[0], "headers": {}, "data": data,
                            "size": 64})
        elif what != "saga":
            records.append(fault_record(what, t, about))
    return records


BASELINE_FILES = (("harness/history.py", "sagaproof.harness.history", True),
                  ("harness/checks/spill.py", "sagaproof.harness.checks.spill", False),
                  # the checker's rooms since issue 25 (absent before: the checker was one module)
                  ("harness/checks/saga_result.py", "sagaproof.harness.checks.saga_result", False),
                  ("harness/checks/saga_model.py", "sagaproof.harness.checks.saga_model", False),
                  ("harness/checks/saga_verdict.py", "sagaproof.harness.checks.saga_verdict", False),
                  ("harness/checks/checker.py", "sagaproof.harness.checks.checker", True),
                  ("harness/checks/__init__.py", "sagaproof.harness.checks", True))


def baseline_engine(ref: str) -> dict[str, Any]:
    """The saga check of the engine at git ``ref``: its ``harness/history.py``, ``harness/checks/spill.py`` (if
    it has one), ``harness/checks/checker.py`` and ``harness/checks/__init__.py``, each importing the others of
    the same ref, as modules (``checks`` and ``history`` in the dict); raises SystemExit(2) with one sentence
    when it cannot be loaded."""
    tag = ref.replace("/", "_").replace("~", "_").replace("^", "_")[:12]
    names = {dotted: f"{dotted.rsplit('.', 1)[-1]}_before_{tag}" for _, dotted, _ in BASELINE_FILES}
    names["sagaproof.harness.checks"] = f"checks_before_{tag}"
    sources = {}
    for path, dotted, required in BASELINE_FILES:
        try:
            sources[dotted] = subprocess.run(["git", "-C", str(ROOT), "show", f"{ref}:{path}"], capture_output=True,
                                             text=True, timeout=60, check=True).stdout
        except (OSError, subprocess.SubprocessError) as exc:
            if not required:
                continue
            why = getattr(exc, "stderr", "") or str(exc)
            raise SystemExit(f"checker_scale: the baseline {path} at {ref} could not be read from git "
                             f"({why.strip().splitlines()[-1] if why.strip() else exc}); pass an existing "
                             f"--baseline-ref or --no-baseline") from None
    modules = {}
    for path, dotted, _ in BASELINE_FILES:
        if dotted not in sources:
            continue
        source = sources[dotted]
        for other in sources:  # the longest names first: checks.checker before checks
            if other != "sagaproof.harness.checks":
                source = source.replace(f"{other} import", f"{names[other]} import")
        source = source.replace("sagaproof.harness.checks import", f"{names['sagaproof.harness.checks']} import")
        module = types.ModuleType(names[dotted])
        module.__file__ = f"{ref}:{path}"
        sys.modules[names[dotted]] = module  # dataclasses look their module up
        try:
            exec(compile(source, f"{ref}:{path}", "exec"), module.__dict__)  # noqa: S102 - our own history
        except Exception as exc:  # noqa: BLE001 - any failure to load is the one sentence below
            raise SystemExit(f"checker_scale: the baseline {path} at {ref} does not load ({type(exc).__name__}: "
                             f"{exc}); pass an --baseline-ref whose engine path matches this tree, or "
                             f"--no-baseline") from None
        modules[dotted] = module
    checks = modules["sagaproof.harness.checks"]
    if not hasattr(checks, "saga_checks"):
        raise SystemExit(f"checker_scale: the baseline at {ref} has no harness.checks.saga_checks; pass an "
                         f"--baseline-ref after the floors move, or --no-baseline")
    sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short=12", ref], capture_output=True, text=True,
                         timeout=60).stdout.strip()
    return {"checks": checks, "history": modules["sagaproof.harness.history"], "sha": sha or ref}


def write_history(records: list[dict[str, Any]], directory: Path) -> Path:
    """The records as the engine writes them (History, sorted at close)."""
    path = directory / "events.jsonl"
    h = History(path, t0=0.0)
    for rec in records:
        h.write(dict(rec))
    h.close()
    return path


def engine_judge(checks: Any, reader: Any, spec: SagaSpec, end: float, n: int, scratch: Path) -> Any:
    """What ``sagaproof run`` does to judge the sagas: the registered saga check with a run's facts."""
    system = SystemSpec(path=scratch / "sagaproof.toml", root=scratch, nats=NatsSpec(), services={},
                        sagas={spec.name: spec}, workload=WorkloadSpec(), invariants=(), invariant_timeout=1.0,
                        chaos=ChaosSpec())
    ctx = checks.CheckContext(system, reader, checks.Window(), end, end + 100.0,
                              {"messages": n, "scratch": scratch, "validator": False})
    outcomes = list(checks.saga_checks(ctx))
    return ctx.facts["saga_result"], outcomes


def timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[float, float, Any]:
    gc.collect()
    gc.freeze()  # what the caller holds; keep the collector from rescanning it
    w0, c0 = time.perf_counter(), time.process_time()
    result = fn(*args, **kwargs)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    gc.unfreeze()
    return wall, cpu, result


def verdict(result: Any) -> tuple[Any, ...]:
    return (result.sagas_checked, result.counts, sorted((v.check, v.key) for v in result.violations),
            result.messages_seen, result.duplicates_ignored)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("sizes", nargs="*", type=int, default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--baseline-ref", action="append", default=None,
                    help=f"git ref of an engine path to compare with (repeatable; default {BASELINE_REF[:12]})")
    ap.add_argument("--baseline-max", type=int, default=200_000, help="largest size the baselines are run on")
    ap.add_argument("--no-baseline", action="store_true", help="do not run a baseline")
    ap.add_argument("--scratch", default=None, help="directory for the history files (default: the temp dir)")
    args = ap.parse_args()
    refs = [] if args.no_baseline else (args.baseline_ref or [BASELINE_REF])
    befores = [(ref, baseline_engine(ref)) for ref in refs]
    from sagaproof.harness import checks

    load = os.getloadavg()
    print(f"load: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores; baselines: "
          f"{', '.join(r + ' = ' + b['sha'] for r, b in befores) or 'none'} (up to {args.baseline_max} messages)")
    print(f"{'history':>7} {'messages':>9} | {'path':<14} {'wall s':>7} {'cpu s':>7} {'us/msg':>7} "
          f"{'cpu/engine':>10} | {'sagas':>7} {'viol.':>6} {'linear':>6}")
    disagree = 0
    worst = 0.0
    for name, spec, shapes, nested in (("shop", SHOP, SHOP_SHAPES, False), ("trips", TRIPS, TRIPS_SHAPES, True)):
        base = None
        for n in args.sizes:
            history = synthetic_history(n, shapes, nested)
            end = history[-1]["t"]
            rows = []
            with tempfile.TemporaryDirectory(prefix="sp-scale-", dir=args.scratch) as d:
                path = write_history(history, Path(d))
                ewall, ecpu, (eres, _) = timed(engine_judge, checks, HistoryReader(path), spec, end, n, Path(d))
                rows.append(("engine", ewall, ecpu, eres))
                mwall, mcpu, mres = timed(check_history, history, {spec.name: spec}, healed_at=end, end_at=end + 100.0)
                rows.append(("memory", mwall, mcpu, mres))
                for ref, before in befores:
                    if n <= args.baseline_max:
                        reader = before["history"].HistoryReader(path)
                        bwall, bcpu, (bres, _) = timed(engine_judge, before["checks"], reader, spec, end, n, Path(d))
                        rows.append((ref[:12], bwall, bcpu, bres))
            per = ecpu / n * 1e6
            base = base or per
            worst = max(worst, per)
            for i, (path_name, wall, cpu, res) in enumerate(rows):
                same = verdict(res) == verdict(eres)
                disagree += not same
                lead = f"{name:>7} {n:>9}" if i == 0 else " " * 17
                tail = f" {per / base:>6.2f}" if i == 0 else ""
                print(f"{lead} | {path_name:<14} {wall:>7.2f} {cpu:>7.2f} {cpu / n * 1e6:>7.2f} {cpu / ecpu:>9.2f}x | "
                      f"{res.sagas_checked:>7} {len(res.violations):>6}{tail}"
                      + ("" if same else "  VERDICT DIFFERS FROM THE ENGINE'S"), flush=True)
            del history, eres, mres, rows
    print("engine: a written events.jsonl judged by the registered saga check (what `sagaproof run` calls); memory: "
          "check_history over a list in memory; a ref: the engine path at that commit, on the same file; "
          "cpu/engine: CPU seconds relative to the engine path's; linear: engine us/msg relative to the smallest size")
    print(f"engine path: at most {worst:.2f} us of CPU per message, {worst:.2f} s per 1M messages "
          f"(target: at most 10 s per 1M: {'met' if worst <= 10.0 else 'NOT met'})")
    if disagree:
        print(f"checker_scale: {disagree} judgements differ from the engine path's", file=sys.stderr)
        return 1
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
