"""Quiescence from the broker's view on a live system, the open-sagas count, the bounded workload, and
invariants that stop retrying once nothing can change."""

from __future__ import annotations

import time
import tomllib
from pathlib import Path
from typing import Any

from sagaproof.chaos.observe import wire_rows
from sagaproof.harness.config import SagaSpec, SystemSpec, WorkloadSpec, parse_system
from sagaproof.harness.env.wait import eventually
from sagaproof.harness.session.handle import running
from sagaproof.harness.session.quiescence import OpenSagas, open_count
from sagaproof.harness.session.workload import Workload

from tests.conftest import MINI


def wait_until(cond: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        out = cond()
        if out:
            return out
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def mini(**alpha_env: str) -> SystemSpec:
    raw = tomllib.loads((MINI / "sagaproof.toml").read_text())
    raw["services"]["alpha"]["env"].update(alpha_env)
    return parse_system(raw, MINI / "sagaproof.toml")


def test_a_held_delivery_and_a_disconnected_service_are_not_quiescent(tmp_path: Path) -> None:
    import nats

    with running(mini(HOLD="0.8"), report_dir=tmp_path) as system:
        broker = system.broker
        wait_until(lambda: broker.quiescence(0.2)[0])  # idle: push heartbeats and pings are not activity
        history = system.history()  # the recorder starts now; what the links saw before is in it too
        assert {r["service"] for r in history if r["kind"] == "nats_connect"} == {"alpha", "beta", "gamma", "delta"}
        (created,) = [r for r in history if r["kind"] == "js_consumer"]
        assert created["service"] == "alpha" and created["deliver_subject"] and created["ack_wait"] == 1.0

        async def publish() -> None:
            nc = await nats.connect(system.nats_url)
            await nc.jetstream().publish("work.alpha", b"m1")
            await nc.close()

        system.loop.run(publish())
        why = wait_until(lambda: (lambda q: q[1] if not q[0] and "holds" in q[1] else "")(broker.quiescence(0.2)))
        assert "service 'alpha' holds 1 unanswered deliveries (e.g. MINI sequence 1" in why
        wait_until(lambda: broker.quiescence(0.2)[0])
        acks = [(r["service"], row[2], row[6]) for r in system.history() if r["kind"] == "wire"
                for row in wire_rows(r["deliveries"], r["answers"])[1]]
        assert acks == [("alpha", "ack", 1)]
        system.services["alpha"].kill()
        assert wait_until(lambda: (lambda q: q[1] if not q[0] else "")(broker.quiescence(0.2))) == \
            "service 'alpha' is not connected to NATS"
        system.services["alpha"].restart()
        wait_until(lambda: broker.quiescence(0.2)[0])
        snap = broker.record_snapshot()
        users = {c["user"] for c in snap["connections"]}
        assert {"alpha", "beta", "gamma", "delta", "sagaproof"} <= users  # each service is its own NATS user
        assert snap["links"]["alpha"]["reconnects"] >= 1
        consumer = next(c for c in snap["consumers"] if c["name"] == "alpha-durable")
        assert consumer["durable"] and consumer["num_pending"] == 0 and consumer["num_ack_pending"] == 0


def saga_spec() -> SystemSpec:
    spec = mini()
    sagas = {"s": SagaSpec("s", "id", "work.alpha", ("work.done",), (), (), deadline=1.0)}
    return SystemSpec(**{**spec.__dict__, "sagas": sagas})


def test_open_sagas_counts_started_not_ended_and_forgets_the_overdue() -> None:
    open_sagas = OpenSagas(saga_spec())
    assert open_sagas.max_age == 2.0
    for i in range(3):
        open_sagas.on_message({"subject": "work.alpha", "data": {"id": i}})
    open_sagas.on_message({"subject": "work.alpha", "data": {"id": 0}})  # a duplicate start is one saga
    open_sagas.on_message({"subject": "work.done", "data": {"id": 1}})
    assert open_sagas.count() == 2 and open_sagas.started == 3
    open_sagas.max_age = 0.0  # everything is overdue now: judged, not waited for
    assert open_sagas.count() == 0

    class Started:
        class result:  # noqa: N801 - the shape of Workload.result
            started = 5

    assert open_count(OpenSagas(saga_spec()), Started)() == 5  # accepted, not on the wire yet


def test_workload_waits_while_max_open_sagas_are_open() -> None:
    spec = WorkloadSpec(sagas=6, rate=1000.0, concurrency=2, via="publish", subject="x", max_open=2)
    started: list[int] = []  # sagas the workload decided to start (their bodies are drawn just before)
    sent: list[int] = []
    open_at_start: list[int] = []
    state = {"ended": 0, "full_polls": 0}

    def open_now() -> int:  # two sagas end each time the workload has found the limit reached three times
        if len(started) - state["ended"] >= 2:
            state["full_polls"] += 1
            if state["full_polls"] % 3 == 0:
                state["ended"] += 2
        return len(started) - state["ended"]

    def body(i: int, rng: object) -> dict:
        open_at_start.append(len(started) - state["ended"])
        started.append(i)
        return {"index": i}

    w = Workload(spec, lambda b: sent.append(b["index"]), body, seed=1, open_sagas=open_now)
    assert w.open_limit == 2
    result = w.run()
    assert sorted(sent) == list(range(6))
    assert max(open_at_start) < 2, "a saga was started while max_open were open"
    assert state["full_polls"] >= 6 and result.held_back > 0.0
    unbounded = Workload(spec, lambda body: None, lambda i, rng: {"index": i}, seed=1)
    assert unbounded.run().held_back == 0.0


def test_invariants_stop_retrying_once_settled() -> None:
    calls = {"n": 0}

    def failing() -> None:
        calls["n"] += 1
        raise AssertionError("money is missing")

    ok, why = eventually(failing, 60.0, settled=lambda: True, interval=0.01)
    assert not ok and why == "money is missing" and calls["n"] == 2  # stopped after two failures
    ok, _ = eventually(lambda: calls.__setitem__("n", calls["n"] + 1) or calls["n"] >= 5, 60.0,
                       settled=lambda: False, interval=0.01)
    assert ok


def test_the_wait_goes_on_while_sagas_keep_ending_and_stops_once_none_does() -> None:
    from dataclasses import replace

    from sagaproof.harness.config import QuiescenceSpec
    from sagaproof.harness.session.quiescence import wait_for_convergence

    spec = replace(saga_spec(), quiescence=QuiescenceSpec(hold=0.1, timeout=2.0))

    class Tracker:
        finished: set[int] = set()
        pending = 5
        last_message_at = 0.0  # long ago: the wire is quiet

    class Recorder:
        records: list[dict[str, Any]] = []

        def now(self) -> float:
            return time.monotonic()

    class Busy:
        def quiescence(self, quiet: float) -> tuple[bool, str]:
            return False, "a consumer has 3 pending"

    t0 = time.monotonic()

    # A saga ends every 0.2 s for 3 s: longer than the 2 s limit in all, never 2 s apart (a margin of ten times
    # the interval, so that a busy machine delaying the thread does not end the wait early).
    def drip() -> None:
        while time.monotonic() - t0 < 3.0:
            Tracker.finished.add(len(Tracker.finished))
            time.sleep(0.2)

    import threading

    dripper = threading.Thread(target=drip)
    dripper.start()
    conv = wait_for_convergence(spec, Recorder(), Tracker(), Busy(), healed_at=0.0, quiet=0.1)
    dripper.join()
    assert conv.how == "timeout" and conv.waited >= 3.0  # it waited for the drain, then gave up on no progress
    assert "a consumer has 3 pending; no saga ended for" in conv.reason
