"""Nemesis: deterministic schedules, ddmin shrinking, and a runner that executes and always heals."""

from __future__ import annotations

import itertools
import json
import subprocess
import time

import pytest
from chaos_testkit import RUNNING, Env, SleeperProcess, wait_state
from sagaproof.chaos import ChaosError
from sagaproof.chaos.client import FaultProxyClient
from sagaproof.chaos.nemesis import FAULT_KINDS, Fault, NemesisRunner, Schedule, ddmin, generate_schedule

MENU = [
    "latency",
    "jitter",
    "partition",
    "cut",
    "throttle",
    "slice",
    "drop",
    "duplicate",
    "delay",
    "reorder",
    "kill",
    "pause",
    "nats_restart",
]


def test_same_seed_same_schedule() -> None:
    a = generate_schedule(42, MENU, 0.5, 60.0, ["payment", "inventory", "shipping"], broker_faults=True)
    b = generate_schedule(42, MENU, 0.5, 60.0, ["payment", "inventory", "shipping"], broker_faults=True)
    assert a == b and json.dumps(a.to_dict()) == json.dumps(b.to_dict())
    c = generate_schedule(43, MENU, 0.5, 60.0, ["payment", "inventory", "shipping"], broker_faults=True)
    assert c.to_dict()["faults"] != a.to_dict()["faults"]
    assert len(a) > 5


@pytest.mark.parametrize(("seed", "intensity"), list(itertools.product(range(8), [0.1, 0.5, 0.9, 1.0])))
def test_schedule_shape(seed: int, intensity: float) -> None:
    targets = ["a", "b"]
    schedule = generate_schedule(
        seed, ["latency", "kill", "drop", "nats_restart"], intensity, 30.0, targets, broker_faults=True
    )
    by_target: dict[str, list[Fault]] = {}
    for fault in schedule:
        assert 0 <= fault.start and fault.end <= 30.0 + 1e-6 and fault.duration > 0
        assert fault.kind in ("latency", "kill", "drop", "nats_restart")
        assert (fault.target == "nats") == (fault.kind == "nats_restart")
        by_target.setdefault(fault.target, []).append(fault)
    for faults in by_target.values():
        faults.sort(key=lambda f: f.start)
        for first, second in zip(faults, faults[1:], strict=False):
            assert first.end <= second.start, (first, second)
    starts = [f.start for f in schedule]
    assert starts == sorted(starts)
    assert len({f.id for f in schedule}) == len(schedule)
    covered = sum(f.duration for f in schedule if f.target == "a") / 30.0
    assert covered <= 1.0 and (covered > 0.02 or intensity < 0.5)


def test_intensity_zero_and_broker_flag() -> None:
    assert len(generate_schedule(1, MENU, 0.0, 60, ["a"])) == 0
    assert all(
        f.kind != "nats_restart" for f in generate_schedule(1, ["nats_restart", "latency"], 0.8, 60, ["a"])
    )
    assert len(generate_schedule(1, ["nats_restart"], 0.8, 60, [], broker_faults=True)) > 0


def test_invalid_inputs_are_one_sentence() -> None:
    with pytest.raises(ChaosError) as info:
        generate_schedule(1, ["latency", "meteor"], 0.5, 10, ["a"])
    message = str(info.value)
    assert "'meteor'" in message and all(kind in message for kind in FAULT_KINDS)
    with pytest.raises(ChaosError, match="intensity"):
        generate_schedule(1, ["latency"], 1.5, 10, ["a"])
    with pytest.raises(ChaosError, match="window"):
        generate_schedule(1, ["latency"], 0.5, 0, ["a"])
    with pytest.raises(ChaosError, match="malformed"):
        Fault.from_dict({"id": "x"})


def test_round_trip_and_without() -> None:
    schedule = generate_schedule(7, MENU, 0.6, 20, ["x", "y"], broker_faults=True)
    again = Schedule.from_dict(json.loads(json.dumps(schedule.to_dict())))
    assert again == schedule
    ids = schedule.ids()
    smaller = schedule.without(ids[:2])
    assert smaller.ids() == ids[2:] and smaller.seed == schedule.seed
    assert schedule.only(ids[:2]).ids() == ids[:2]


def test_ddmin_finds_the_minimal_cause() -> None:
    calls: list[list[int]] = []

    def fails(items: list[int]) -> bool:
        calls.append(items)
        return 3 in items and 11 in items

    assert ddmin(list(range(20)), fails, max_runs=200) == [3, 11]
    assert len(calls) < 60
    assert ddmin([5], fails, 10) == [5]
    assert ddmin(list(range(20)), lambda items: 0 in items, max_runs=200) == [0]
    limited = ddmin(list(range(64)), lambda items: 63 in items, max_runs=3)
    assert 63 in limited and len(limited) <= 64


def test_runner_executes_reports_and_heals(env: Env) -> None:
    client = FaultProxyClient(env.url)
    client.create_proxy("svc", env.echo_addr)
    proc = SleeperProcess()
    events: list[tuple[str, str, float]] = []
    seen: dict[str, object] = {}
    schedule = Schedule(
        1,
        1.0,
        (
            Fault("f001", "latency", "svc", 0.05, 0.3, {"ms": 10}),
            Fault("f002", "kill", "svc", 0.1, 0.2, {}),
            Fault("f003", "partition", "svc", 0.45, 0.2, {"mode": "disable"}),
            Fault("f004", "pause", "svc", 0.45, 0.2, {}),
        ),
    )

    def on_event(kind: str, fault: Fault, t: float) -> None:
        events.append((kind, fault.id, t))
        if (kind, fault.id) == ("fault_start", "f001"):
            seen["toxics"] = [t["type"] for t in client.toxics("svc")]
        if (kind, fault.id) == ("fault_start", "f003"):
            seen["enabled"] = client.proxies()["svc"]["enabled"]
        if (kind, fault.id) == ("fault_start", "f004"):
            seen["state"] = wait_state(proc, {"T"}, 0.2)

    try:
        runner = NemesisRunner(client, {"svc": proc}, on_event)
        runner.start(schedule)
        runner.join(10)
        assert not runner.errors
        assert seen == {"toxics": ["latency", "latency"], "enabled": False, "state": "T"}
        starts = {fid: t for kind, fid, t in events if kind == "fault_start"}
        ends = {fid: t for kind, fid, t in events if kind == "fault_end"}
        assert set(starts) == set(ends) == {"f001", "f002", "f003", "f004"}
        for fault in schedule:  # never early, and each lasts its length (how late is a benchmark's business)
            assert starts[fault.id] >= fault.start - 0.01
            assert ends[fault.id] - starts[fault.id] >= fault.duration - 0.01
        assert client.toxics("svc") == [] and client.proxies()["svc"]["enabled"] is True
        assert proc.starts == 2 and wait_state(proc, RUNNING) in RUNNING
    finally:
        proc.stop()


def test_runner_cancel_heals_everything(env: Env) -> None:
    client = FaultProxyClient(env.url)
    client.create_proxy("svc", env.echo_addr)
    proc = SleeperProcess()
    schedule = Schedule(
        1,
        60.0,
        (
            Fault("f001", "throttle", "svc", 0.0, 50.0, {"kbps": 1}),
            Fault("f002", "pause", "svc", 0.0, 50.0, {}),
            Fault("f003", "latency", "svc", 55.0, 1.0, {}),
        ),
    )
    events: list[str] = []
    try:
        runner = NemesisRunner(
            client, {"svc": proc}, lambda kind, fault, t: events.append(f"{kind}:{fault.id}")
        )
        runner.start(schedule)
        time.sleep(0.3)
        assert len(client.toxics("svc")) == 2 and wait_state(proc, {"T"}) == "T"
        runner.cancel()
        runner.join(30)
        assert not runner.is_alive(), "cancel ends the schedule long before its 50 s faults would have"
        assert client.toxics("svc") == [] and wait_state(proc, RUNNING) in RUNNING
        assert sorted(events) == ["fault_end:f001", "fault_end:f002", "fault_start:f001", "fault_start:f002"]
        runner.heal_all()  # idempotent
        with pytest.raises(ChaosError, match="already started"):
            runner.start(schedule)
    finally:
        proc.stop()


class CommandKilledProcess(SleeperProcess):
    """Killed the way an attached service is: a command that takes a while (here 0.4 s) before the signal."""

    def kill(self) -> None:
        subprocess.run(["sh", "-c", f"sleep 0.4; kill -9 {self.proc.pid}"], check=True, timeout=60)
        self.proc.wait(5)


def test_the_time_injecting_takes_is_kept_apart_from_lateness() -> None:
    proc = CommandKilledProcess()
    events: dict[str, float] = {}
    try:
        runner = NemesisRunner(None, {"svc": proc}, lambda kind, fault, t: events.setdefault(kind, t))
        runner.run(Schedule(1, 1.0, (Fault("f1", "kill", "svc", 0.05, 0.1, {}),)))
        assert not runner.errors
        # the runner began on time; the fault took effect once the command had done its work
        assert events["fault_start"] - runner.dispatched["f1"] >= 0.4
        assert runner.dispatched["f1"] >= 0.05
    finally:
        proc.stop()


def test_runner_rejects_unknown_targets(env: Env) -> None:
    runner = NemesisRunner(FaultProxyClient(env.url), {})
    with pytest.raises(ChaosError, match="does not control"):
        runner.run(Schedule(1, 1.0, (Fault("f1", "kill", "ghost", 0, 0.1),)))
    with pytest.raises(ChaosError, match="valid names"):
        runner.run(Schedule(1, 1.0, (Fault("f1", "meteor", "x", 0, 0.1),)))


def test_every_kind_of_the_menu_is_dealt_before_any_repeats():
    from sagaproof.chaos.nemesis import generate_schedule

    menu = ["latency", "partition", "cut", "kill", "pause", "duplicate", "drop"]
    for seed in range(1, 30):
        sched = generate_schedule(seed, menu, 0.5, 4.0, ["order", "payment", "inventory", "shipping"])
        kinds = [f.kind for f in sched]
        assert len(kinds) >= len(menu), f"seed {seed}: only {len(kinds)} slots"
        assert set(kinds) == set(menu), f"seed {seed}: {sorted(set(menu) - set(kinds))} never dealt"
