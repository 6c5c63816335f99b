"""The pytest plugin, tested with pytester: the session fixture, its options, and logs kept only on failure."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import MINI

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


def test_fixture_brings_the_system_up_once_and_keeps_logs_only_for_failures(pytester: pytest.Pytester):
    pytester.makepyfile(
        """
        import os

        def test_one(sagaproof_system):
            assert sagaproof_system.services["alpha"].http.get("/health").status == 200
            open("pids.txt", "a").write(f"{id(sagaproof_system)}\\n")

        def test_two(sagaproof_system):
            open("pids.txt", "a").write(f"{id(sagaproof_system)}\\n")
            assert sagaproof_system.services["beta"].running

        def test_fails(sagaproof_system):
            assert sagaproof_system.services["gamma"].http.get("/state").json()["seen"] == ["nope"]
        """
    )
    result = pytester.runpytest_subprocess("--sagaproof-system", str(MINI), "--sagaproof-logs", "kept", "-p",
                                           "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1)
    ids = Path(pytester.path / "pids.txt").read_text().split()
    assert len(set(ids)) == 1, "the system must be brought up once per session"
    kept = list((pytester.path / "kept").iterdir())
    assert len(kept) == 1 and kept[0].name.endswith("test_fails"), [p.name for p in kept]
    assert (kept[0] / "gamma.log").read_text().strip()
    result.stdout.fnmatch_lines(["*service and NATS logs of this failure:*"])


def test_ini_key_names_the_system(pytester: pytest.Pytester):
    pytester.makeini(f"[pytest]\nsagaproof_system = {MINI}\n")
    pytester.makepyfile("def test_up(sagaproof_system):\n    assert sagaproof_system.nats_url.startswith('nats://')\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert not (pytester.path / ".sagaproof").exists()


def test_missing_system_is_a_usage_error(pytester: pytest.Pytester):
    pytester.makepyfile("def test_up(sagaproof_system):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*pass --sagaproof-system DIR or set*"])
    assert result.ret != 0


def test_a_chaos_test_on_the_shop_with_workload_faults_and_the_saga_checker(pytester: pytest.Pytester):
    from tests.conftest import SHOP

    pytester.makepyfile(
        """
        def test_payment_crash_is_survived(sagaproof_system):
            system = sagaproof_system
            since = system.mark()
            with system.chaos.latency("inventory", ms=50):
                started = system.start_sagas(40)
                system.chaos.kill("payment", restart_after=0.3)
            assert started.started == 40
            result = system.check_sagas(since)
            assert result.ok, [v.message() for v in result.violations]
            assert result.sagas_checked == 40
            kinds = [r["fault"]["kind"] for r in system.history(since) if r["kind"] == "fault_start"]
            assert kinds == ["latency", "kill"]

            def all_terminal():
                orders = system.services["order"].http.get("/state").json()["orders"]
                assert all(o["status"] != "PENDING" for o in orders.values()), "some orders are still pending"

            system.eventually(all_terminal, timeout=10)
        """
    )
    result = pytester.runpytest_subprocess("--sagaproof-system", str(SHOP), "--sagaproof-chaos-links",
                                           "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
