"""Shrinking a failing fault schedule (``--shrink``): the engine's last step before the result is final.

Shrinking is delta debugging (:func:`chaos.nemesis.ddmin`) over the faults as they were carried out: the
run is repeated with the same seed and a subset of that schedule, and a subset "fails" when the same check
fails first again. The empty schedule is tried first (a bug that needs no fault shrinks to no fault). The
budget is bounded (``--shrink-runs``, default ``MAX_SHRINK_RUNS`` re-runs); the smallest failing schedule
found is written to ``minimal-schedule.json`` with the command that replays it
(``sagaproof replay REPORT_DIR --schedule REPORT_DIR/minimal-schedule.json``). When the budget ran out
before ddmin finished, the result says so: it is the smallest found, not proven minimal.
"""

from __future__ import annotations

import json
import shlex
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

from sagaproof.harness.config import SystemSpec
from sagaproof.harness.events import EventBus, Phase

MAX_SHRINK_RUNS = 8


def _first_failed_check(result: Any) -> str | None:
    for c in result.checks:
        if not c.ok:
            return str(c.name)
    return None


def carried_out(faults: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The schedule as it was carried out: the faults that became active, at their actual start (on the
    schedule's clock) and for their actual length; faults that failed or never started are left out."""
    out = []
    for f in faults:
        if f.get("source", "nemesis") != "nemesis" or f.get("status") not in ("carried out", "late"):
            continue
        start = float(f.get("start") or 0.0) + max(0.0, float(f.get("late_by") or 0.0))
        duration = f.get("actual_duration")
        if not isinstance(duration, int | float) or duration <= 0:
            duration = float(f.get("duration") or 0.0)
        out.append({"id": f["id"], "kind": f["kind"], "target": f["target"], "start": round(start, 3),
                    "duration": round(float(duration), 3), "params": dict(f.get("params") or {})})
    return out


def shrink(spec: SystemSpec, opts: Any, result: Any, bus: EventBus) -> dict[str, Any] | None:
    """Find a smaller fault schedule that still fails the same check first; None if nothing to shrink."""
    from sagaproof.chaos.nemesis import ddmin
    from sagaproof.harness.session.engine import run

    target = _first_failed_check(result)
    faults = carried_out(list(result.faults))
    if not faults or target is None:
        return None
    work = Path(opts.report_dir) / "shrink"
    runs: list[dict[str, Any]] = []
    budget = max(1, int(getattr(opts, "shrink_runs", MAX_SHRINK_RUNS)))

    def fails(subset: list[dict[str, Any]]) -> bool:
        n = len(runs) + 1
        sub_opts = replace(opts, schedule=list(subset), report_dir=work / f"run-{n}", shrink=False, reports=False)
        bus.emit(Phase("shrinking", f"re-run {n} of at most {budget} with {len(subset)} of {len(faults)} faults: "
                                    f"{', '.join(f['id'] for f in subset) or 'none'}"))
        _, res = run(spec, sub_opts, EventBus())
        failed = _first_failed_check(res) == target
        runs.append({"faults": [f["id"] for f in subset], "failed": failed})
        return failed

    if fails([]):  # the bug needs no fault at all: the smallest schedule is the empty one
        minimal: list[dict[str, Any]] = []
        complete = True
    else:
        minimal = ddmin(faults, fails, max_runs=max(1, budget - 1))
        complete = len(runs) < budget
    shutil.rmtree(work, ignore_errors=True)
    path = Path(opts.report_dir) / "minimal-schedule.json"
    path.write_text(json.dumps(minimal, indent=2))
    command = f"{result.command} --schedule {shlex.quote(str(path))}"  # the replay, with this schedule
    return {"check": target, "original": len(faults), "minimal": minimal, "runs": runs, "command": command,
            "complete": complete, "reruns": len(runs),
            "verdict": (f"minimal: {len(minimal)} of {len(faults)} faults" if complete else
                        f"smallest found in {len(runs)} re-runs, not proven minimal: {len(minimal)} of "
                        f"{len(faults)} faults")}
