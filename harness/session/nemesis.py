"""The nemesis wiring of a run: the seeded (or fixed) fault schedule, carried out in a thread, every fault an
event on the run's bus; and the fault menu of attach mode (the kinds that can really be injected on a deployed
system, the others left out with a note).

* :func:`make_schedule` generates the schedule from the seed (or takes the fixed one: shrinking, replay);
  :func:`validate_schedule` checks a fixed one.
* :func:`start_nemesis` runs it against the environment's links and process controls (:mod:`harness.env.links`).
* :func:`usable_menu` and :class:`ProxyNames` are attach mode's part: which fault kinds the team's Toxiproxy
  and commands can inject, and the team's proxy names.
"""

from __future__ import annotations

import threading
from typing import Any

from sagaproof.harness.config import NatsSpec
from sagaproof.harness.env.attach import split_urls
from sagaproof.harness.env.links import NatsControl, ServiceControl
from sagaproof.harness.errors import ConfigError, boundary
from sagaproof.harness.events import EventBus, FaultFailed, FaultHealed, FaultInjected

from sagaproof.faultkinds import KINDS

__all__ = ["NemesisHandle", "ProxyNames", "make_schedule", "start_nemesis", "usable_menu", "validate_schedule"]

NETWORK_FAMILY = ("network",)
MESSAGE_FAMILY = ("message",)


class NemesisHandle:
    """A running nemesis: call :meth:`finish` after the workload; it lets the schedule run to its end (at most
    ``grace`` seconds past its planned end), heals, and returns the planned faults."""

    def __init__(self, runner: Any, schedule: Any, planned: list[dict[str, Any]], started: float):
        self.runner = runner
        self.schedule = schedule
        self.planned = planned
        self.started = started

    def finish(self, *, wait: bool = True, grace: float = 30.0) -> list[dict[str, Any]]:
        import time

        if wait:
            end = max((f.end for f in self.schedule), default=0.0)
            self.runner.join(max(0.0, self.started + end + grace - time.monotonic()))
        self.runner.cancel()
        self.runner.join(60)
        self.runner.heal_all()
        return self.planned


def validate_schedule(records: Any, system_spec: Any, source: str) -> tuple[Any, ...]:
    """The faults of a fixed schedule (a JSON list of fault records), or ConfigError naming the bad one."""
    from sagaproof.chaos.nemesis import BROKER_TARGET, Fault

    from sagaproof.faultkinds import fault_kind_names

    FAULT_KINDS = fault_kind_names()  # the built-in kinds and the plugins'
    hint = "pass the minimal-schedule.json a shrinking run wrote, or a list of {id, kind, target, start, duration}."
    if not isinstance(records, list):
        raise ConfigError(f"{source}: a schedule is a JSON list of faults, not a JSON {type(records).__name__}; {hint}")
    processes = system_spec.processes() if hasattr(system_spec, "processes") else dict(system_spec.services)
    # a service with replicas may be named as a whole: the fault hits every replica at once
    replicated = {name: svc.replica_names() for name, svc in system_spec.services.items()
                  if getattr(svc, "replicas", 1) > 1}
    targets = [*processes, *replicated, BROKER_TARGET]
    faults: list[Fault] = []
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise ConfigError(f"{source}: fault #{i + 1} is not a JSON object; {hint}")
        missing = [k for k in ("id", "kind", "target", "start", "duration") if k not in record]
        numbers = all(_is_number(record.get(k)) for k in ("start", "duration"))
        if missing or not numbers:
            what = f"lacks {', '.join(missing)}" if missing else "has a start or duration that is not a number"
            raise ConfigError(f"{source}: fault #{i + 1} {what}; {hint}")
        with boundary("config"):
            fault = Fault.from_dict(record)
        if fault.kind not in FAULT_KINDS:
            raise ConfigError(f"{source}: fault #{i + 1} has unknown kind '{fault.kind}'; "
                              f"the kinds are: {', '.join(FAULT_KINDS)}.")
        if fault.target not in targets:
            raise ConfigError(f"{source}: fault #{i + 1} targets '{fault.target}', which is not a service of this "
                              f"system; the targets are: {', '.join(targets)}.")
        if fault.start < 0 or fault.duration < 0:
            raise ConfigError(f"{source}: fault #{i + 1} has a negative start or duration; use seconds >= 0.")
        if fault.target in replicated:
            from dataclasses import replace

            faults.extend(replace(fault, id=f"{fault.id}.{proc}", target=proc) for proc in replicated[fault.target])
            continue
        faults.append(fault)
    return tuple(faults)


def _is_number(value: Any) -> bool:
    """What Fault.from_dict accepts as a number (float() of it works)."""
    try:
        float(value)
        return not isinstance(value, bool)
    except (TypeError, ValueError):
        return False


def make_schedule(system_spec: Any, opts: Any, seed: int, window: float) -> Any:
    """The run's fault schedule: generated from the seed, or the fixed one given (shrinking, replay)."""
    from sagaproof.chaos.nemesis import Schedule, generate_schedule

    menu = list(opts.faults if opts.faults is not None else system_spec.chaos.faults)
    intensity = opts.intensity if opts.intensity is not None else system_spec.chaos.intensity
    if opts.schedule is not None:
        faults = validate_schedule(opts.schedule, system_spec, "--schedule")
        return Schedule(seed, window, faults, tuple(menu), float(intensity))
    with boundary("config"):
        return generate_schedule(seed, menu, intensity, max(window, 0.5), list(system_spec.processes()),
                                 broker_faults="nats_restart" in menu and system_spec.nats.embedded)


def start_nemesis(system: Any, schedule: Any, clock: Any, bus: EventBus,
                  locks: dict[str, threading.Lock] | None = None) -> NemesisHandle:
    """Run the schedule in a thread. Each fault's start, end and failure is an event on the bus, with the
    planned time and the actual one (``started_at`` in history time, ``late_by`` against the plan)."""
    import time

    from sagaproof.chaos.nemesis import NemesisRunner

    client = system.proxies
    if any(getattr(s.spec, "attached", False) for s in system.services.values()):
        client = ProxyNames(system.proxies, system.proxy_names) if system.proxies is not None else None
    planned = [dict(f.to_dict(), source="nemesis") for f in schedule]
    by_id: dict[str, dict[str, Any]] = {}
    lock = threading.Lock()

    def info(fault: Any) -> dict[str, Any]:
        with lock:
            d = by_id.get(fault.id)
            if d is None:
                d = by_id[fault.id] = dict(fault.to_dict(), source="nemesis")
            return d

    def on_event(kind: str, fault: Any, t_schedule: float) -> None:
        d = info(fault)
        if kind == "fault_start":
            d["started_at"] = clock()
            # Late: how long after its planned time the harness began to inject it. What injecting took (a
            # command, an API call) is kept apart: the fault then lasts its whole length from when it took effect.
            began = runner.dispatched.get(fault.id, t_schedule)
            d["late_by"] = round(began - fault.start, 6)
            d["inject_seconds"] = round(max(0.0, t_schedule - began), 6)
            # Seconds it waited for the previous process fault on its target to be healed (a restart that waits
            # for readiness): the schedule's own sequencing, not the harness falling behind.
            d["waited_for_target"] = runner.waited.get(fault.id, 0.0)
            # A crash loop's later crashes wait for the service to be ready again: their time is relative to
            # that, not to the plan, so only the earlier wait counts.
            d["judge_lateness"] = "up_for" not in fault.params
            bus.emit(FaultInjected(dict(d)))
        else:
            d["ended_at"] = clock()
            if d.get("started_at") is not None:
                d["actual_duration"] = round(d["ended_at"] - d["started_at"], 6)
            bus.emit(FaultHealed(dict(d)))

    def on_failure(fault: Any, stage: str, error: str) -> None:
        d = info(fault)
        d.setdefault("errors", []).append(f"{stage}: {error}")
        bus.emit(FaultFailed(dict(d), error, stage))

    processes: dict[str, Any] = {name: ServiceControl(svc) for name, svc in system.services.items()}
    if system.nats is not None:
        processes["nats"] = NatsControl(system)
    runner: Any = None
    runner = NemesisRunner(client, processes, on_event=on_event, on_failure=on_failure)
    if locks is not None:
        runner.locks = locks  # shared with the targeted phase: process faults on one service take turns
    with boundary("config"):
        runner.start(schedule)
    return NemesisHandle(runner, schedule, planned, time.monotonic())


# ---------------------------------------------------------------------------- the fault menu


class ProxyNames:
    """A fault proxy client that knows services by name: the nemesis says "payment", the team's Toxiproxy
    calls that proxy "payment-nats". ``reset`` heals only these proxies (the Toxiproxy may serve others)."""

    def __init__(self, client: Any, names: dict[str, str]):
        self._client = client
        self._names = dict(names)

    def __getattr__(self, attr: str) -> Any:
        method = getattr(self._client, attr)
        if not callable(method):
            return method

        def call(*args: Any, **kw: Any) -> Any:
            if args and isinstance(args[0], str):
                args = (self._names.get(args[0], args[0]), *args[1:])
            return method(*args, **kw)
        return call

    def reset(self) -> None:
        """Remove every toxic of our proxies and enable them."""
        for proxy in dict.fromkeys(self._names.values()):
            for toxic in self._client.toxics(proxy):
                self._client.remove_toxic(proxy, toxic["name"])
            self._client.enable(proxy)


def _message_toxics_supported(client: Any, proxy: str) -> bool:
    """True if the Toxiproxy has sagaproof's NATS-aware toxics (a harmless probe: a toxic of toxicity 0)."""
    from sagaproof.chaos.errors import ChaosError

    try:
        name = client.add_toxic(proxy, "nats_drop", stream="upstream", toxicity=0.0, name="sagaproof_probe",
                                subject="sagaproof.probe", probability=0.0)
    except ChaosError:
        return False
    try:
        client.remove_toxic(proxy, name)
    except ChaosError:
        pass
    return True


def _nats_tls(nats: NatsSpec) -> bool:
    return bool(nats.tls_ca or nats.tls_cert or any(u.startswith("tls://") for u in split_urls(nats.url or "")))


def usable_menu(system: Any, menu: list[str]) -> tuple[list[str], list[str]]:
    """The fault kinds of `menu` that can really be injected on every service; and a note per kind left out."""
    attached = [s for s in system.services.values() if getattr(s.spec, "attached", False)]
    if not attached:
        return list(menu), []
    keep: list[str] = []
    notes: list[str] = []
    no_proxy = [s.name for s in attached if s.name not in system.proxy_names]
    message_ok: bool | None = None
    for kind in menu:
        family = KINDS[kind].family if kind in KINDS else None
        why = None
        if family in NETWORK_FAMILY + MESSAGE_FAMILY:
            if system.proxies is None:
                why = "no Toxiproxy for the attached services (set chaos.toxiproxy_url)"
            elif no_proxy:
                why = f"no proxy named for {', '.join(no_proxy)} (set services.NAME.proxy)"
            elif family in MESSAGE_FAMILY and _nats_tls(system.spec.nats):
                why = "the NATS links are TLS-encrypted, so a proxy cannot read the messages on them"
            elif family in MESSAGE_FAMILY:
                if message_ok is None:
                    message_ok = _message_toxics_supported(system.proxies, system.proxy_names[attached[0].name])
                if not message_ok:
                    why = ("the Toxiproxy at chaos.toxiproxy_url has no NATS-aware toxics (`sagaproof toxiproxy` "
                           "has them)")
        elif kind == "kill":
            missing = [s.name for s in attached if not {"kill", "restart"} <= set(s.spec.commands)]
            if missing:
                why = f"no kill and restart commands for {', '.join(missing)}"
        elif kind == "pause":
            missing = [s.name for s in attached if not {"pause", "resume"} <= set(s.spec.commands)]
            if missing:
                why = f"no pause and resume commands for {', '.join(missing)}"
        elif kind == "nats_restart" and system.nats is None:
            why = "the broker is not started by the harness (nats.url)"
        if why is None:
            keep.append(kind)
        else:
            notes.append(f"attach mode: fault '{kind}' left out of the menu: {why}.")
    return keep, notes
