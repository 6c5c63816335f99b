"""`sagaproof merge` refuses what is not a report directory with one sentence and exit 2, writing nothing.

(The merge of real shard directories is in test_sharded_run.py, a slow module.)"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import SAGAPROOF


def _missing(tmp: Path) -> Path:
    return tmp / "no-such-dir"


def _empty(tmp: Path) -> Path:
    (tmp / "empty").mkdir()
    return tmp / "empty"


def _a_file(tmp: Path) -> Path:
    (tmp / "notes.txt").write_text("hello")
    return tmp / "notes.txt"


def _broken_json(tmp: Path) -> Path:
    (tmp / "broken").mkdir()
    (tmp / "broken" / "report.json").write_text("{not json")
    return tmp / "broken"


def _other_json(tmp: Path) -> Path:
    (tmp / "other").mkdir()
    (tmp / "other" / "report.json").write_text(json.dumps({"name": "some other tool", "ok": True}))
    return tmp / "other"


@pytest.mark.parametrize(("make", "says"), [
    (_missing, "no such directory"),
    (_empty, "not a sagaproof report directory"),
    (_a_file, "no such directory"),
    (_broken_json, "cannot be read as JSON"),
    (_other_json, "is not a sagaproof report"),
], ids=["missing", "empty", "a-file", "broken-json", "other-json"])
def test_bad_merge_inputs_are_one_sentence_and_exit_2(tmp_path: Path, make: Callable[[Path], Path], says: str):
    bad = make(tmp_path)
    out = tmp_path / "merged"
    proc = subprocess.run([*SAGAPROOF, "merge", str(bad), "--report-dir", str(out)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and says in proc.stderr, proc.stderr
    assert not (out / "report.json").exists()


def test_merge_needs_an_output_directory_and_inputs(tmp_path: Path):
    for argv in (["merge", str(tmp_path)], ["merge", "--report-dir", str(tmp_path / "o")]):
        proc = subprocess.run([*SAGAPROOF, *argv], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr


def test_merge_into_one_of_its_inputs_is_refused(tmp_path: Path):
    src = tmp_path / "run"
    src.mkdir()
    (src / "report.json").write_text(json.dumps({"seed": 1, "checks": [], "verdict": "pass", "command": "x"}))
    proc = subprocess.run([*SAGAPROOF, "merge", str(src), "--report-dir", str(src)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and "also --report-dir" in proc.stderr, proc.stderr
