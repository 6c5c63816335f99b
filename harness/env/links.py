"""The links: one fault proxy between every service and its NATS node, and ``system.chaos``, the test fault API.

* :func:`start_links` puts one Toxiproxy proxy between every service and its NATS node (the embedded
  Toxiproxy-compatible server from :mod:`chaos.toxiproxy`, or ``[chaos] toxiproxy_url``), so each service's
  ``{nats_url}`` goes through its own link and a fault can hit one service; :func:`route_proxy` does the same
  for a cluster's routes.
* :class:`ChaosHandle` (``system.chaos``) gives tests context managers that always heal:
  ``with system.chaos.latency("payment", ms=500, jitter=100): ...``, ``partition``, ``cut``, ``throttle``,
  ``drop``, ``duplicate``, ``delay``, ``reorder``; and ``kill(name, restart_after)``, ``pause(name, seconds)``,
  ``restart_nats()``. Every fault's start and end is an event on the system's bus.
* :class:`NatsControl` and :class:`ServiceControl` are the process controls a nemesis drives.

Part of the environment: it knows nothing of runs (the seeded schedule is :mod:`harness.session.nemesis`).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from sagaproof.harness.env.ports import with_port
from sagaproof.harness.errors import ConfigError, FaultError, boundary
from sagaproof.harness.events import FaultFailed, FaultHealed, FaultInjected, ProcessChanged


def _client(system: Any) -> Any:
    """The fault proxy client of this run, starting the embedded server on first use."""
    from sagaproof.chaos.client import FaultProxyClient

    if system.proxies is None:
        url = system.spec.chaos.toxiproxy_url
        if url is None:
            from sagaproof.chaos.toxiproxy import serve

            system.proxy_server = with_port(
                system.ports, lambda port: system.loop.run(serve(host="127.0.0.1", port=port, seed=system.seed),
                                                           timeout=15),
                lambda old, new, why: system.port_retried("fault-proxy", old, new, why))
            url = system.proxy_server.url
        system.proxies = FaultProxyClient(url)
    return system.proxies


def create_link(system: Any, client: Any, name: str, upstream: str) -> str:
    """Create proxy `name` toward `upstream` listening on a port of the run's (:mod:`harness.env.ports`: it
    keeps its port when disabled and enabled again); another port when that one was taken meanwhile.
    Returns its listen address."""
    return with_port(system.ports,
                     lambda port: str(client.create_proxy(name, upstream=upstream, listen=f"127.0.0.1:{port}")),
                     lambda old, new, why: system.port_retried(f"link:{name}", old, new, why))


def route_proxy(system: Any, i: int, j: int, port: int) -> int:
    """A proxy `nats-route-i-j` for node i's route to node j's cluster port; returns the port to dial."""
    client = _client(system)
    name = f"nats-route-{i}-{j}"
    with boundary("environment"):
        if name in client.proxies():
            client.delete_proxy(name)
        listen = create_link(system, client, name, f"127.0.0.1:{port}")
    return int(listen.rsplit(":", 1)[1])


def start_links(system: Any, upstreams: dict[str, str]) -> dict[str, str]:
    """Create one proxy per service toward its NATS node; return service -> NATS URL through its proxy."""
    from urllib.parse import urlsplit

    client = _client(system)
    out = {}
    with boundary("environment"):
        existing = client.proxies()
        for name, nats_url in upstreams.items():
            parts = urlsplit(nats_url)
            if name in existing:
                client.delete_proxy(name)  # a leftover of an earlier run on an external Toxiproxy
            listen = create_link(system, client, name, f"127.0.0.1:{parts.port}")
            system.proxy_names[name] = name
            auth = f"{parts.username}:{parts.password}@" if parts.username else ""
            out[name] = f"nats://{auth}{listen}"
    return out


RECORDER_BACK = 15.0  # seconds the services' links are held for the recorder to be back on a restarted node


def recorder_marks(system: Any, index: int) -> list[tuple[Any, int]] | None:
    """Before node `index` goes down: the recorder's connections on it, each with its count of reconnects."""
    recorder = getattr(system, "recorder", None)
    if recorder is None or system.nats is None:
        return None
    port = system.nats.nodes[index].client_port
    return [(nc, int(nc.stats["reconnects"])) for nc in recorder.connections
            if getattr(nc.connected_url, "port", None) == port]


async def _back_on(marks: list[tuple[Any, int]], timeout: float) -> bool:
    """Wait until each marked connection has reconnected and the server has its subscriptions again (a
    flush: nats-py sends them before it flushes what waited); False if that took over `timeout` seconds."""
    import asyncio
    import time

    deadline = time.monotonic() + timeout
    for nc, reconnects in marks:
        while not (nc.is_connected and nc.stats["reconnects"] > reconnects):
            if time.monotonic() >= deadline or nc.is_closed:
                return False
            await asyncio.sleep(0.02)
        try:
            await nc.flush(timeout=max(0.1, deadline - time.monotonic()))
        except Exception:  # noqa: BLE001 - gone again meanwhile: not back
            return False
    return True


def restart_nats_node(system: Any, index: int) -> None:
    """Kill node `index` and start it again with its JetStream data, the recorder back on it first."""
    node = system.nats.nodes[index]
    marks = recorder_marks(system, index)
    node.process.kill()
    with recorder_first(system, index, marks):
        node.process.start()
        system.nats.wait_healthy(node, 20.0)


@contextmanager
def recorder_first(system: Any, index: int, marks: Any) -> Iterator[None]:
    """Around starting node `index` again: the services' links hold their new connections to it until the
    recorder is back on it (its connections marked before the node went down reconnected and their
    subscriptions are in place), at most :data:`RECORDER_BACK` seconds. A service reconnecting first would
    publish what the recorder's core subscription, not yet back, never sees (a work queue's messages, core
    NATS), and the run could not pass. Only with the embedded fault proxy (a Toxiproxy elsewhere is not
    this process's to hold)."""
    if not marks or system.proxy_server is None:
        yield
        return
    from sagaproof.chaos.toxiproxy import hold_dials, release_dials

    upstream = f"127.0.0.1:{system.nats.nodes[index].client_port}"
    hold_dials(upstream)
    try:
        yield
        # not back in time: the services go ahead, and what the recorder then misses fails "recorder
        # completeness" with its count (the run cannot pass on partial data)
        system.loop.run(_back_on(marks, RECORDER_BACK), timeout=RECORDER_BACK + 5)
    finally:
        release_dials(upstream)


class NatsControl:
    """ProcessControl for the broker: stop/kill and restart a node with its JetStream data kept (the recorder
    back on it before the services, :func:`recorder_first`)."""

    def __init__(self, system: Any):
        self.system = system
        self._next = itertools.count()
        self._down: int | None = None
        self._marks: Any = None

    def _node(self) -> Any:
        if self.system.nats is None:
            raise ConfigError("broker faults need embedded NATS; remove nats_restart from the faults or nats.url.")
        nodes = self.system.nats.nodes
        return nodes[next(self._next) % len(nodes)]

    def _emit(self, node: Any, how: str) -> None:
        self.system.bus.emit(ProcessChanged(f"nats-{node.index}", how, node.process.pid, node.process.returncode))

    def kill(self) -> None:
        node = self._node()
        self._down = node.index
        self._marks = recorder_marks(self.system, node.index)
        node.process.kill()
        self._emit(node, "kill")

    def stop(self) -> None:
        node = self._node()
        self._down = node.index
        self._marks = recorder_marks(self.system, node.index)
        node.process.stop()
        self._emit(node, "stop")

    def restart(self) -> None:
        if self._down is None:
            return
        node = self.system.nats.nodes[self._down]
        with recorder_first(self.system, node.index, self._marks):
            if not node.process.running:
                node.process.start()
            self.system.nats.wait_healthy(node, 30)
        self._emit(node, "restart")
        self._down = None
        self._marks = None

    def pause(self) -> None:
        node = self._node()
        node.process.pause()
        self._down = node.index
        self._emit(node, "pause")

    def resume(self) -> None:
        if self._down is not None:
            node = self.system.nats.nodes[self._down]
            node.process.resume()
            self._emit(node, "resume")


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


def _as_fault_error(step: Callable[[], None]) -> Callable[[], None]:
    """A plugin's inject or heal step, its errors raised as :class:`FaultError` (with their cause)."""

    def run() -> None:
        try:
            step()
        except FaultError:
            raise
        except Exception as exc:
            raise FaultError(f"{type(exc).__name__}: {exc}") from exc

    return run


class ChaosHandle:
    """``system.chaos``: fault context managers by service name, each recorded and always healed.

    Every fault is an event on the system's bus (:class:`FaultInjected`, :class:`FaultHealed`, and
    :class:`FaultFailed` with a :class:`FaultError` raised to the caller when the proxy or a process refuses),
    so the history has it whoever records. ``clock`` gives the history time (set by the session).
    """

    def __init__(self, system: Any):
        import time

        self.system = system
        self._ids = itertools.count(1)
        self.log: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._t0 = time.monotonic()
        self.clock: Any = lambda: round(time.monotonic() - self._t0, 6)

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

    def _new(self, kind: str, target: str, params: dict[str, Any]) -> dict[str, Any]:
        t = self.clock()
        return {"id": f"t{next(self._ids)}", "kind": kind, "target": target, "start": t, "duration": None,
                "params": params, "started_at": t, "late_by": 0.0, "source": "test"}

    def _start(self, fault: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self.log.append(fault)
        self.system.bus.emit(FaultInjected(dict(fault)))
        return fault

    def _end(self, fault: dict[str, Any]) -> None:
        t = self.clock()
        fault["duration"] = round(t - fault["start"], 6)
        fault["ended_at"] = t
        self.system.bus.emit(FaultHealed(dict(fault)))

    def _refused(self, fault: dict[str, Any], exc: BaseException, stage: str = "inject") -> FaultError:
        err = FaultError(f"fault {fault['id']} {fault['kind']} on {fault['target']} could not be "
                         f"{'injected' if stage == 'inject' else 'healed'}: {exc}", fault=fault)
        self.system.bus.emit(FaultFailed(dict(fault), str(exc), stage))
        return err

    @contextmanager
    def _carried(self, fault: dict[str, Any], inject: Callable[[], Any], heal: Callable[[], Any]) -> Iterator[None]:
        """Carry out `fault` around the block: inject it, mark it started, and heal and mark it ended however
        the block ends. An injection or a healing the proxy refuses is a fault not carried out
        (:class:`FaultFailed`), raised as a :class:`FaultError`."""
        try:
            with boundary("fault"):
                inject()
        except (FaultError, OSError) as exc:
            raise self._refused(fault, exc) from exc
        self._start(fault)
        try:
            yield
        finally:
            try:
                with boundary("fault"):
                    heal()
            except (FaultError, OSError) as exc:
                self._end(fault)
                raise self._refused(fault, exc, "heal") from exc
            self._end(fault)

    @contextmanager
    def _network(self, kind: str, service: str, params: dict[str, Any], make: Any) -> Iterator[None]:
        proxy = self._proxy(service)
        fault = self._new(kind, service, params)
        toxics: list[Any] = []  # the context manager of the toxics, once made

        def inject() -> None:
            toxics.append(make(self._faults(), proxy))
            toxics[0].__enter__()

        with self._carried(fault, inject, lambda: toxics[0].__exit__(None, None, None)):
            yield

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

    @contextmanager
    def fault(self, kind: str, service: str, **params: Any) -> Iterator[None]:
        """A plugin's fault kind (``sagaproof.register_fault_kind``) on the service for the block: recorded and
        healed like the built-in ones; a kind that cannot be injected or healed raises :class:`FaultError`."""
        from sagaproof.faultkinds import KINDS, CustomFault, custom_kinds

        found = KINDS.get(kind)
        if found is None or found.action is None:
            raise ConfigError(f"there is no plugin fault kind named '{kind}' (the plugins' kinds: "
                              f"{', '.join(custom_kinds()) or 'none loaded'}); load its plugin ([plugins] in the "
                              f"system file, or --sagaproof-plugin) or use the method of a built-in kind.")
        self._proxy(service)
        fault = self._new(kind, service, dict(params))
        action = found.action
        entered: list[AbstractContextManager[object]] = []

        def inject() -> None:
            cm = action(CustomFault(fault["id"], kind, service, 0.0, dict(params)))
            cm.__enter__()
            entered.append(cm)

        def heal() -> None:
            entered[0].__exit__(None, None, None)

        with self._carried(fault, _as_fault_error(inject), _as_fault_error(heal)):
            yield

    def _process(self, fault: dict[str, Any], action: Any) -> None:
        try:
            action()
        except Exception as exc:  # noqa: BLE001 - a process that refuses is a fault not carried out
            raise self._refused(fault, exc) from exc

    def kill(self, service: str, restart_after: float | None = 1.0) -> None:
        """SIGKILL the service; restart it after `restart_after` seconds (None: leave it down until the test
        ends, when the pytest plugin starts it again)."""
        import time

        self._proxy(service)
        fault = self._new("kill", service, {"restart_after": restart_after})
        self._process(fault, self.system.services[service].kill)
        self._start(fault)
        if restart_after is None:
            return
        try:
            time.sleep(restart_after)
        finally:
            try:
                self.system.services[service].restart()
            finally:
                self._end(fault)

    @contextmanager
    def paused(self, service: str) -> Iterator[None]:
        """SIGSTOP the service for the block."""
        self._proxy(service)
        fault = self._new("pause", service, {})
        self._process(fault, self.system.services[service].pause)
        self._start(fault)
        try:
            yield
        finally:
            try:
                self.system.services[service].resume()
            finally:
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
        fault = self._new("nats_isolate", f"nats-{node}", {"routes": names})
        proxies = self.system.proxies
        with self._carried(fault, lambda: [proxies.disable(name) for name in names],
                           lambda: [proxies.enable(name) for name in names]):
            yield

    def restart_nats(self, node: int = 0) -> None:
        """Kill a NATS node and bring it back with its JetStream data."""
        fault = self._new("nats_restart", f"nats-{node}", {})
        self._start(fault)
        try:
            self.system.restart_nats(node)
        finally:
            self._end(fault)

    def heal(self) -> None:
        """Remove every toxic and enable every proxy."""
        if self.system.proxies is not None:
            with boundary("fault"):
                self.system.proxies.reset()
