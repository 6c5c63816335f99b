"""After a run: shrink a failing fault schedule (``--shrink``), write the reports, print the verdict.

Shrinking is delta debugging (:func:`chaos.nemesis.ddmin`) over the faults the nemesis actually injected:
the run is repeated with the same seed and a subset of the schedule, and a subset "fails" when the same
check fails again. The empty schedule is tried first (a bug that needs no fault
shrinks to no fault). The budget is bounded (``--shrink-runs``, default ``MAX_SHRINK_RUNS`` re-runs); the smallest failing schedule found
is written to ``minimal-schedule.json`` with the command that replays it.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sagaproof.harness.config import SystemSpec
from sagaproof.harness.events import EventBus, Phase

MAX_SHRINK_RUNS = 8


def _first_failed_check(result: Any) -> str | None:
    for c in result.checks:
        if not c.ok:
            return str(c.name)
    return None


def shrink(spec: SystemSpec, opts: Any, result: Any, console: Console, bus: EventBus) -> dict[str, Any] | None:
    """Find a smaller fault schedule that still fails the same check; None if nothing to shrink."""
    from sagaproof.chaos.nemesis import ddmin
    from sagaproof.harness.runner import run

    target = _first_failed_check(result)
    faults = list(result.faults)
    if not faults or target is None:
        return None
    work = Path(opts.report_dir) / "shrink"
    runs: list[dict[str, Any]] = []

    def fails(subset: list[dict[str, Any]]) -> bool:
        n = len(runs) + 1
        sub_opts = replace(opts, schedule=[{k: v for k, v in f.items() if k not in ("started_at", "ended_at")}
                                           for f in subset],
                           report_dir=work / f"run-{n}", shrink=False)
        bus.emit(Phase("shrinking", f"re-run {n} with {len(subset)} of {len(faults)} faults"))
        console.print(f"  shrink: re-run {n} with faults {', '.join(f['id'] for f in subset)}")
        _, (res, _) = run(spec, sub_opts, EventBus())
        failed = _first_failed_check(res) == target
        runs.append({"faults": [f["id"] for f in subset], "failed": failed})
        return failed

    budget = getattr(opts, "shrink_runs", MAX_SHRINK_RUNS)
    if fails([]):  # the bug needs no fault at all: the smallest schedule is the empty one
        minimal: list[dict[str, Any]] = []
    else:
        minimal = ddmin(faults, fails, max_runs=max(1, budget - 1))
    shutil.rmtree(work, ignore_errors=True)
    clean = [{k: v for k, v in f.items() if k not in ("started_at", "ended_at")} for f in minimal]
    path = Path(opts.report_dir) / "minimal-schedule.json"
    path.write_text(json.dumps(clean, indent=2))
    command = f"{result.command} --schedule {path}"
    return {"check": target, "original": len(faults), "minimal": clean, "runs": runs, "command": command,
            "complete": len(runs) < budget}


def finish_run(spec: SystemSpec, opts: Any, result: Any, history: list[dict[str, Any]], console: Console,
               bus: EventBus) -> int:
    """Shrink if asked, write the reports, print the summary; return the exit code."""
    from sagaproof.harness.report import write_reports

    if opts.shrink and result.verdict == "fail":
        result.shrink = shrink(spec, opts, result, console, bus)
    paths = write_reports(result, Path(opts.report_dir), history)
    table = Table(title=f"sagaproof: {result.verdict.upper()}  (seed {result.seed}, {result.duration_s:.1f}s, "
                        f"{result.messages_recorded} messages, {len(result.faults)} faults)")
    table.add_column("check")
    table.add_column("verdict")
    table.add_column("summary", overflow="fold")
    for c in result.checks:
        table.add_row(c.name, "[green]pass[/]" if c.ok else "[bold red]FAIL[/]", c.summary)
    console.print(table)
    failed = [c for c in result.checks if not c.ok]
    if failed:
        first = failed[0]
        console.print(f"[bold red]First failure:[/] {first.name}")
        for line in first.details[:1]:
            console.print(line, markup=False)
        console.print(f"Reproduce: [bold]{result.command}[/]")
        if result.shrink:
            s = result.shrink
            console.print(f"Minimal fault schedule: {len(s['minimal'])} of {s['original']} faults "
                          f"({', '.join(f['kind'] + '→' + f['target'] for f in s['minimal']) or 'none'}); "
                          f"replay: [bold]{s['command']}[/]")
    for note in result.notes:
        console.print(f"note: {note}", markup=False)
    console.print(f"Report: {paths.get('report.html', opts.report_dir)}")
    return int(result.exit_code)
