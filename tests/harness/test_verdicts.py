"""A verdict is earned: every check ends passed, failed, not judged (applies, nothing to judge: fails the run) or
not applicable (cannot apply in this mode: does not fail it, never shown as a pass) -- issue 21.

Unit tests over hand-built histories for each way a check used to pass on nothing, then the real thing: a run
of a system that declares no saga, and a pytest session whose failed checks nobody asserted.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from sagaproof.harness.checks import (
    Window,
    fault_schedule,
    live_contracts,
    recorder_completeness,
    saga_checks,
)
from sagaproof.harness.checks.results import CheckOutcome, combine_outcomes, verdict_of

from tests.conftest import MINI, SAGAPROOF, SHOP
from tests.harness.test_checker import History as Builder
from tests.harness.test_checks import ctx, outcome, spec, write


def test_three_outcomes_and_what_fails_the_run():
    passed = CheckOutcome("a", True, "1 judged")
    failed = CheckOutcome("b", False, "wrong")
    unjudged = CheckOutcome.not_judged("c", "no message was recorded")
    na = CheckOutcome.not_applicable("d", "no contracts")
    assert [o.status for o in (passed, failed, unjudged, na)] == ["passed", "failed", "not judged", "not applicable"]
    assert (unjudged.ok, unjudged.skipped, na.ok, na.skipped) == (False, True, True, True)
    assert unjudged.summary == "not judged: no message was recorded" and unjudged.findings
    assert verdict_of([passed, na]) == ("pass", 0)
    assert verdict_of([passed, unjudged]) == ("fail", 1)
    assert verdict_of([passed, failed, na]) == ("fail", 1)
    with pytest.raises(ValueError, match="is not one of"):
        CheckOutcome("x", status="green")
    assert CheckOutcome("x", True, skipped=True).status == "not applicable"  # the old spelling of a skip


def test_combined_judgements_keep_the_worst_outcome_of_each_check():
    a = [CheckOutcome("sagas judged", True, "10 sagas judged"), CheckOutcome("no_contradiction", True, "none")]
    b = [CheckOutcome("sagas judged", True, "5 sagas judged"), CheckOutcome("no_contradiction", False, "o7 both")]
    c = [CheckOutcome.not_applicable("live contract conformance", "no contracts")]
    out = {o.name: o for o in combine_outcomes([a, b, c])}
    assert out["no_contradiction"].status == "failed" and out["sagas judged"].status == "passed"
    assert out["live contract conformance"].status == "not applicable"
    assert list(out) == ["sagas judged", "no_contradiction", "live contract conformance"]


def test_a_system_file_without_sagas_judges_nothing_and_does_not_pass(tmp_path: Path):
    reader = write(tmp_path, Builder().happy("o1", 1.0).records)
    c = ctx(reader)
    c.spec = dataclasses.replace(spec(), sagas={})
    out = list(saga_checks(c))
    judged = outcome(out, "sagas judged")
    assert judged.status == "not judged" and "declares no [sagas]" in judged.summary
    assert {o.status for o in out} == {"not judged"} and verdict_of(out) == ("fail", 1)


def test_recorder_completeness_with_nothing_recorded_is_not_judged(tmp_path: Path):
    reader = write(tmp_path, [])
    [o] = recorder_completeness(ctx(reader, messages=0))
    assert o.status == "not judged" and "no message was recorded" in o.summary
    [o] = recorder_completeness(ctx(reader, messages=0, nothing_sent=True))
    assert o.status == "not applicable"


def test_recorder_completeness_without_a_stream_to_cross_check_is_not_a_pass(tmp_path: Path):
    reader = write(tmp_path, Builder().happy("o1", 1.0).records)
    [o] = recorder_completeness(ctx(reader, messages=4, cross_checked=[]))
    assert o.status == "not applicable" and "no JetStream stream" in o.summary
    [o] = recorder_completeness(ctx(reader, messages=4, cross_checked=["SHOP"]))
    assert o.status == "passed" and "checked against stream SHOP" in o.summary


def test_live_contracts_with_no_message_are_not_judged_and_without_contracts_do_not_apply(tmp_path: Path):
    reader = write(tmp_path, [])
    [o] = live_contracts(ctx(reader, messages=0))
    assert o.status == "not judged"
    [o] = live_contracts(ctx(reader, messages=0, validator=False))
    assert o.status == "not applicable" and "no service declares a contract" in o.summary


def test_a_chaos_phase_that_planned_no_fault_is_not_a_chaos_pass(tmp_path: Path):
    reader = write(tmp_path, Builder().happy("o1", 1.0).records)
    [o] = fault_schedule(ctx(reader, planned_faults=[], chaos="fault kinds asked for: kill"))
    assert o.status == "not judged" and "not a chaos run" in o.summary and "kill" in o.summary
    [o] = fault_schedule(ctx(reader, planned_faults=[]))  # --no-chaos
    assert o.status == "not applicable" and o.ok
    [o] = fault_schedule(ctx(reader, Window(since=0.5), planned_faults=[]))  # a pytest window without faults
    assert o.status == "not applicable" and "in this window" in o.summary


@pytest.mark.slow
def test_a_run_of_a_system_without_sagas_fails_saying_nothing_was_judged(tmp_path: Path):
    system = tmp_path / "nosagas"
    shutil.copytree(MINI, system)
    toml = system / "sagaproof.toml"
    text = toml.read_text()
    head, rest = text.split("[sagas.work]", 1)
    toml.write_text(head + rest[rest.index("[workload]"):])
    assert "[sagas" not in toml.read_text()
    proc = subprocess.run([*SAGAPROOF, "run", str(system), "--sagas", "5", "--no-chaos", "--report-dir",
                           str(tmp_path / "r")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-2000:]
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    checks = {c["name"]: c for c in report["checks"]}
    assert report["verdict"] == "fail" and report["first_failure"] == "sagas judged"
    assert checks["sagas judged"]["status"] == "not judged"
    assert checks["fault schedule carried out"]["status"] == "not applicable"
    assert "NOT JUDGED" in proc.stdout and "declares no [sagas]" in " ".join(proc.stdout.split())
    junit = (tmp_path / "r" / "junit.xml").read_text()
    assert 'message="not judged: ' in junit  # a failure in the CI's test view, not a skip


@pytest.mark.slow
def test_a_pytest_session_fails_on_checks_no_test_asserted(pytester: pytest.Pytester,
                                                           monkeypatch: pytest.MonkeyPatch):
    """SHOP_BUG=early_complete: the test looks at nothing, yet the engine judged the sagas wrong."""
    monkeypatch.setenv("SHOP_BUG", "early_complete")
    pytester.makepyfile(
        """
        def test_orders_go_through(sagaproof_system):
            since = sagaproof_system.mark()
            sagaproof_system.start_sagas(20)
            sagaproof_system.check_sagas(since)  # not asserted
        """
    )
    result = pytester.runpytest_subprocess("--sagaproof-system", str(SHOP), "--sagaproof-seed", "3",
                                           "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert result.ret == 1, "the session's exit code is the engine's verdict"
    result.stdout.fnmatch_lines(["*sagaproof verdict: fail*"])
    data = json.loads((pytester.path / ".sagaproof/report/report.json").read_text())
    failed = {c["name"] for c in data["checks"] if c["status"] == "failed"}
    assert data["verdict"] == "fail" and data["exit_code"] == 1
    assert failed & {"no_contradiction", "step_order"}, data["checks"]


@pytest.mark.slow
def test_a_result_kept_out_of_the_verdict_on_purpose_does_not_fail_the_session(pytester: pytest.Pytester):
    pytester.makepyfile(
        """
        def test_an_empty_window_is_reported(sagaproof_system):
            result = sagaproof_system.check_sagas(sagaproof_system.mark(), wait=0, in_verdict=False)
            assert not result.ok and "nothing was judged" in str(result)

        def test_work_goes_through(sagaproof_system):
            since = sagaproof_system.mark()
            sagaproof_system.start_sagas(5)
            sagaproof_system.check_sagas(since).assert_ok()
        """
    )
    result = pytester.runpytest_subprocess("--sagaproof-system", str(MINI), "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    assert result.ret == 0, result.stdout.str()[-3000:]
    data = json.loads((pytester.path / ".sagaproof/report/report.json").read_text())
    assert data["verdict"] == "pass", [c for c in data["checks"] if not c["ok"]]
