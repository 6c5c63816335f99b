"""Sharded runs (`sagaproof run --seeds ... --jobs N`): seed lists, bad usage, and Ctrl-C/SIGTERM stopping
every child with everything it started. (The shop end to end is in test_sharded_run.py, a slow module.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from sagaproof.harness.session.shards import parse_seeds

from tests.conftest import MINI, SAGAPROOF, pid_alive


@pytest.mark.parametrize(("text", "seeds"), [
    ("1-6", [1, 2, 3, 4, 5, 6]),
    ("1,5,9", [1, 5, 9]),
    ("1-3,7, 2", [1, 2, 3, 7]),
    ("42", [42]),
    ("0-0", [0]),
])
def test_seed_lists(text: str, seeds: list[int]):
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize(("text", "says"), [
    ("6-1", "goes backwards"),
    ("1,,2", "not a list of seeds"),
    ("a-b", "is not a seed"),
    ("", "not a list of seeds"),
    ("1-999999999", "more than"),
])
def test_bad_seed_lists_say_what_is_wrong(text: str, says: str):
    with pytest.raises(ValueError, match=says):
        parse_seeds(text)


@pytest.mark.parametrize("argv", [
    ["--seeds", "3-1"],
    ["--jobs", "2"],
    ["--seed", "1", "--seeds", "1-2"],
    ["--seeds", "1-2", "--jobs", "0"],
], ids=["backwards", "jobs-without-seeds", "seed-and-seeds", "zero-jobs"])
def test_bad_usage_is_one_sentence_and_exit_2(tmp_path: Path, argv: list[str]):
    proc = subprocess.run([*SAGAPROOF, "run", str(MINI), "--report-dir", str(tmp_path), *argv],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not list(tmp_path.glob("seed-*")), "nothing may start on bad usage"


def _started_systems(report: Path) -> list[dict]:
    out = []
    for p in sorted(report.glob("seed-*/system.json")):
        try:
            out.append(json.loads(p.read_text()))
        except ValueError:  # being written
            pass
    return out


def _processes_naming(path: Path) -> list[int]:
    """Pids of processes whose command line mentions `path` (the children of one sharded run)."""
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        if str(path) in cmd and pid_alive(int(d.name)):
            found.append(int(d.name))
    return found


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupting_a_sharded_run_stops_every_seed_and_everything_they_started(tmp_path: Path, sig: int):
    report = tmp_path / "shards"
    proc = subprocess.Popen([*SAGAPROOF, "run", str(MINI), "--seeds", "1-4", "--jobs", "2", "--duration", "120s",
                             "--report-dir", str(report)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while len(_started_systems(report)) < 2:  # two seeds running at once, each with its whole system up
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the seeds' systems did not come up"
            time.sleep(0.1)
        systems = _started_systems(report)
        pids = [s["pid"] for sysd in systems for s in sysd["services"]]
        pids += [n["pid"] for sysd in systems for n in sysd["nats"]] + [sysd["reaper_pid"] for sysd in systems]
        children = _processes_naming(report)
        assert len(children) >= 2 and all(pid_alive(p) for p in pids)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == (130 if sig == signal.SIGINT else 143), out + err
    assert "Traceback" not in err
    deadline = time.monotonic() + 30
    while [p for p in pids + children if pid_alive(p)] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [p for p in pids + children if pid_alive(p)] == []
    assert _processes_naming(report) == []
    assert not (report / "seed-3").exists(), "no seed may start after the interrupt"
