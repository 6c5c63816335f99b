"""The pytest plugin, tested black-box with pytester: real nats-server, real services, real fault proxies.

One pytest session per scenario (the system is brought up once per session): the mini system for the
fixture's mechanics, the shop for what the engine gives a test (recording that survives a broker restart,
windows, keys, "nothing to judge", process faults undone after a failed test, a fault the proxy refuses),
and the shop with a seeded bug for live contract conformance in a test's failure and the session's report.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import MINI, SHOP

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


def test_fixture_brings_the_system_up_once_and_keeps_a_failed_tests_slices(pytester: pytest.Pytester):
    pytester.makepyfile(
        """
        def test_one(sagaproof_system):
            assert sagaproof_system.services["alpha"].http.get("/health").status == 200
            open("ids.txt", "a").write(f"{id(sagaproof_system)}\\n")

        def test_two(sagaproof_system):
            open("ids.txt", "a").write(f"{id(sagaproof_system)}\\n")
            assert sagaproof_system.services["beta"].running

        def test_fails(sagaproof_system):
            assert sagaproof_system.services["gamma"].http.get("/state").json()["seen"] == ["nope"]
        """
    )
    result = pytester.runpytest_subprocess("--sagaproof-system", str(MINI), "--sagaproof-logs", "kept",
                                           "--sagaproof-seed", "42", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1)
    ids = Path(pytester.path / "ids.txt").read_text().split()
    assert len(set(ids)) == 1, "the system must be brought up once per session"
    kept = list((pytester.path / "kept").iterdir())
    assert len(kept) == 1 and kept[0].name.endswith("test_fails"), [p.name for p in kept]
    gamma = (kept[0] / "gamma.log").read_text()
    assert "GET /state" in gamma and "listening on" not in gamma, "the log kept is this test's slice"
    assert (kept[0] / "events.jsonl").exists()
    result.stdout.fnmatch_lines(["seed: 42", "reproduce: pytest *::test_fails --sagaproof-system * --sagaproof-seed 42",
                                 "*service and NATS logs of this failure:*"])
    report = json.loads((pytester.path / ".sagaproof/report/report.json").read_text())
    assert report["verdict"] == "fail" and report["first_failure"].endswith("::test_fails")
    assert (pytester.path / ".sagaproof/report/report.html").exists()


def test_ini_keys_name_the_system_and_the_report_dir(pytester: pytest.Pytester):
    pytester.makeini(f"[pytest]\nsagaproof_system = {MINI}\nsagaproof_report_dir = out\n")
    pytester.makepyfile("def test_up(sagaproof_system):\n    assert sagaproof_system.nats_url.startswith('nats://')\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert not (pytester.path / "out" / "failed").exists(), "nothing is kept for passing tests"
    assert json.loads((pytester.path / "out/report.json").read_text())["verdict"] == "pass"


def test_missing_system_is_a_usage_error(pytester: pytest.Pytester):
    pytester.makepyfile("def test_up(sagaproof_system):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*pass --sagaproof-system DIR or set*"])
    assert result.ret != 0


SHOP_TESTS = """
import pytest
from sagaproof.harness.errors import FaultError


def test_payment_crash_is_survived(sagaproof_system):
    system = sagaproof_system
    since = system.mark()
    with system.chaos.latency("inventory", ms=50):
        started = system.start_sagas(20)
        system.chaos.kill("payment", restart_after=0.3)
    assert started.started == 20 and len(started.keys) == 20 and not started.not_recorded
    result = system.check_sagas(since)
    result.assert_ok()
    assert result.sagas_checked == 20
    assert [r["fault"]["kind"] for r in system.history(since, kinds=["fault_start"])] == ["latency", "kill"]


def test_recording_survives_a_nats_restart(sagaproof_system):
    system = sagaproof_system
    system.chaos.restart_nats(0)
    since = system.mark()
    started = system.start_sagas(20)
    assert len(started.keys) == 20 and not started.not_recorded, started.outcomes
    result = system.check_sagas(since)
    result.assert_ok()
    assert result.sagas_checked == 20
    assert system.check_sagas(keys=started.keys[:5]).sagas_checked == 5


def test_a_window_judges_only_the_sagas_started_in_it(sagaproof_system):
    system = sagaproof_system
    system.start_sagas(20)  # their compensations (refunds, releases) happen after the mark below
    since = system.mark()
    system.start_sagas(10)
    result = system.check_sagas(since)
    result.assert_ok()
    assert result.sagas_checked == 10


def test_a_window_without_sagas_does_not_pass(sagaproof_system):
    result = sagaproof_system.check_sagas(sagaproof_system.mark(), wait=0)
    assert not result.ok and "nothing was judged" in str(result)


def test_fails_with_a_paused_and_a_stopped_service(sagaproof_system):
    sagaproof_system.services["payment"].pause()
    sagaproof_system.services["shipping"].stop()
    assert False, "fails on purpose, leaving payment paused and shipping stopped"


def test_the_next_test_finds_every_service_running(sagaproof_system):
    for name, svc in sagaproof_system.services.items():
        assert svc.running and not svc.paused, name
    since = sagaproof_system.mark()
    sagaproof_system.start_sagas(10)
    sagaproof_system.check_sagas(since).assert_ok()


def test_a_fault_the_proxy_refuses_is_not_carried_out(sagaproof_system):
    system = sagaproof_system
    proxies = system.system.proxies  # the environment's fault proxy client (the handle is typed: no delegation)
    since = system.mark()
    proxy = proxies.proxies()["payment"]
    proxies.delete_proxy("payment")
    try:
        with pytest.raises(FaultError, match="could not be injected"):
            with system.chaos.latency("payment", ms=50):
                pass
    finally:
        proxies.create_proxy("payment", upstream=proxy["upstream"], listen=proxy["listen"])
    system.start_sagas(10)
    result = system.check_sagas(since)
    assert [o.name for o in result.failed_checks] == ["fault schedule carried out"], str(result)
    assert "latency payment could not be injected: Cannot add toxic" in str(result)
"""


def test_what_the_engine_gives_a_test_on_the_shop(pytester: pytest.Pytester):
    pytester.makepyfile(test_shop=SHOP_TESTS)
    result = pytester.runpytest_subprocess("--sagaproof-system", str(SHOP), "--sagaproof-chaos-links",
                                           "--sagaproof-seed", "7", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=6, failed=1)
    result.stdout.fnmatch_lines(["*test_fails_with_a_paused_and_a_stopped_service*", "seed: 7",
                                 "reproduce: pytest *::test_fails_with_a_paused_and_a_stopped_service *"])
    failed = pytester.path / ".sagaproof/report/failed"
    [kept] = list(failed.iterdir())
    history = [json.loads(line) for line in (kept / "events.jsonl").read_text().splitlines()]
    assert {(r["service"], r["how"]) for r in history if r["kind"] == "process"} >= {("payment", "pause"),
                                                                                     ("shipping", "stop")}
    report = pytester.path / ".sagaproof/report"
    events = [json.loads(line) for line in (report / "events.jsonl").read_text().splitlines()]
    finished = [r for r in events if r["kind"] == "test_finished" and r["outcome"] == "failed"]
    assert finished and set(finished[0]["undone"]) == {"resumed payment", "started shipping again"}


def test_a_live_contract_violation_fails_the_test_and_the_session_leaves_a_report(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SHOP_BUG", "field_rename")
    pytester.makepyfile(
        """
        def test_orders_go_through(sagaproof_system):
            since = sagaproof_system.mark()
            sagaproof_system.start_sagas(10)
            sagaproof_system.check_sagas(since).assert_ok()
        """
    )
    result = pytester.runpytest_subprocess("--sagaproof-system", str(SHOP), "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*check(s) failed: live contract conformance*",
                                 "*- live contract conformance: * message(s) broke their contract*",
                                 "*inventory.reserved from inventory*"])
    report = pytester.path / ".sagaproof/report"
    assert (report / "report.html").stat().st_size > 5000
    data = json.loads((report / "report.json").read_text())
    assert data["verdict"] == "fail" and data["contract_violations"]
