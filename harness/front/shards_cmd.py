"""The command side of sharded runs (``sagaproof run DIR --seeds 1-100 --jobs N``): the options each seed's
child gets, the live per-seed lines, the summary (seeds passed and failed, each failure's first check and its
replay command) and the merged report written to ``OUT`` (``report.json``, ``junit.xml``, ``report.html``).

The seeds are run by :func:`harness.session.shards.run_shards`; ``sagaproof merge`` prints the same summary.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from rich.markup import escape
from sagaproof.harness.errors import ConfigError
from sagaproof.harness.session.shards import ShardOutcome, run_shards

__all__ = ["cmd_run_shards", "passthrough_options", "print_summary"]


def passthrough_options(args: Any) -> list[str]:
    """The ``sagaproof run`` options every seed's child gets (all but --seed(s), --jobs and --report-dir)."""
    out: list[str] = []
    if args.sagas is not None:
        out += ["--sagas", str(args.sagas)]
    if args.duration is not None:
        out += ["--duration", f"{args.duration:g}s"]
    if args.faults is not None:
        out += ["--faults", ",".join(args.faults) or "none"]
    if args.intensity is not None:
        out += ["--intensity", f"{args.intensity:g}"]
    if getattr(args, "phases", None) is not None:
        out += ["--phases", ",".join(args.phases)]
    if args.shrink:
        out += ["--shrink", "--shrink-runs", str(args.shrink_runs)]
    if args.no_chaos:
        out += ["--no-chaos"]
    if args.schedule is not None:
        out += ["--schedule", str(Path(args.schedule).resolve())]
    for item in args.env:
        out += ["--env", item]
    for plugin in getattr(args, "plugin", None) or []:  # resolved already: the same module in every child
        out += ["--plugin", plugin]
    return out


def cmd_run_shards(args: Any, console: Any, spec: Any = None) -> int:
    """``sagaproof run DIR --seeds ... --jobs N``: run the seeds, print one summary, write the merged report."""
    from sagaproof.harness.report.merge import entry_from_outcome, exit_code_of, write_merged

    seeds: list[int] = args.seeds
    jobs = args.jobs or 1
    attached = [n for n, s in (spec.services.items() if spec is not None else []) if s.attached]
    if jobs > 1 and attached:
        # Two runs on one deployment would each record the other's sagas, and judge them unfinished at its end.
        raise ConfigError(f"--jobs {jobs}: the attached services ({', '.join(attached)}) are one deployment that "
                          f"every seed shares, so their seeds must run one at a time; use --jobs 1, or shard over "
                          f"machines that each have their own deployment.")
    report_dir = Path(args.report_dir)
    for p in ("report.json", "junit.xml", "report.html"):
        (report_dir / p).unlink(missing_ok=True)
    extra = passthrough_options(args)
    if args.schedule is not None and not Path(args.schedule).is_file():
        raise ConfigError(f"--schedule {args.schedule}: no such file; give the path of a schedule such as a "
                          f"shrinking run's minimal-schedule.json.")

    def argv_for(seed: int, seed_dir: Path) -> list[str]:
        return [sys.executable, "-m", "sagaproof", "run", str(args.dir), "--seed", str(seed),
                "--report-dir", str(seed_dir), *extra]

    console.print(f"[bold]sagaproof run[/] {args.dir}  {len(seeds)} seeds ({_seed_text(seeds)}), {jobs} at a time  "
                  f"report={report_dir}")
    t0 = time.monotonic()

    def on_finish(o: ShardOutcome) -> None:
        if o.verdict == "pass":
            console.print(f"  seed {o.seed:<6} [green]PASS[/]  {o.wall_s:6.1f}s")
        elif o.verdict == "fail":
            first = (o.report or {}).get("first_failure") or "?"
            console.print(f"  seed {o.seed:<6} [bold red]FAIL[/]  {o.wall_s:6.1f}s  {first}")
        else:
            console.print(f"  seed {o.seed:<6} [yellow]ERROR[/] {o.wall_s:6.1f}s  {escape(str(o.error))}")

    outcomes = run_shards(argv_for, seeds, jobs, report_dir, on_finish=on_finish)
    wall = time.monotonic() - t0
    entries = [entry_from_outcome(o, report_dir) for o in outcomes]
    code = exit_code_of(entries)
    paths = write_merged(report_dir, entries, exit_code=code, wall_s=wall,
                         title=f"sagaproof run {args.dir} --seeds {_seed_text(seeds)}")
    print_summary(console, entries, wall, sum(o.wall_s for o in outcomes), jobs)
    console.print(f"Report: {paths['report.html']}")
    return code


def print_summary(console: Any, entries: list[dict[str, Any]], wall: float | None, sum_single: float | None,
                  jobs: int | None) -> None:
    """Seeds passed and failed, then each failure's first check and its replay command."""
    passed = [e for e in entries if e["verdict"] == "pass"]
    failed = [e for e in entries if e["verdict"] == "fail"]
    errors = [e for e in entries if e["verdict"] == "error"]
    colour = "red" if failed or errors else "green"
    timing = (f"  (wall {wall:.1f}s for {sum_single:.1f}s of runs, {jobs} at a time)"
              if wall is not None and sum_single is not None else "")
    console.print(f"[bold {colour}]{len(entries)} seeds: {len(passed)} passed, {len(failed)} failed, "
                  f"{len(errors)} did not complete[/]{timing}")
    for e in failed:
        also = f" (also: {', '.join(e['failed_checks'][1:])})" if len(e["failed_checks"]) > 1 else ""
        console.print(f"[bold red]seed {e['seed']}[/] first failure: {escape(str(e['first_failure']) + also)}")
        console.print(f"  replay: {e['replay']}", markup=False, soft_wrap=True)
        if e.get("shrink_replay"):
            console.print(f"  minimal schedule: {e['shrink_replay']}", markup=False, soft_wrap=True)
    for e in errors:
        console.print(f"[yellow]seed {e['seed']}[/] did not complete: {escape(str(e.get('error')))}")
        if e.get("replay"):
            console.print(f"  replay: {e['replay']}", markup=False, soft_wrap=True)


def _seed_text(seeds: list[int]) -> str:
    """A compact form of a seed list: 1-6, 9, 12-13."""
    parts: list[str] = []
    ordered = sorted(seeds)
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    text = ",".join(parts)
    return text if len(text) <= 60 else f"{ordered[0]}..{ordered[-1]}"
