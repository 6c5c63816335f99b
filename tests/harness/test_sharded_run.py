"""Sharded runs and merged reports on the example shop, end to end (a slow module: real runs of the shop).

* `--seeds 1-3 --jobs 2` on the clean shop (two seeds at once, the third waiting for a free slot) raises no false
  alarm, and its directory is a merged report.
* `sagaproof merge` of three shard directories (a sharded run, a single run, and a failing run, as three CI
  machines would leave them) shows the failing seed with its replay command, and its junit.xml holds every
  shard's test cases.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.conftest import SAGAPROOF, SHOP


def _sagaproof(*argv: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SAGAPROOF, *argv], capture_output=True, text=True, timeout=timeout)


def test_three_seeds_two_at_a_time_on_the_clean_shop_raise_no_false_alarm(tmp_path: Path):
    out = tmp_path / "nightly"
    proc = _sagaproof("run", str(SHOP), "--seeds", "1-3", "--jobs", "2", "--sagas", "30", "--report-dir", str(out))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "3 seeds: 3 passed, 0 failed" in " ".join(proc.stdout.split())
    merged = json.loads((out / "report.json").read_text())
    assert (merged["kind"], merged["passed"], merged["failed"], merged["errors"]) == ("sagaproof-merged", 3, 0, 0)
    for seed in range(1, 4):
        run = json.loads((out / f"seed-{seed}" / "report.json").read_text())
        assert (run["seed"], run["verdict"]) == (seed, "pass")
        assert run["faults"], f"seed {seed} ran without faults"
        assert run["check_result"]["sagas_checked"] >= 30  # (+ any HTTP start retried after a timeout under a fault)
    suites = ET.parse(out / "junit.xml").getroot().findall("testsuite")
    assert {s.get("name").split()[0] for s in suites} == {f"seed-{n}" for n in range(1, 4)}
    assert not ET.parse(out / "junit.xml").getroot().findall(".//failure")


@pytest.fixture(scope="module")
def three_shards(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """What three CI machines leave: a sharded run of seeds 1-2, a single run of seed 3, and a run of seed 4
    on the shop with a seeded bug (a renamed field: the live contract check fails)."""
    # Under pytest-xdist both tests of this module may land on different workers: the runs are made once in the
    # session's shared temporary directory, the other worker waiting on the lock for them (the tests only read them).
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = tmp_path_factory.getbasetemp().parent / "three-shards"
        root.mkdir(exist_ok=True)
    else:
        root = tmp_path_factory.mktemp("shards")
    a, b, c = root / "machine-a", root / "machine-b", root / "machine-c"
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / "made").is_file():
            for d in (a, b, c):
                shutil.rmtree(d, ignore_errors=True)
            common = ["--sagas", "20"]
            pa = _sagaproof("run", str(SHOP), "--seeds", "1-2", "--jobs", "2", *common, "--report-dir", str(a))
            pb = _sagaproof("run", str(SHOP), "--seed", "3", *common, "--report-dir", str(b))
            pc = _sagaproof("run", str(SHOP), "--seeds", "4", *common, "--env", "SHOP_BUG=field_rename",
                            "--report-dir", str(c))
            assert (pa.returncode, pb.returncode, pc.returncode) == (0, 0, 1), pa.stdout + pb.stdout + pc.stdout
            (root / "made").write_text("")
    return a, b, c


def test_merge_of_three_shards_shows_the_failing_seed_and_holds_every_case(three_shards, tmp_path: Path):
    a, b, c = three_shards
    out = tmp_path / "merged"
    proc = _sagaproof("merge", str(a), str(b), str(c), "--report-dir", str(out), timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    failing = json.loads((c / "seed-4" / "report.json").read_text())
    replay = failing.get("replay") or failing["command"]
    if isinstance(replay, dict):
        replay = replay["command"]
    text = " ".join(proc.stdout.split())
    assert "4 seeds: 3 passed, 1 failed" in text
    assert f"seed 4 first failure: {failing['first_failure']}" in text
    assert replay in text

    merged = json.loads((out / "report.json").read_text())
    assert [e["seed"] for e in merged["seeds"]] == [1, 2, 3, 4]
    (bad,) = [e for e in merged["seeds"] if e["verdict"] == "fail"]
    assert (bad["seed"], bad["first_failure"], bad["replay"]) == (4, failing["first_failure"], replay)
    assert merged["failed_checks"] == {name: [4] for name in bad["failed_checks"]}

    html = (out / "report.html").read_text()
    assert "seed-4/report.html" in html and replay.replace("'", "&#x27;") in html
    for seed in (1, 2, 3):
        assert f"seed-{seed}/report.html" in html
    assert (out / "seed-4" / "events.jsonl").is_file(), "a failing seed's details are copied whole"
    assert (out / "seed-1" / "report.html").is_file()

    # junit.xml: every shard's test cases, kept apart by seed
    cases = ET.parse(out / "junit.xml").getroot().findall(".//testcase")
    per_seed = {}
    for case in cases:
        per_seed.setdefault(case.get("classname").split(".")[0], []).append(case)
    for seed, src in ((1, a / "seed-1"), (2, a / "seed-2"), (3, b), (4, c / "seed-4")):
        own = ET.parse(src / "junit.xml").getroot().findall(".//testcase")
        assert len(per_seed[f"seed-{seed}"]) == len(own) > 0
    failures = [case for case in cases if case.find("failure") is not None]
    assert failures and all(case.get("classname").startswith("seed-4.") for case in failures)


def test_merging_a_merged_report_again_keeps_every_seed(three_shards, tmp_path: Path):
    a, b, c = three_shards
    first = tmp_path / "first"
    assert _sagaproof("merge", str(a), str(b), "--report-dir", str(first), timeout=120).returncode == 0
    again = tmp_path / "again"
    proc = _sagaproof("merge", str(first), str(c), "--report-dir", str(again), timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    merged = json.loads((again / "report.json").read_text())
    assert [(e["seed"], e["verdict"]) for e in merged["seeds"]] == [(1, "pass"), (2, "pass"), (3, "pass"),
                                                                   (4, "fail")]
