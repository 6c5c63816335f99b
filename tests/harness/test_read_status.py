"""The pytest helper `sagaproof_system.read_status(key)` (issue 23): a test reads a saga's status on the run's own
code path (the same reader, recorded as a ``read`` record), and ``check_sagas`` reads its window's sagas once and
holds the reads against the wire. Black-box with pytester: real nats-server, the real shop."""

from __future__ import annotations

import pytest

from tests.conftest import SHOP

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


def test_a_test_reads_a_sagas_status_as_the_run_does(pytester: pytest.Pytester):
    pytester.makepyfile(
        """
        def test_read(sagaproof_system):
            started = sagaproof_system.start_sagas(7)  # the shop's first paths: completed, then a declined card
            result = sagaproof_system.check_sagas()
            result.assert_ok()
            statuses = {o.name: o.status for o in result.outcomes}
            assert statuses["read_final_agrees"] == "passed", statuses
            assert statuses["read_not_contradicted"] == "passed", statuses
            finals = {r["key"] for r in sagaproof_system.history(kinds=["read"]) if r["phase"] == "final"}
            assert finals >= set(started.keys)
            seen = set()
            for key in started.keys:
                rec = sagaproof_system.read_status(key)
                assert rec["kind"] == "read" and rec["phase"] == "test" and rec["outcome"] == "ok", rec
                assert rec["request"] == f"GET order /orders/{key}"
                seen.add((rec["value"], rec["status"]))
            assert seen == {("COMPLETED", "success"), ("CANCELLED", "abort")}, seen
            missing = sagaproof_system.read_status("no-such-order")
            assert missing["outcome"] == "ok" and missing["found"] is False and missing["status"] is None
            recorded = [r for r in sagaproof_system.history(kinds=["read"]) if r["phase"] == "test"]
            assert len(recorded) == len(started.keys) + 1
        """
    )
    result = pytester.runpytest_subprocess("--sagaproof-system", str(SHOP), "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
