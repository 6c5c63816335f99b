"""The nemesis: seeded fault schedules, their execution in real time, and shrinking.

`generate_schedule(seed, menu, intensity, window, targets)` is a pure function: the same
inputs give the same `Schedule` (a list of `Fault`s, never two at once on one target).
`NemesisRunner` executes a schedule against a `FaultProxyClient` (network and message faults,
by proxy name = target) and a `dict[str, ProcessControl]` (kill, pause, and nats_restart on the
process named "nats"), reports each fault's start and end through `on_event`, and always heals.
It runs in a thread of its own (`start()` / `cancel()` / `join()`) or in the caller's thread
(`run()`), because the harness is synchronous at the top.
`ddmin` is Zeller's delta debugging, to shrink a failing schedule to the faults that matter.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from typing import Any

from sagaproof.chaos.client import FaultProxyClient
from sagaproof.chaos.errors import ChaosError
from sagaproof.chaos.faults import ProcessControl
from sagaproof.chaos.shrinking import ddmin

from sagaproof.faultkinds import (
    FAULT_KINDS,
    KINDS,
    NETWORK_KINDS,
    PROCESS_KINDS,
    CustomFault,
    fault_kind_names,
)

__all__ = [
    "BROKER_TARGET",
    "FAULT_KINDS",
    "NETWORK_KINDS",
    "PROCESS_KINDS",
    "Fault",
    "NemesisRunner",
    "Schedule",
    "ddmin",
    "generate_schedule",
    "validate_menu",
]

BROKER_TARGET = "nats"


@dataclass(frozen=True)
class Fault:
    """One fault: `kind` on `target` from `start` for `duration` seconds (relative to the run)."""

    id: str
    kind: str
    target: str
    start: float
    duration: float
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def end(self) -> float:
        return self.start + self.duration

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Fault:
        try:
            return cls(
                id=str(data["id"]),
                kind=str(data["kind"]),
                target=str(data["target"]),
                start=float(data["start"]),
                duration=float(data["duration"]),
                params=dict(data.get("params") or {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ChaosError(
                f"A fault record is malformed ({exc!r} in {data!r}); it needs id, kind, target, start, duration."
            ) from exc


@dataclass(frozen=True)
class Schedule:
    """Faults ordered by start time, with the inputs that generated them."""

    seed: int
    window: float
    faults: tuple[Fault, ...]
    menu: tuple[str, ...] = ()
    intensity: float = 0.0

    def __iter__(self) -> Any:
        return iter(self.faults)

    def __len__(self) -> int:
        return len(self.faults)

    def ids(self) -> list[str]:
        return [f.id for f in self.faults]

    def without(self, ids: Iterable[str]) -> Schedule:
        """The same schedule minus the faults with these ids (for shrinking)."""
        drop = set(ids)
        return Schedule(
            self.seed,
            self.window,
            tuple(f for f in self.faults if f.id not in drop),
            self.menu,
            self.intensity,
        )

    def only(self, ids: Iterable[str]) -> Schedule:
        """The same schedule with only the faults with these ids."""
        keep = set(ids)
        return Schedule(
            self.seed, self.window, tuple(f for f in self.faults if f.id in keep), self.menu, self.intensity
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "window": self.window,
            "menu": list(self.menu),
            "intensity": self.intensity,
            "faults": [f.to_dict() for f in self.faults],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Schedule:
        faults = tuple(Fault.from_dict(f) for f in data.get("faults", []))
        return cls(
            int(data.get("seed", 0)),
            float(data.get("window", 0.0)),
            faults,
            tuple(data.get("menu", ())),
            float(data.get("intensity", 0.0)),
        )


def validate_menu(menu: Sequence[str]) -> tuple[str, ...]:
    """Check fault names; raise ChaosError naming the unknown ones and the valid names."""
    if isinstance(menu, str):
        menu = [m.strip() for m in menu.split(",") if m.strip()]
    known = fault_kind_names()
    unknown = [m for m in menu if m not in known]
    if unknown:
        raise ChaosError(
            f"Unknown fault name(s) {', '.join(map(repr, unknown))} in the chaos menu; valid names are: {', '.join(known)}."
        )
    return tuple(dict.fromkeys(menu))


def _params(kind: str, rng: random.Random, duration: float) -> dict[str, Any]:
    if kind == "latency":
        return {"ms": rng.choice([50, 100, 200, 500]), "jitter": 0}
    if kind == "jitter":
        return {"ms": rng.choice([50, 100, 200]), "jitter": rng.choice([50, 100, 200])}
    if kind == "partition":
        return {"mode": rng.choice(["disable", "timeout"])}
    if kind == "cut":
        return {"after_ms": rng.choice([0, 50, 200])}
    if kind == "throttle":
        return {"kbps": rng.choice([1, 5, 20, 100])}
    if kind == "slice":
        return {
            "average_size": rng.choice([8, 32, 128]),
            "size_variation": rng.choice([0, 4, 16]),
            "delay_us": rng.choice([0, 100, 1000]),
        }
    if kind in ("drop", "duplicate"):
        # Downstream (deliveries to the service) is what tests a consumer's idempotency; upstream duplicates
        # mostly test the broker's de-duplication, so they are drawn less often.
        return {
            "subject": ">",
            "probability": rng.choice([0.1, 0.25, 0.5, 1.0]),
            "direction": rng.choice(["upstream", "downstream", "downstream"]),
        }
    if kind == "delay":
        return {
            "subject": ">",
            "probability": rng.choice([0.25, 0.5, 1.0]),
            "delay_ms": rng.choice([100, 300, 1000]),
            "direction": "downstream",
        }
    if kind == "reorder":
        return {"subject": ">", "probability": rng.choice([0.25, 0.5, 1.0]), "direction": "downstream"}
    if kind not in PROCESS_KINDS:  # a plugin's kind: its action is told the fault's length
        return {}
    # process faults: the duration is the downtime
    return {"downtime": round(duration, 3)}


def _slots(rng: random.Random, intensity: float, window: float) -> list[tuple[float, float]]:
    """(start, duration) of the faults of one target: about `intensity` of the window covered, no overlap."""
    out: list[tuple[float, float]] = []
    if intensity <= 0:
        return out
    # Many short faults rather than a few long ones: each target meets more of the menu in a short run.
    min_d = max(0.15, 0.03 * window)
    max_d = min(30.0, max(min_d, 0.12 * window))

    def gap(duration: float) -> float:
        # Mean gap makes the covered fraction of the window about `intensity`.
        return duration * (1.0 - intensity) / intensity * rng.uniform(0.5, 1.5)

    t = rng.uniform(0.0, gap(max_d) if intensity < 1 else 0.0)
    while t < window - 0.05:
        duration = min(rng.uniform(min_d, max_d), window - t)
        out.append((round(t, 3), round(duration, 3)))
        t += duration + max(0.05, gap(duration))
    return out


def _crash_loop(rng: random.Random, start: float, duration: float, target: str
                ) -> list[tuple[float, float, str, str, dict[str, Any]]]:
    """A kill slot becomes a crash loop: kill -9, down briefly, restart, and (if the slot is long enough)
    killed again while it works through the backlog that built up while it was down -- the moment a
    consumer that acks too early, or is not idempotent, loses or repeats work. Each crash is its own fault."""
    out = []
    t, end = start, start + duration
    crashes = min(3, 1 + int(duration / 0.25))
    for n in range(crashes):
        down = min(rng.uniform(0.1, 0.2), max(0.05, end - t))
        params: dict[str, Any] = {"downtime": round(down, 3), "crash": n + 1, "of": crashes}
        if n:
            # killed again this long after it came back up (ready), i.e. while it works through its backlog
            params["up_for"] = round(rng.uniform(0.02, 0.12), 3)
        out.append((round(t, 3), round(down, 3), "kill", target, params))
        # The restart itself waits for the service to be ready; the next crash follows right after, while
        # it works through its first batch of backlog.
        t += down + rng.uniform(0.05, 0.1)
        if t >= end - 0.05:
            break
    return out


def _deal(rng: random.Random, kinds: Sequence[str], slots_per_target: list[int]) -> list[list[str]]:
    """Kinds for each target's slots, dealt Latin-square style from one shuffled order of the menu.

    Target i reads the shuffled menu cyclically from offset i * stride (stride = menu size / targets, rounded
    up), so (a) one target never meets the same fault twice before it has met every other one, and (b) over
    all targets the whole menu is used as soon as there are enough slots. A uniform draw would often leave
    out, by chance, the one fault that exposes a bug, or hit one service with the same fault again and again.
    """
    order = list(kinds)
    rng.shuffle(order)
    n = len(order)
    stride = max(1, -(-n // max(1, len(slots_per_target))))
    return [[order[(i * stride + j) % n] for j in range(count)] for i, count in enumerate(slots_per_target)]


def generate_schedule(
    seed: int,
    menu: list[str],
    intensity: float,
    window: float,
    targets: list[str],
    *,
    broker_faults: bool = False,
) -> Schedule:
    """A deterministic fault schedule: same inputs, same schedule.

    Args:
        seed: the run's seed.
        menu: fault kinds to draw from (see `FAULT_KINDS`).
        intensity: 0..1, roughly the fraction of the window each target spends under a fault.
        window: length of the workload window in seconds.
        targets: service names (each has a proxy of that name and a process of that name).
        broker_faults: allow `nats_restart` (target "nats"); otherwise it is left out of the menu.

    Raises:
        ChaosError: an unknown fault name, an intensity outside 0..1 or a window <= 0.
    """
    kinds = validate_menu(menu)
    if isinstance(intensity, bool) or not isinstance(intensity, (int, float)) or not 0 <= intensity <= 1:
        raise ChaosError(f"Chaos intensity must be a number between 0 and 1, got {intensity!r}.")
    if isinstance(window, bool) or not isinstance(window, (int, float)) or window <= 0:
        raise ChaosError(f"The fault window must be a positive number of seconds, got {window!r}.")
    service_kinds = [k for k in kinds if k != "nats_restart"]
    events: list[tuple[float, float, str, str, dict[str, Any]]] = []
    per_target = [_slots(random.Random(f"{seed}:{t}"), intensity, float(window)) if service_kinds else []
                  for t in dict.fromkeys(targets)]
    dealt = _deal(random.Random(f"{seed}:deal"), service_kinds, [len(x) for x in per_target])
    slots = [(start, d, target, kind) for target, ts, ks in zip(dict.fromkeys(targets), per_target, dealt, strict=True)
             for (start, d), kind in zip(ts, ks, strict=True)]
    slots.sort(key=lambda s: (s[0], s[2]))
    for i, (start, duration, target, kind) in enumerate(slots):
        rng = random.Random(f"{seed}:params:{i}")
        if kind == "kill":
            events += _crash_loop(rng, start, duration, target)
        else:
            events.append((start, duration, kind, target, _params(kind, rng, duration)))
    if broker_faults and "nats_restart" in kinds:
        rng = random.Random(f"{seed}:{BROKER_TARGET}")
        for start, duration in _slots(rng, intensity * 0.5, float(window)):
            events.append((start, duration, "nats_restart", BROKER_TARGET, _params("nats_restart", rng, duration)))
    events.sort(key=lambda e: (e[0], e[3]))
    faults = tuple(
        Fault(f"f{i:03d}", kind, target, start, duration, params)
        for i, (start, duration, kind, target, params) in enumerate(events, 1)
    )
    return Schedule(int(seed), float(window), faults, kinds, float(intensity))


EventCallback = Callable[[str, Fault, float], None]


class NemesisRunner:
    """Executes a schedule in real time and always heals.

    Args:
        client: client of the Toxiproxy server that owns one proxy per target.
        processes: ProcessControl per target (and "nats" for nats_restart).
        on_event: called as `on_event("fault_start"|"fault_end", fault, t)`, t in seconds since the
            run started (from the runner's thread).
        on_failure: called as `on_failure(fault, stage, error)` when a fault could not be injected
            (`stage` "inject": it never became active, and no fault_start follows) or healed ("heal").

    Use `start(schedule)` to run in a background thread, `cancel()` to stop early (active faults
    are healed), `join()` to wait; or `run(schedule)` to run in the calling thread.
    """

    def __init__(
        self,
        client: FaultProxyClient | None,
        processes: dict[str, ProcessControl] | None = None,
        on_event: EventCallback | None = None,
        on_failure: Callable[[Fault, str, str], None] | None = None,
    ) -> None:
        from sagaproof.chaos.faults import Faults

        self.on_failure = on_failure
        self.client = client
        self.faults = Faults(client, prefix="nemesis") if client is not None else None
        self.processes = dict(processes or {})
        self.on_event = on_event
        self.errors: list[str] = []
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0
        self._paused: set[str] = set()
        self._down: set[str] = set()
        self._ready_at: dict[str, float] = {}
        # target -> lock: process faults on one target take turns (share the dict with another fault source)
        self.locks: dict[str, threading.Lock] = {}
        self.waited: dict[str, float] = {}  # fault id -> seconds it waited for its target's previous fault
        # fault id -> schedule time at which injecting it began; injecting can itself take a while (an attached
        # service's kill command, a remote Toxiproxy), which delays the fault but is not the runner falling behind
        self.dispatched: dict[str, float] = {}

    # ---- control -------------------------------------------------------------------------------
    def start(self, schedule: Schedule) -> None:
        if self._thread is not None:
            raise ChaosError("This NemesisRunner was already started; create a new one for another schedule.")
        for fault in schedule:
            self._check(fault)  # fail in the caller's thread, not silently in the runner's
        self._thread = threading.Thread(
            target=self.run, args=(schedule,), name="sagaproof-nemesis", daemon=True
        )
        self._thread.start()

    def cancel(self) -> None:
        self._cancel.set()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def is_alive(self) -> bool:
        """True while the schedule's thread (started by `start`) is still running."""
        return self._thread is not None and self._thread.is_alive()

    def run(self, schedule: Schedule) -> None:
        """Execute `schedule` now; returns when it ends or is cancelled, with everything healed.

        Each fault runs in a thread of its own from its start time, for its full duration from the moment it
        became active, so a slow step (a restart that waits for readiness) never delays the faults of other
        targets. Process faults on one target take turns: one waits until the previous one on that target
        has been healed (its restart done); the seconds it waited are in `waited[fault.id]`.
        """
        for fault in schedule:
            self._check(fault)
        self._t0 = time.monotonic()
        locks = self.locks
        workers: list[threading.Thread] = []
        try:
            for fault in sorted(schedule, key=lambda f: (f.start, f.id)):
                if self._cancel.wait(max(0.0, fault.start - (time.monotonic() - self._t0))):
                    break
                lock = None
                if fault.kind in PROCESS_KINDS:
                    lock = locks.setdefault(BROKER_TARGET if fault.kind == "nats_restart" else fault.target,
                                            threading.Lock())
                worker = threading.Thread(target=self._run_fault, args=(fault, lock), daemon=True,
                                          name=f"sagaproof-nemesis-{fault.id}")
                worker.start()
                workers = [w for w in workers if w.is_alive()] + [worker]
        finally:
            for worker in workers:
                worker.join()

    def _run_fault(self, fault: Fault, lock: threading.Lock | None) -> None:
        with lock if lock is not None else contextlib.nullcontext():
            if self._cancel.is_set():
                return
            self.waited[fault.id] = round(max(0.0, time.monotonic() - self._t0 - fault.start), 6)
            errors_before = len(self.errors)
            self.dispatched[fault.id] = round(time.monotonic() - self._t0, 6)
            cm = self._begin(fault)
            if cm is None:
                self._failed(fault, "inject", errors_before)
                return
            began = time.monotonic()
            self._emit("fault_start", fault)
            try:
                self._cancel.wait(max(0.0, began + fault.duration - time.monotonic()))
            finally:
                self._finish(fault, cm)

    def heal_all(self) -> None:
        """Remove every toxic, enable every proxy, resume paused and restart stopped processes."""
        if self.client is not None:
            try:
                self.client.reset()
            except ChaosError as exc:
                self.errors.append(str(exc))
        for name in list(self._paused):
            self._proc_call(name, "resume")
            self._paused.discard(name)
        for name in list(self._down):
            self._proc_call(name, "restart")
            self._down.discard(name)

    # ---- internals -----------------------------------------------------------------------------
    def _check(self, fault: Fault) -> None:
        if fault.kind not in KINDS:
            validate_menu([fault.kind])
        if fault.kind in NETWORK_KINDS and self.faults is None:
            raise ChaosError(
                f"Fault {fault.id} ({fault.kind}) needs a Toxiproxy client, but the runner has none."
            )
        if fault.kind in PROCESS_KINDS:
            target = BROKER_TARGET if fault.kind == "nats_restart" else fault.target
            if target not in self.processes:
                raise ChaosError(
                    f"Fault {fault.id} ({fault.kind}) targets process {target!r}, which the runner does not control; known: {', '.join(self.processes) or 'none'}."
                )

    def _emit(self, kind: str, fault: Fault) -> None:
        if self.on_event is not None:
            try:
                self.on_event(kind, fault, round(time.monotonic() - self._t0, 6))
            except Exception as exc:  # a reporting bug must not leave a fault active
                self.errors.append(f"on_event failed: {exc!r}")

    def _proc_call(self, name: str, method: str) -> bool:
        try:
            getattr(self.processes[name], method)()
            return True
        except Exception as exc:
            self.errors.append(f"{method} of {name!r} failed: {exc!r}")
            return False

    def _begin(self, fault: Fault) -> Any:
        p = fault.params
        try:
            if fault.kind == "kill":
                ready = self._ready_at.get(fault.target)
                if ready is not None and "up_for" in p:  # a crash loop: let it start on its backlog first
                    self._cancel.wait(max(0.0, ready + float(p["up_for"]) - time.monotonic()))
                if not self._proc_call(fault.target, "kill"):
                    return None
                self._down.add(fault.target)
                return "process"
            if fault.kind == "nats_restart":
                if not self._proc_call(BROKER_TARGET, "stop"):
                    return None
                self._down.add(BROKER_TARGET)
                return "process"
            if fault.kind == "pause":
                if not self._proc_call(fault.target, "pause"):
                    return None
                self._paused.add(fault.target)
                return "process"
            custom = KINDS[fault.kind].action if fault.kind in KINDS else None
            if custom is not None:
                return self._begin_custom(fault, custom)
            assert self.faults is not None
            f, t = self.faults, fault.target
            cms: dict[str, Callable[[], AbstractContextManager[None]]] = {
                "latency": lambda: f.latency(t, int(p.get("ms", 100)), int(p.get("jitter", 0))),
                "jitter": lambda: f.latency(t, int(p.get("ms", 100)), int(p.get("jitter", 50))),
                "partition": lambda: f.partition(t, mode=p.get("mode", "disable")),
                "cut": lambda: f.cut(t, after_ms=int(p.get("after_ms", 0))),
                "throttle": lambda: f.throttle(t, int(p.get("kbps", 10))),
                "slice": lambda: f.slice(
                    t,
                    int(p.get("average_size", 32)),
                    int(p.get("size_variation", 0)),
                    int(p.get("delay_us", 0)),
                ),
                "drop": lambda: f.drop(
                    t,
                    p.get("subject", ">"),
                    float(p.get("probability", 1.0)),
                    direction=p.get("direction", "upstream"),
                ),
                "duplicate": lambda: f.duplicate(
                    t,
                    p.get("subject", ">"),
                    float(p.get("probability", 1.0)),
                    direction=p.get("direction", "downstream"),
                ),
                "delay": lambda: f.delay_messages(
                    t,
                    p.get("subject", ">"),
                    float(p.get("probability", 1.0)),
                    int(p.get("delay_ms", 300)),
                    direction=p.get("direction", "downstream"),
                ),
                "reorder": lambda: f.reorder(
                    t,
                    p.get("subject", ">"),
                    float(p.get("probability", 1.0)),
                    direction=p.get("direction", "downstream"),
                ),
            }
            cm = cms[fault.kind]()
            cm.__enter__()
            return cm
        except ChaosError as exc:
            self.errors.append(f"{fault.id} {fault.kind} on {fault.target}: {exc}")
            return None

    def _begin_custom(self, fault: Fault, action: Any) -> Any:
        """A plugin's fault: its context manager, entered (None when injecting it failed)."""
        try:
            cm = action(CustomFault(fault.id, fault.kind, fault.target, fault.duration, dict(fault.params)))
            cm.__enter__()
            return cm
        except Exception as exc:  # a plugin's error is the fault's failure, never the run's crash
            self.errors.append(f"{fault.id} {fault.kind} on {fault.target}: {exc}")
            return None

    def _failed(self, fault: Fault, stage: str, errors_before: int) -> None:
        if self.on_failure is None:
            return
        error = self.errors[-1] if len(self.errors) > errors_before else "it was not carried out"
        try:
            self.on_failure(fault, stage, error)
        except Exception as exc:  # a reporting bug must not stop the schedule
            self.errors.append(f"on_failure failed: {exc!r}")

    def _finish(self, fault: Fault, cm: Any) -> None:
        errors_before = len(self.errors)
        try:
            if cm == "process":
                if fault.kind == "pause":
                    if self._proc_call(fault.target, "resume"):
                        self._paused.discard(fault.target)
                else:
                    name = BROKER_TARGET if fault.kind == "nats_restart" else fault.target
                    if self._proc_call(name, "restart"):
                        self._down.discard(name)
                        self._ready_at[name] = time.monotonic()
            else:
                cm.__exit__(None, None, None)
        except Exception as exc:  # a proxy's error, or a plugin's fault that could not be healed
            self.errors.append(f"healing {fault.id} {fault.kind} on {fault.target}: {exc}")
        finally:
            if len(self.errors) > errors_before:
                self._failed(fault, "heal", errors_before)
            self._emit("fault_end", fault)
