"""Sharded runs: ``sagaproof run DIR --seeds 1-100 --jobs N``, many seeds, N at a time, on this machine.

Each seed is its own ``sagaproof run DIR --seed S --report-dir OUT/seed-S`` child process: its own NATS,
services, fault proxies and reaper, so seeds cannot disturb each other and a seed's directory is an
ordinary report directory (its command replays it alone). The children run in process groups of their
own; Ctrl-C or SIGTERM to the harness stops every child by its group (SIGTERM, so each tears its system
down, then SIGKILL after a bound), and the children's groups are registered with this harness's reaper, so
even a SIGKILL of the harness leaves nothing behind (each child's own reaper then cleans its system).

:func:`run_shards` runs them and returns each seed's :class:`ShardOutcome`; the command
(:mod:`harness.front.shards_cmd`) prints the summary and writes the merged report (:mod:`harness.report.merge`).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sagaproof.harness.env.process import tail
from sagaproof.harness.errors import EXIT_ENVIRONMENT, EXIT_USAGE

MAX_SEEDS = 100_000
STOP_GRACE = 30.0  # seconds a child gets to tear its system down after SIGTERM before SIGKILL
_RANGE_RE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")


def parse_seeds(text: str) -> list[int]:
    """Seeds from ``1-100``, ``1,5,9`` or a mix (``1-3,7``), in the order given, without repeats.

    Raises ValueError with a sentence saying what was wrong (argparse turns it into exit 2).
    """
    seeds: list[int] = []
    seen: set[int] = set()
    parts = [p for p in text.split(",")]
    if not text.strip() or any(not p.strip() for p in parts):
        raise ValueError(f"'{text}' is not a list of seeds such as 1-100 or 1,5,9")
    for part in parts:
        m = _RANGE_RE.match(part)
        if not m:
            raise ValueError(f"'{part.strip()}' in '{text}' is not a seed or a range of seeds such as 1-100")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if hi < lo:
            raise ValueError(f"the range '{part.strip()}' goes backwards; write it low-high, e.g. {hi}-{lo}")
        if hi - lo + 1 + len(seeds) > MAX_SEEDS:
            raise ValueError(f"'{text}' names more than {MAX_SEEDS} seeds; split the work into shards")
        for s in range(lo, hi + 1):
            if s not in seen:
                seen.add(s)
                seeds.append(s)
    return seeds


@dataclass
class _Child:
    seed: int
    label: str
    dir: Path
    proc: subprocess.Popen[bytes]
    started: float
    command: str


@dataclass
class ShardOutcome:
    """How one seed's run ended, as read from its report directory (or its exit code when it wrote none)."""

    seed: int
    label: str
    dir: Path
    exit_code: int
    wall_s: float
    command: str = ""
    report: dict[str, Any] | None = None
    error: str | None = None

    @property
    def verdict(self) -> str:
        if self.report is not None and self.report.get("verdict") in ("pass", "fail"):
            return str(self.report["verdict"])
        return "error"


def _stop(children: list[_Child]) -> None:
    """SIGTERM every child's group, wait (bounded) for them to tear down, then SIGKILL what is left."""
    for c in children:
        _signal_group(c.proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE
    for c in children:
        try:
            c.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for c in children:
        _signal_group(c.proc.pid, signal.SIGKILL)
        c.proc.wait()


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _read_outcome(child: _Child, code: int, wall: float) -> ShardOutcome:
    path = child.dir / "report.json"
    out = ShardOutcome(child.seed, child.label, child.dir, code, round(wall, 3), child.command)
    if path.is_file():
        try:
            out.report = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            out.error = f"its report.json could not be read ({exc})"
    if out.report is None and out.error is None:
        lines = [ln for ln in tail(child.dir / "output.log", 40) if ln.strip()]
        said = next((ln for ln in reversed(lines) if ln.startswith("sagaproof:")), lines[-1] if lines else "")
        what = {EXIT_USAGE: "bad usage or input", EXIT_ENVIRONMENT: "the environment could not be started",
                130: "interrupted", 143: "terminated"}.get(code, f"exit code {code}")
        out.error = f"{what}: {said.strip()}" if said else what
    return out


def run_shards(argv_for: Any, seeds: list[int], jobs: int, report_dir: Path, *, on_start: Any = None,
               on_finish: Any = None) -> list[ShardOutcome]:
    """Run one child per seed, at most `jobs` at a time; return the outcomes in seed order.

    Args:
        argv_for: ``argv_for(seed, seed_dir) -> list[str]``, the child's command line.
        seeds: the seeds, in the order to start them.
        jobs: how many children run at once.
        report_dir: each seed's report goes to ``report_dir/seed-<seed>``; its terminal output to
            ``output.log`` there.
        on_start, on_finish: called with the seed (and then its :class:`ShardOutcome`) for progress.

    An exception in the calling thread (Ctrl-C, SIGTERM) stops every running child before it propagates.
    """
    from sagaproof.harness.env.reaper import Reaper

    pending = deque(seeds)
    running: list[_Child] = []
    outcomes: dict[int, ShardOutcome] = {}
    reaper = Reaper()
    reaper.start()
    env = dict(os.environ, PYTHONUNBUFFERED="1", COLUMNS=os.environ.get("SAGAPROOF_SHARD_COLUMNS", "160"))
    try:
        while pending or running:
            while pending and len(running) < jobs:
                seed = pending.popleft()
                label = f"seed-{seed}"
                seed_dir = report_dir / label
                seed_dir.mkdir(parents=True, exist_ok=True)
                for stale in ("report.json", "junit.xml", "report.html"):  # never read an earlier run's verdict
                    (seed_dir / stale).unlink(missing_ok=True)
                argv = argv_for(seed, seed_dir)
                with open(seed_dir / "output.log", "wb") as log:
                    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, env=env, start_new_session=True,
                                            close_fds=True)
                reaper.add_group(proc.pid)
                command = " ".join(["sagaproof", *(shlex.quote(a) for a in argv[3:])])  # argv: python -m sagaproof
                running.append(_Child(seed, label, seed_dir, proc, time.monotonic(), command))
                if on_start is not None:
                    on_start(seed)
            for child in list(running):
                code = child.proc.poll()
                if code is None:
                    continue
                running.remove(child)
                _signal_group(child.proc.pid, signal.SIGKILL)  # anything the child left in its own group
                reaper.remove_group(child.proc.pid)
                outcome = _read_outcome(child, code, time.monotonic() - child.started)
                outcomes[child.seed] = outcome
                if on_finish is not None:
                    on_finish(outcome)
            if running:
                time.sleep(0.05)
    finally:
        if running:
            _stop(running)
            for child in running:
                reaper.remove_group(child.proc.pid)
        reaper.close()
    return [outcomes[s] for s in seeds if s in outcomes]
