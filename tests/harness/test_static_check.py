"""The run's static contract check: computed in a process of its own, cached by the contracts' content."""

from __future__ import annotations

import shutil
from pathlib import Path

from sagaproof.harness.config import load_system_file
from sagaproof.harness.session.static_check import StaticCheck, cache_dir

from tests.conftest import ROOT

JOBS = ROOT / "tests" / "fixtures" / "jobs"


def test_unchanged_contracts_reuse_the_answer_and_a_changed_one_is_checked_again(tmp_path: Path):
    system = tmp_path / "jobs"
    shutil.copytree(JOBS, system, ignore=shutil.ignore_patterns(".sagaproof", "__pycache__"))
    spec = load_system_file(system)
    first = StaticCheck.start(spec, tmp_path / "work")
    assert first is not None and not first.cached
    outcome = first.result()
    assert outcome.ok and "cached" not in outcome.summary
    assert list(cache_dir(spec).glob("contracts-*.json"))
    again = StaticCheck.start(spec, tmp_path / "work")
    assert again is not None and again.cached
    assert again.result().ok and "cached result of unchanged contracts" in again.result().summary
    # the front now sends "size" as a string where the worker reads an integer: incompatible, and the cache
    # must not answer for the changed contract
    front = system / "contracts" / "front.yaml"
    front.write_text(front.read_text().replace("size: {type: integer}", "size: {type: string}"))
    changed = StaticCheck.start(load_system_file(system), tmp_path / "work")
    assert changed is not None and not changed.cached
    verdict = changed.result()
    assert not verdict.ok and any("size" in d for d in verdict.details), verdict.details


def test_a_check_still_running_when_the_run_ends_is_stopped(tmp_path: Path):
    system = tmp_path / "jobs"
    shutil.copytree(JOBS, system, ignore=shutil.ignore_patterns(".sagaproof", "__pycache__"))
    check = StaticCheck.start(load_system_file(system), tmp_path / "work")
    assert check is not None and check._proc is not None
    proc = check._proc
    check.close()
    assert proc.poll() is not None
    check.close()  # idempotent
