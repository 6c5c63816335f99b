"""The targeted phase of a run's nemesis: faults aimed at the moments where consumers break, keyed by the message.

A random fault catches a consumer's bug only if it happens to land in the few milliseconds where the bug shows.
The targeted phase aims instead. From the JetStream consumers each service created (read on its link before the
workload starts), :func:`plan_windows` plans, per consumer and input subject, the windows of
:mod:`chaos.toxiproxy._windows`, each keyed by a message ("the 2nd first delivery of ``orders.created`` to
payment"), never by the clock, so a replay with the same plan aims at the same message:

``redeliver``          its +ACK dropped on the link after the work was done: the server redelivers it
``crash_after_ack``    kill -9 once its +ACK passed the link and before anything else the service sends does
``crash_before_ack``   kill -9 with the +ACK (and what follows) withheld, after the outcome was published
``duplicate``          the delivery passed twice (same ack subject, same body)
``reconnect``          the link cut for :data:`OUTAGE` seconds (longer than a client with 2 s pings needs to
                       notice), so the service must reconnect and consume again
``broker_restart``     once per run, the broker (sagaproof's single embedded NATS node) stopped and started again
                       with its JetStream data; every service must connect again within :data:`RECONNECT_GRACE`
``late``               for a saga step with a ``timeout``: one of the step's outcomes, as its service publishes it,
                       held on the link beyond the time-out (:func:`late_hold`), so the system's time-out path runs
                       and the answer still arrives, late

The crash and reconnect windows are budgeted: once per service and run (each on the n-th delivery to the
service, whatever its subject); the others once per consumer and subject. :class:`TargetedPhase` carries the
plan out, records each window's fault as ``fault_start``/``fault_end`` with ``source = "targeted"``, and
:func:`coverage` turns it into the report's matrix: consumer x input subject x window, each cell exercised
(fault id, saga key, outcome) or not and why. A window not exercised is not a pass of anything.

Process faults on a service take turns with the random phase's through shared per-service locks. A crash or
reconnect window takes its service's lock the moment its delivery passes (never waiting: the proxy's loop must
not block), and holds it until its fault is over, so no random pause or kill can land between the ack and the
kill. A window whose service is held by another fault when its delivery comes, or whose ack does not come
within :data:`ACK_WAIT` seconds (the service was cut off or killed first), is put back to take the next
delivery of its subject; the plan recorded in the report says on which delivery each window finally landed,
so a replay aims at that one. The phase stays armed until every window has been carried out or the links have
carried no delivery for a while (:meth:`TargetedPhase.finish`), not merely until the workload stops starting
sagas: the later steps of a saga arrive seconds after its start.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from sagaproof.harness.env.links import ServiceControl
from sagaproof.harness.events import EventBus, FaultFailed, FaultHealed, FaultInjected
from sagaproof.harness.session.targeted_plan import (  # re-exported: the phase's names before the split
    ACK_PASS_LIMIT,
    ACK_SETTLE,
    ACK_WAIT,
    BROKER,
    LATE,
    OUTAGE,
    PER_SERVICE,
    PHASES,
    RECONNECT_GRACE,
    WINDOWS,
    consumers_seen,
    coverage,
    plan_windows,
)

__all__ = ["OUTAGE", "PHASES", "PER_SERVICE", "WINDOWS", "TargetedPhase", "consumers_seen", "coverage", "plan_windows"]


def _key_of(payload: bytes, key_paths: list[str]) -> str | None:
    try:
        doc = json.loads(payload)
    except ValueError:
        return None
    for path in key_paths:
        cur: Any = doc
        for part in path.split("."):
            cur = cur.get(part) if isinstance(cur, dict) else None
        if isinstance(cur, str | int) and not isinstance(cur, bool):
            return str(cur)
    return None


class TargetedPhase:
    """Carries a plan of windows out on the embedded fault proxy (see the module docstring)."""

    def __init__(self, system: Any, windows: list[dict[str, Any]], clock: Callable[[], float], bus: EventBus,
                 locks: dict[str, threading.Lock], key_paths: list[str],
                 record: Callable[[dict[str, Any]], None] | None = None,
                 consumers: dict[str, list[dict[str, Any]]] | None = None,
                 activity: Callable[[], tuple[int, float]] | None = None) -> None:
        self.system = system
        self.windows = [dict(w) for w in windows]
        self.clock = clock
        self.bus = bus
        self.locks = locks
        self.key_paths = key_paths
        self.record = record
        self.consumers = dict(consumers or {})
        self.activity = activity  # () -> (sagas still open, time.monotonic() of the last message recorded)
        self.state: dict[str, dict[str, Any]] = {w["id"]: {} for w in self.windows}
        self._by_id: dict[str, dict[str, Any]] = {w["id"]: w for w in self.windows}  # looked up on the proxy's loop
        self.unavailable: str | None = None
        self._queues: dict[str, queue.Queue[tuple[str, Any, str]]] = {}  # one per service, each its own worker
        self._stop = threading.Event()
        self._busy = 0
        self._lock = threading.Lock()
        self._plans: list[str] = []
        self._plan_of: dict[str, Any] = {}  # service -> its WindowPlan (the deliveries it counted)
        self._frozen: set[str] = set()  # services SIGSTOPped for a crash-after-ack kill that has not come yet
        self._outage_on: set[str] = set()  # services whose reconnect window (cut + watch) is under way
        self._toxics: list[tuple[str, str]] = []
        self._workers: list[threading.Thread] = []
        self._held: dict[str, threading.Lock] = {}  # window id -> the service lock it holds until its fault ends
        self._timers: list[threading.Timer] = []
        self.last_delivery = time.monotonic()

    # ------------------------------------------------------------------ start
    def start(self) -> None:
        from sagaproof.chaos.errors import ChaosError
        from sagaproof.chaos.toxiproxy import Window, WindowPlan, register_plan

        if self.system.proxy_server is None or self.system.proxies is None:
            self.unavailable = "the fault proxy is not sagaproof's embedded one (chaos.toxiproxy_url), which " \
                               "cannot aim at single deliveries"
            return
        by_service: dict[str, list[dict[str, Any]]] = {}
        for w in self.windows:
            by_service.setdefault(w["service"], []).append(w)
        for service, ws in by_service.items():
            proxy = self.system.proxy_names.get(service)
            if proxy is None:
                continue
            self._queues[service] = queue.Queue()
            plan = WindowPlan([Window(w["id"], w["window"], w["subject"], int(w["nth"]),
                                      extra={"hold": float(w.get("hold") or 0.0)}) for w in ws],
                              on_fire=self._fire_cb(service))
            name = f"targeted-{id(self)}-{service}"
            register_plan(name, plan)
            self._plans.append(name)
            self._plan_of[service] = plan
            try:
                for stream in ("downstream", "upstream"):
                    toxic = self.system.proxies.add_toxic(proxy, "nats_windows", stream=stream, toxicity=1.0,
                                                          name=f"targeted_{stream}", plan=name)
                    self._toxics.append((proxy, toxic))
            except ChaosError as exc:
                for w in ws:
                    self.state[w["id"]]["reason"] = f"the fault proxy refused the window toxic ({exc})"
        for service, q in self._queues.items():  # a service's windows never wait for another service's
            worker = threading.Thread(target=self._work, args=(q,), name=f"sagaproof-targeted-{service}", daemon=True)
            worker.start()
            self._workers.append(worker)

    def _fire_cb(self, service: str) -> Callable[[Any, str], None]:
        def fire(window: Any, stage: str) -> None:  # on the proxy's loop: never block
            self.last_delivery = time.monotonic()
            if stage == "delivered" and window.kind in (*PER_SERVICE, "broker_restart") and \
                    not self._take_service(BROKER if window.kind == "broker_restart" else service, window):
                return  # put back: it takes a later delivery
            if stage == "ack" and window.kind == "crash_after_ack":
                self._freeze(service)
            with self._lock:
                self._busy += 1
            self._queues[service].put((service, window, stage))
        return fire

    def _take_service(self, target: str, window: Any) -> bool:
        """Take the lock of the window's target (its service, or the broker) without waiting; when another
        fault holds it (or the phase is stopping), put the window back to take the next delivery."""
        lock = self.locks.setdefault(target, threading.Lock())
        if not self._stop.is_set() and lock.acquire(blocking=False):
            self._held[window.id] = lock
            return True
        st = self.state[window.id]
        st["deferred"] = int(st.get("deferred", 0)) + 1
        w = self._by_id[window.id]
        self._plan_of[w["service"]].rearm(window)
        return False

    def _release(self, window_id: str) -> None:
        lock = self._held.pop(window_id, None)
        if lock is not None:
            lock.release()

    def _expect_ack(self, service: str, window: Any) -> None:
        """Put the window back (and let its service go) if its ack has not come within :data:`ACK_WAIT` s."""
        def overdue() -> None:
            elsewhere = int(window.extra.get("ack_elsewhere", 0))
            if self._plan_of[service].rearm(window):
                st = self.state[window.id]
                if elsewhere > int(st.get("ack_after_reconnect", 0)):  # acked, but on a later connection
                    st["ack_after_reconnect"] = elsewhere
                else:
                    st["ack_overdue"] = int(st.get("ack_overdue", 0)) + 1
                for key in ("delivered_at", "subject", "key", "stream_seq", "ack"):
                    st.pop(key, None)
                self._release(window.id)

        timer = threading.Timer(ACK_WAIT, overdue)
        timer.daemon = True
        self._timers.append(timer)
        timer.start()

    def _freeze(self, service: str) -> None:
        """SIGSTOP the service's process group the moment its +ACK passed the link (one system call, from the
        proxy's loop): it can commit nothing more before the kill, which follows once the +ACK has reached the
        server. A service that acknowledges before it commits loses the message exactly there."""
        import os
        import signal

        if service in self._outage_on:  # its link is cut (or being watched): a kill would wait, frozen, for it
            return
        proc = getattr(getattr(self.system.services.get(service), "process", None), "_proc", None)
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGSTOP)
                self._frozen.add(service)
            except (ProcessLookupError, PermissionError):
                pass

    def _thaw(self, service: str) -> None:
        import os
        import signal

        self._frozen.discard(service)
        proc = getattr(getattr(self.system.services.get(service), "process", None), "_proc", None)
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGCONT)
            except (ProcessLookupError, PermissionError):
                pass

    # ------------------------------------------------------------------ carrying out
    def _fault(self, w: dict[str, Any], kind: str, params: dict[str, Any]) -> dict[str, Any]:
        t = self.clock()
        return {"id": w["id"], "kind": kind, "target": w["service"], "start": t, "duration": None,
                "params": dict(params, window=w["window"], subject=w.get("landed_on") or w["subject"],
                               nth=w.get("landed_nth", w["nth"])),
                "started_at": t, "late_by": 0.0, "judge_lateness": False, "source": "targeted"}

    def _end(self, fault: dict[str, Any]) -> None:
        t = self.clock()
        fault["ended_at"] = t
        fault["duration"] = fault["actual_duration"] = round(t - fault["started_at"], 6)
        self.bus.emit(FaultHealed(dict(fault)))

    def _work(self, q: queue.Queue[tuple[str, Any, str]]) -> None:
        while not (self._stop.is_set() and q.empty()):
            try:
                service, window, stage = q.get(timeout=0.1)
            except queue.Empty:
                continue
            try:
                self._handle(service, window, stage)
            except Exception as exc:  # noqa: BLE001 - one window's trouble must not stop the others
                self.state[window.id]["reason"] = f"could not be carried out ({exc!r})"
            finally:
                with self._lock:
                    self._busy -= 1

    def _handle(self, service: str, window: Any, stage: str) -> None:
        w = self._by_id[window.id]
        st = self.state[window.id]
        if stage == "delivered":
            st["delivered_at"] = self.clock()
            st["subject"] = self._subject_of(window)
            w["landed_on"] = st["subject"]
            w["landed_nth"] = int(window.nth)  # the delivery it finally took (a replay aims at this one)
            st["key"] = _key_of(window.payload, self.key_paths)
            st["stream_seq"] = (window.stream_seq or b"").decode() or None
            st["ack"] = window.ack
            if window.kind == "duplicate":
                fault = self._fault(w, "duplicate", {"direction": "downstream"})
                self.bus.emit(FaultInjected(dict(fault)))
                self._end(fault)
                st.update(fault_id=w["id"], exercised=True)
            elif window.kind == "reconnect":
                self._spawn(self._outage, w, st)
            elif window.kind == "broker_restart":
                self._spawn(self._broker_restart, w, st)
            else:
                self._expect_ack(service, window)
            return
        if stage == "late":  # the step's outcome is held: a fault until it passes
            st["delivered_at"] = self.clock()
            st["subject"] = w["landed_on"] = self._subject_of(window)
            st["key"] = _key_of(window.payload, self.key_paths)
            fault = self._fault(w, "delay_outcome", {"direction": "upstream", "hold": w.get("hold"),
                                                     "timeout": w.get("timeout")})
            self.bus.emit(FaultInjected(dict(fault)))
            st.update(open_fault=fault, fault_id=w["id"], exercised=True)
            with self._lock:
                self._busy += 1  # until it passes (or its hold is over: a connection that ended drops what it held)
            timer = threading.Timer(float(w.get("hold") or 0.0) + 0.5, self._late_over, (w["id"],))
            timer.daemon = True
            self._timers.append(timer)
            timer.start()
            return
        if stage == "released":
            self._late_over(w["id"])
            return
        if stage == "redelivered":
            st["redelivered_at"] = self.clock()
            fault = st.pop("open_fault", None)
            if fault is not None:
                self._end(fault)
            return
        # stage == "ack": the window's moment
        st["acked_at"] = self.clock()
        if window.kind == "redeliver":
            fault = self._fault(w, "drop_ack", {"direction": "upstream"})
            self.bus.emit(FaultInjected(dict(fault)))
            st.update(open_fault=fault, fault_id=w["id"], exercised=True)
            return
        self._spawn(self._crash, w, st)

    def _late_over(self, window_id: str) -> None:
        """A late window's fault ends: its held message passed (or its hold is over)."""
        with self._lock:
            st = self.state[window_id]
            fault = st.pop("open_fault", None)
            if fault is not None:
                self._busy -= 1
        if fault is not None:
            st["released_at"] = self.clock()
            self._end(fault)

    def _spawn(self, action: Callable[[dict[str, Any], dict[str, Any]], None], w: dict[str, Any],
               st: dict[str, Any]) -> None:
        """Carry a process or link fault out in a thread of its own, so the bookkeeping of the service's other
        windows never waits for it (a kill must follow its ack at once)."""
        with self._lock:
            self._busy += 1

        def run() -> None:
            try:
                action(w, st)
            except Exception as exc:  # noqa: BLE001 - one window's trouble must not stop the others
                st["reason"] = f"could not be carried out ({exc!r})"
            finally:
                if w["service"] in self._frozen and w["window"] == "crash_after_ack":
                    self._thaw(w["service"])  # never leave a service frozen
                with self._lock:
                    self._busy -= 1

        thread = threading.Thread(target=run, name=f"sagaproof-targeted-{w['id']}", daemon=True)
        self._workers.append(thread)
        thread.start()

    @staticmethod
    def _subject_of(window: Any) -> str:
        return str(window.extra.get("subject") or window.subject or "")

    def _ack_reached_server(self, w: dict[str, Any], ack: bytes | None) -> None:
        """For a crash after the ack: wait (at most :data:`ACK_PASS_LIMIT` s) until the +ACK has been written to
        the server's side of the link (the observer reads there, after every toxic, and forgets a delivery once
        its answer went by), plus a moment for the server to read it, so the kill cannot take it along. Nothing
        else the service sends passes meanwhile: the link withholds it."""
        observer = (getattr(getattr(self.system, "broker", None), "observers", None) or {}).get(w["service"])
        limit = time.monotonic() + ACK_PASS_LIMIT
        while observer is not None and ack is not None and time.monotonic() < limit:
            if observer.unread == 0 and ack not in observer._held:
                break
            time.sleep(0.01)
        time.sleep(ACK_SETTLE)

    def _crash(self, w: dict[str, Any], st: dict[str, Any]) -> None:
        """Kill and restart the service; it holds the service's lock since the window's delivery passed."""
        svc = self.system.services[w["service"]]
        try:
            if w["window"] == "crash_after_ack":
                self._ack_reached_server(w, st.get("ack"))
            fault = self._fault(w, "kill", {"moment": w["window"]})
            control = ServiceControl(svc)
            try:
                control.kill()
            except Exception as exc:  # noqa: BLE001 - not running (another fault holds it down)
                self._thaw(w["service"])  # never leave it frozen
                self.bus.emit(FaultFailed(dict(fault), str(exc), "inject"))
                st["reason"] = f"the service could not be killed ({exc})"
                return
            self._frozen.discard(w["service"])
            self.bus.emit(FaultInjected(dict(fault)))
            st.update(fault_id=w["id"], exercised=True)
            try:
                control.restart()
            finally:
                self._end(fault)
        finally:
            self._release(w["id"])

    def _outage(self, w: dict[str, Any], st: dict[str, Any]) -> None:
        """Cut the link and watch the reconnect; it holds the service's lock since the window's delivery."""
        proxy = self.system.proxy_names.get(w["service"], w["service"])
        self._outage_on.add(w["service"])
        try:
            self._cut(w, st, proxy)
        finally:
            self._outage_on.discard(w["service"])
            self._release(w["id"])

    def _broker_restart(self, w: dict[str, Any], st: dict[str, Any]) -> None:
        """Stop the broker and start it again with its data; then every service has :data:`RECONNECT_GRACE`
        seconds to open a new connection (one that does not is recorded, like after a cut link). It holds the
        broker's lock since the window's delivery passed."""
        from sagaproof.harness.env.links import NatsControl

        try:
            nats = getattr(self.system, "nats", None)
            if nats is None or len(getattr(nats, "nodes", ())) != 1:
                st["reason"] = ("the broker is not one embedded NATS node (nats.url, or a cluster, whose nodes the "
                                "random phase's nats_restart restarts)")
                return
            observers = {name: obs for name, obs in
                         dict(getattr(getattr(self.system, "broker", None), "observers", None) or {}).items()
                         if self._running(name)}  # a service that exited on its own has nothing to reconnect
            before = {name: obs.connections for name, obs in observers.items()}
            fault = self._fault(w, "nats_restart", {"moment": "broker_restart"})
            fault["target"] = BROKER
            control = NatsControl(self.system)
            try:
                control.stop()
            except Exception as exc:  # noqa: BLE001
                self.bus.emit(FaultFailed(dict(fault), str(exc), "inject"))
                st["reason"] = f"the broker could not be stopped ({exc})"
                return
            self.bus.emit(FaultInjected(dict(fault)))
            st.update(fault_id=w["id"], exercised=True)
            try:
                control.restart()
            finally:
                self._end(fault)
            healed = time.monotonic()
            waiting = dict(observers)
            back: dict[str, float | None] = {}
            while waiting and time.monotonic() - healed < RECONNECT_GRACE:
                for name, obs in list(waiting.items()):
                    if not self._running(name):
                        del waiting[name]  # gone meanwhile (another fault, or it exited): not a reconnect to judge
                        continue
                    if obs.connections > before[name]:
                        back[name] = round(time.monotonic() - healed, 3)
                        del waiting[name]
                time.sleep(0.05)
            for name, obs in waiting.items():
                back[name] = None
                if self.record is not None:
                    self.record({"kind": "reconnect_missed", "t": self.clock(), "service": name,
                                 "subjects": sorted({s for c in self.consumers.get(name, [])
                                                     for s in (c.get("filter_subjects") or [])}),
                                 "fault_id": w["id"], "cause": "broker_restart", "cut_at": fault["started_at"],
                                 "healed_at": fault["ended_at"], "outage": fault["duration"],
                                 "grace": RECONNECT_GRACE,
                                 "last_read": round(self.clock() - (time.monotonic() - obs.last_activity), 3),
                                 "line": f"{name} did not reconnect within {RECONNECT_GRACE:g}s after the broker "
                                         f"restarted"})
            st["reconnected"] = back
        finally:
            self._release(w["id"])

    def _running(self, service: str) -> bool:
        proc = getattr(getattr(self.system.services.get(service), "process", None), "_proc", None)
        return proc is not None and proc.poll() is None

    def _cut(self, w: dict[str, Any], st: dict[str, Any], proxy: str) -> None:
        fault = self._fault(w, "partition", {"mode": "disable", "seconds": OUTAGE})
        observer = (getattr(getattr(self.system, "broker", None), "observers", None) or {}).get(w["service"])
        # connections opened so far: any opened after the cut is a reconnect (a disabled link refuses them, but
        # a random-phase partition healing meanwhile may enable the link early, and the service may come back
        # then)
        before = observer.connections if observer is not None else 0
        try:
            self.system.proxies.disable(proxy)
        except Exception as exc:  # noqa: BLE001
            self.bus.emit(FaultFailed(dict(fault), str(exc), "inject"))
            st["reason"] = f"the link could not be cut ({exc})"
            return
        self.bus.emit(FaultInjected(dict(fault)))
        st.update(fault_id=w["id"], exercised=True)
        try:
            self._stop.wait(OUTAGE)
        finally:
            try:
                self.system.proxies.enable(proxy)
            finally:
                self._end(fault)
        if observer is not None and self.record is not None:
            self._watch_reconnect(w, st, fault, observer, before)

    def _watch_reconnect(self, w: dict[str, Any], st: dict[str, Any], fault: dict[str, Any], observer: Any,
                         before: int) -> None:
        """Hold the service (its lock) until it opened a new connection, at most :data:`RECONNECT_GRACE` seconds;
        one that did not is recorded (``reconnect_missed``) for the consumption check."""
        healed = time.monotonic()
        limit = healed + RECONNECT_GRACE
        while time.monotonic() < limit:
            if observer.connections > before:
                st["reconnected_after"] = round(time.monotonic() - healed, 3)
                return
            time.sleep(0.05)
        last = observer.last_activity
        st["reconnected_after"] = None
        assert self.record is not None
        self.record({"kind": "reconnect_missed", "t": self.clock(), "service": w["service"],
                     "subjects": sorted({s for c in self.consumers.get(w["service"], [])
                                         for s in (c.get("filter_subjects") or [])}),
                     "fault_id": w["id"], "cut_at": fault["started_at"], "healed_at": fault["ended_at"],
                     "outage": OUTAGE, "grace": RECONNECT_GRACE,
                     "last_read": round(self.clock() - (time.monotonic() - last), 3),
                     "line": f"{w['service']} did not reconnect within {RECONNECT_GRACE:g}s after its link was back"})

    # ------------------------------------------------------------------ finishing
    def finish(self, quiet: float = 2.0, stall: float = 5.0, limit: float = 30.0) -> None:
        """Wait until every window has been carried out, or the system has nothing left for a window to take;
        then take the toxics off and stop.

        Nothing left: no saga open and no delivery on the links for ``quiet`` seconds, or nothing at all (no
        delivery, no message recorded) for ``stall`` seconds since the later of the last activity and this call,
        sagas open or not (a stuck system; a service down since before the workload ended has that long to
        come back); at most ``limit`` seconds. The workload's last start is not the end of the traffic: under faults a system may
        take seconds to catch up, and its later steps are what the remaining windows are aimed at."""
        from sagaproof.chaos.errors import ChaosError
        from sagaproof.chaos.toxiproxy import unregister_plan

        called = time.monotonic()
        end = called + limit
        while time.monotonic() < end:
            with self._lock:
                busy = self._busy
            pending = [w for w in self.windows if not self.state[w["id"]].get("exercised")
                       and "reason" not in self.state[w["id"]]]
            last = max([self.last_delivery, *(p.last_delivery for p in self._plan_of.values())])
            open_sagas, last_message = self.activity() if self.activity is not None else (0, last)
            idle = time.monotonic() - last
            if busy == 0 and (not pending or (idle >= quiet and open_sagas == 0)
                              or time.monotonic() - max(last, last_message, called) >= stall):
                break
            time.sleep(0.05)
        for proxy, toxic in self._toxics:
            try:
                self.system.proxies.remove_toxic(proxy, toxic)
            except ChaosError:
                pass  # healed already (a reset)
        for name in self._plans:
            unregister_plan(name)
        self._stop.set()
        for timer in self._timers:
            timer.cancel()
        for worker in self._workers:
            worker.join(60)
        for window_id in list(self._held):  # a window whose delivery came but whose fault never did
            self._release(window_id)
        for service in list(self._frozen):  # a freeze whose kill never came (the run ended first)
            self._thaw(service)
        for st in self.state.values():  # a dropped ack whose redelivery the run never saw (a held answer: flushed)
            fault = st.pop("open_fault", None)
            if fault is not None:
                self._end(fault)

    def records(self) -> list[dict[str, Any]]:
        """One record per planned window: the plan and what happened to it."""
        out = []
        for w in self.windows:
            st = {k: v for k, v in self.state[w["id"]].items() if k not in ("open_fault", "ack")}
            plan = self._plan_of.get(w["service"])
            if plan is not None:  # first deliveries (a late window: publications) of its subject while armed
                st["seen"] = int((plan.published if w["window"] == LATE else plan.counts).get(w["subject"], 0))
            out.append(dict(w, **st))
        return out
