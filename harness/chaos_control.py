"""Chaos wiring on the harness side: per-service fault proxies, the pytest fault API, and the nemesis.

* :func:`start_links` puts one Toxiproxy proxy between every service and its NATS node (the embedded
  Toxiproxy-compatible server from :mod:`chaos.toxiproxy`, or ``[chaos] toxiproxy_url``), so each service's
  ``{nats_url}`` goes through its own link and a fault can hit one service.
* :class:`ChaosHandle` (``system.chaos``) gives tests context managers that always heal:
  ``with system.chaos.latency("payment", ms=500, jitter=100): ...``, ``partition``, ``cut``, ``throttle``,
  ``drop``, ``duplicate``, ``delay``, ``reorder``; and ``kill(name, restart_after)``, ``pause(name, seconds)``,
  ``restart_nats()``. Every fault's start and end is written to the run's history when a recorder listens.
* :func:`start_nemesis` generates the seeded schedule for a run and executes it in a thread.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sagaproof.harness.errors import ConfigError, EnvironmentStartError
from sagaproof.harness.events import EventBus, FaultHealed, FaultInjected


def _client(system: Any) -> Any:
    """The fault proxy client of this run, starting the embedded server on first use."""
    from sagaproof.chaos.client import FaultProxyClient

    if system.proxies is None:
        url = system.spec.chaos.toxiproxy_url
        if url is None:
            from sagaproof.chaos.toxiproxy import serve

            system.proxy_server = system.loop.run(serve(host="127.0.0.1", port=0, seed=system.seed), timeout=15)
            url = system.proxy_server.url
        system.proxies = FaultProxyClient(url)
    return system.proxies


def route_proxy(system: Any, i: int, j: int, port: int) -> int:
    """A proxy `nats-route-i-j` for node i's route to node j's cluster port; returns the port to dial."""
    from sagaproof.chaos.errors import ChaosError

    client = _client(system)
    name = f"nats-route-{i}-{j}"
    try:
        if name in client.proxies():
            client.delete_proxy(name)
        listen = client.create_proxy(name, upstream=f"127.0.0.1:{port}", listen="127.0.0.1:0")
    except ChaosError as exc:
        raise EnvironmentStartError(f"the fault proxies for the NATS cluster routes could not be set up: {exc}") from None
    return int(listen.rsplit(":", 1)[1])


def start_links(system: Any, upstreams: dict[str, str]) -> dict[str, str]:
    """Create one proxy per service toward its NATS node; return service -> NATS URL through its proxy."""
    from urllib.parse import urlsplit

    from sagaproof.chaos.errors import ChaosError

    client = _client(system)
    out = {}
    try:
        existing = client.proxies()
        for name, nats_url in upstreams.items():
            parts = urlsplit(nats_url)
            if name in existing:
                client.delete_proxy(name)  # a leftover of an earlier run on an external Toxiproxy
            listen = client.create_proxy(name, upstream=f"127.0.0.1:{parts.port}", listen="127.0.0.1:0")
            system.proxy_names[name] = name
            auth = f"{parts.username}:{parts.password}@" if parts.username else ""
            out[name] = f"nats://{auth}{listen}"
    except ChaosError as exc:
        raise EnvironmentStartError(f"the fault proxies could not be set up: {exc}") from None
    return out


class NatsControl:
    """ProcessControl for the broker: stop/kill and restart a node with its JetStream data kept."""

    def __init__(self, system: Any):
        self.system = system
        self._next = itertools.count()
        self._down: int | None = None

    def _node(self) -> Any:
        if self.system.nats is None:
            raise ConfigError("broker faults need embedded NATS; remove nats_restart from the faults or nats.url.")
        nodes = self.system.nats.nodes
        return nodes[next(self._next) % len(nodes)]

    def kill(self) -> None:
        node = self._node()
        self._down = node.index
        node.process.kill()

    def stop(self) -> None:
        node = self._node()
        self._down = node.index
        node.process.stop()

    def restart(self) -> None:
        if self._down is None:
            return
        node = self.system.nats.nodes[self._down]
        if not node.process.running:
            node.process.start()
        self.system.nats.wait_healthy(node, 30)
        self._down = None

    def pause(self) -> None:
        node = self._node()
        node.process.pause()
        self._down = node.index

    def resume(self) -> None:
        if self._down is not None:
            self.system.nats.nodes[self._down].process.resume()


class ServiceControl:
    """ProcessControl for one service (restart waits for its readiness probe)."""

    def __init__(self, service: Any):
        self.service = service

    def kill(self) -> None:
        self.service.kill()

    def stop(self) -> None:
        self.service.stop()

    def restart(self) -> None:
        self.service.restart()

    def pause(self) -> None:
        self.service.pause()

    def resume(self) -> None:
        self.service.resume()


class ChaosHandle:
    """``system.chaos``: fault context managers by service name, each recorded and always healed."""

    def __init__(self, system: Any):
        self.system = system
        self._ids = itertools.count(1)
        self.recorder: Any = None  # set by whoever records the history
        self.log: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        import time

        self._t0 = time.monotonic()

    def _faults(self) -> Any:
        if self.system.proxies is None:
            raise ConfigError("network faults need fault proxies; start the system with chaos links "
                              "(sagaproof run does; in pytest pass --sagaproof-chaos-links or set "
                              "sagaproof_chaos_links = true).")
        from sagaproof.chaos.faults import Faults

        return Faults(self.system.proxies, prefix="test")

    def _proxy(self, service: str) -> str:
        if service not in self.system.services:
            raise ConfigError(f"there is no service named '{service}'; the services are "
                              f"{', '.join(self.system.services)}.")
        return str(self.system.proxy_names.get(service, service))

    def _t(self) -> float:
        import time

        if self.recorder is not None:
            return float(self.recorder.now())
        return round(time.monotonic() - self._t0, 6)

    def _start(self, kind: str, target: str, params: dict[str, Any]) -> dict[str, Any]:
        fault = {"id": f"t{next(self._ids)}", "kind": kind, "target": target, "start": self._t(), "duration": None,
                 "params": params}
        with self._lock:
            self.log.append(fault)
        if self.recorder is not None:
            self.recorder.add({"kind": "fault_start", "t": fault["start"], "fault": fault})
        self.system.bus.emit(FaultInjected(fault))
        return fault

    def _end(self, fault: dict[str, Any]) -> None:
        t = self._t()
        fault["duration"] = round(t - fault["start"], 6)
        fault["ended_at"] = t
        if self.recorder is not None:
            self.recorder.add({"kind": "fault_end", "t": t, "fault_id": fault["id"]})
        self.system.bus.emit(FaultHealed(fault))

    @contextmanager
    def _network(self, kind: str, service: str, params: dict[str, Any], make: Any) -> Iterator[None]:
        proxy = self._proxy(service)
        cm = make(self._faults(), proxy)
        cm.__enter__()
        fault = self._start(kind, service, params)
        try:
            yield
        finally:
            try:
                cm.__exit__(None, None, None)
            finally:
                self._end(fault)

    def latency(self, service: str, ms: int, jitter: int = 0, direction: str = "both") -> Any:
        """Every byte between the service and NATS is `ms` (± jitter) late."""
        return self._network("latency", service, {"ms": ms, "jitter": jitter},
                             lambda f, p: f.latency(p, ms, jitter, direction=direction))

    def partition(self, service: str, mode: str = "disable") -> Any:
        """Cut the service off from NATS (its proxy is disabled: connections drop, reconnects are refused)."""
        return self._network("partition", service, {"mode": mode}, lambda f, p: f.partition(p, mode=mode))

    def cut(self, service: str, after_ms: int = 0) -> Any:
        """Reset the service's NATS connections (TCP RST) while active."""
        return self._network("cut", service, {"after_ms": after_ms}, lambda f, p: f.cut(p, after_ms=after_ms))

    def throttle(self, service: str, kbps: int) -> Any:
        """Limit the service's link to `kbps` KB/s each way."""
        return self._network("throttle", service, {"kbps": kbps}, lambda f, p: f.throttle(p, kbps))

    def drop(self, service: str, subject: str = ">", probability: float = 1.0, direction: str = "upstream") -> Any:
        """Drop single NATS messages on subjects matching `subject` (publishes upstream, deliveries downstream)."""
        return self._network("drop", service, {"subject": subject, "probability": probability, "direction": direction},
                             lambda f, p: f.drop(p, subject, probability, direction=direction))

    def duplicate(self, service: str, subject: str = ">", probability: float = 1.0,
                  direction: str = "downstream") -> Any:
        """Deliver single NATS messages twice (what a redelivery looks like to a consumer)."""
        return self._network("duplicate", service,
                             {"subject": subject, "probability": probability, "direction": direction},
                             lambda f, p: f.duplicate(p, subject, probability, direction=direction))

    def delay(self, service: str, subject: str = ">", probability: float = 1.0, delay_ms: int = 500,
              direction: str = "downstream") -> Any:
        """Hold single messages back while later ones pass (reordering)."""
        return self._network("delay", service, {"subject": subject, "probability": probability, "delay_ms": delay_ms},
                             lambda f, p: f.delay_messages(p, subject, probability, delay_ms, direction=direction))

    def reorder(self, service: str, subject: str = ">", probability: float = 1.0, direction: str = "downstream") -> Any:
        """Swap matching messages with the next matching one."""
        return self._network("reorder", service, {"subject": subject, "probability": probability},
                             lambda f, p: f.reorder(p, subject, probability, direction=direction))

    def kill(self, service: str, restart_after: float | None = 1.0) -> None:
        """SIGKILL the service; restart it after `restart_after` seconds (None: leave it down)."""
        import time

        self._proxy(service)
        fault = self._start("kill", service, {"restart_after": restart_after})
        self.system.services[service].kill()
        if restart_after is None:
            return
        try:
            time.sleep(restart_after)
        finally:
            self.system.services[service].restart()
            self._end(fault)

    @contextmanager
    def paused(self, service: str) -> Iterator[None]:
        """SIGSTOP the service for the block."""
        self._proxy(service)
        fault = self._start("pause", service, {})
        self.system.services[service].pause()
        try:
            yield
        finally:
            self.system.services[service].resume()
            self._end(fault)

    def pause(self, service: str, seconds: float) -> None:
        """SIGSTOP the service for `seconds`."""
        import time

        with self.paused(service):
            time.sleep(seconds)

    @contextmanager
    def isolate_nats_node(self, node: int) -> Iterator[None]:
        """Cut one node of a 3-node cluster off from its peers (its route proxies are disabled both ways)."""
        nats = self.system.nats
        if nats is None or len(nats.nodes) < 2 or self.system.proxies is None:
            raise ConfigError("isolate_nats_node needs an embedded cluster (nats.cluster = 3) with chaos links on.")
        names = [f"nats-route-{a}-{b}" for a in range(len(nats.nodes)) for b in range(len(nats.nodes))
                 if a != b and node in (a, b)]
        fault = self._start("nats_isolate", f"nats-{node}", {"routes": names})
        for name in names:
            self.system.proxies.disable(name)
        try:
            yield
        finally:
            for name in names:
                self.system.proxies.enable(name)
            self._end(fault)

    def restart_nats(self, node: int = 0) -> None:
        """Kill a NATS node and bring it back with its JetStream data."""
        fault = self._start("nats_restart", f"nats-{node}", {})
        try:
            self.system.restart_nats(node)
        finally:
            self._end(fault)

    def heal(self) -> None:
        """Remove every toxic and enable every proxy."""
        if self.system.proxies is not None:
            self.system.proxies.reset()


class NemesisHandle:
    """A running nemesis: call :meth:`finish` after the workload to heal and get the executed schedule."""

    def __init__(self, runner: Any, schedule: Any, executed: list[dict[str, Any]]):
        self.runner = runner
        self.schedule = schedule
        self.executed = executed

    def finish(self) -> list[dict[str, Any]]:
        self.runner.cancel()
        self.runner.join(60)
        self.runner.heal_all()
        return self.executed


def validate_schedule(records: Any, system_spec: Any, source: str) -> tuple[Any, ...]:
    """The faults of a fixed schedule (a JSON list of fault records), or ConfigError naming the bad one."""
    from sagaproof.chaos.errors import ChaosError
    from sagaproof.chaos.nemesis import BROKER_TARGET, Fault

    from sagaproof.faultkinds import FAULT_KINDS

    hint = "pass the minimal-schedule.json a shrinking run wrote, or a list of {id, kind, target, start, duration}."
    if not isinstance(records, list):
        raise ConfigError(f"{source}: a schedule is a JSON list of faults, not a JSON {type(records).__name__}; {hint}")
    targets = [*system_spec.services, BROKER_TARGET]
    faults = []
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise ConfigError(f"{source}: fault #{i + 1} is not a JSON object; {hint}")
        try:
            fault = Fault.from_dict(record)
        except ChaosError:
            missing = [k for k in ("id", "kind", "target", "start", "duration") if k not in record]
            what = f"lacks {', '.join(missing)}" if missing else "has a start or duration that is not a number"
            raise ConfigError(f"{source}: fault #{i + 1} {what}; {hint}") from None
        if fault.kind not in FAULT_KINDS:
            raise ConfigError(f"{source}: fault #{i + 1} has unknown kind '{fault.kind}'; "
                              f"the kinds are: {', '.join(FAULT_KINDS)}.")
        if fault.target not in targets:
            raise ConfigError(f"{source}: fault #{i + 1} targets '{fault.target}', which is not a service of this "
                              f"system; the targets are: {', '.join(targets)}.")
        if fault.start < 0 or fault.duration < 0:
            raise ConfigError(f"{source}: fault #{i + 1} has a negative start or duration; use seconds >= 0.")
        faults.append(fault)
    return tuple(faults)


def make_schedule(system_spec: Any, opts: Any, seed: int, window: float) -> Any:
    """The run's fault schedule: generated from the seed, or the fixed one given (shrinking)."""
    from sagaproof.chaos.errors import ChaosError
    from sagaproof.chaos.nemesis import Schedule, generate_schedule

    menu = list(opts.faults if opts.faults is not None else system_spec.chaos.faults)
    intensity = opts.intensity if opts.intensity is not None else system_spec.chaos.intensity
    if opts.schedule is not None:
        faults = validate_schedule(opts.schedule, system_spec, "--schedule")
        return Schedule(seed, window, faults, tuple(menu), float(intensity))
    try:
        return generate_schedule(seed, menu, intensity, max(window, 0.5), list(system_spec.services),
                                 broker_faults="nats_restart" in menu and system_spec.nats.embedded)
    except ChaosError as exc:
        raise ConfigError(str(exc)) from None


def start_nemesis(system: Any, spec: Any, opts: Any, seed: int, window: float, recorder: Any, bus: EventBus) -> NemesisHandle:
    """Generate the schedule and run it in a thread; every fault start/end goes into the history."""
    from sagaproof.chaos.nemesis import NemesisRunner

    client = system.proxies
    if any(getattr(s.spec, "attached", False) for s in system.services.values()):
        from dataclasses import replace

        from sagaproof.harness.attach import ProxyNames, usable_menu

        menu, notes = usable_menu(system, list(opts.faults if opts.faults is not None else spec.chaos.faults))
        system.notes.extend(notes)
        opts = replace(opts, faults=tuple(menu))  # the replay command keeps the user's menu: the same cut is made
        client = ProxyNames(system.proxies, system.proxy_names) if system.proxies is not None else None
    schedule = make_schedule(spec, opts, seed, window)
    executed: list[dict[str, Any]] = []
    by_id: dict[str, dict[str, Any]] = {}
    lock = threading.Lock()

    def on_event(kind: str, fault: Any, _t: float) -> None:
        t = recorder.now()
        if kind == "fault_start":
            d = fault.to_dict()
            d["started_at"] = t
            with lock:
                by_id[fault.id] = d
                executed.append(d)
            recorder.add({"kind": "fault_start", "t": t, "fault": d})
            bus.emit(FaultInjected(d))
        else:
            with lock:
                d = by_id.get(fault.id, fault.to_dict())
            d["ended_at"] = t
            recorder.add({"kind": "fault_end", "t": t, "fault_id": fault.id})
            bus.emit(FaultHealed(d))

    processes: dict[str, Any] = {name: ServiceControl(svc) for name, svc in system.services.items()}
    if system.nats is not None:
        processes["nats"] = NatsControl(system)
    runner = NemesisRunner(client, processes, on_event=on_event)
    runner.start(schedule)
    return NemesisHandle(runner, schedule, executed)
