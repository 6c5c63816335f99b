"""The workload: start N sagas at a rate, over HTTP to a service or by publishing an event on NATS.

Bodies come from the system file's ``workload.body`` callable ``(index, rng) -> dict``, with ``rng`` a
``random.Random`` seeded from the run's seed, so the same seed starts the same sagas. A start that fails
(the entry service is down, NATS is cut) is retried with backoff for a bounded time; what never got in
is counted, not hidden.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sagaproof.harness.config import SystemSpec, WorkloadSpec, load_callable
from sagaproof.harness.events import EventBus, SagaStarted


@dataclass
class WorkloadResult:
    """What the workload did."""

    requested: int = 0
    started: int = 0
    failed: int = 0
    retries: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)


def body_factory(system: SystemSpec) -> Callable[[int, random.Random], dict[str, Any]]:
    """The workload's body callable, or a default that sends {"index": i}."""
    if system.workload.body:
        return load_callable(system, system.workload.body, "workload.body")
    return lambda i, rng: {"index": i, "id": str(uuid.UUID(int=rng.getrandbits(128)))}


class Workload:
    """Drives saga starts; call :meth:`run` from a thread (it blocks until done or stopped)."""

    def __init__(self, spec: WorkloadSpec, send: Callable[[dict[str, Any]], None],
                 body: Callable[[int, random.Random], dict[str, Any]], *, seed: int, bus: EventBus | None = None,
                 count: int | None = None, duration: float | None = None, retry_for: float = 15.0):
        self.spec = spec
        self.send = send
        self.body = body
        self.seed = seed
        self.bus = bus or EventBus()
        self.count = spec.sagas if count is None else count
        self.duration = duration
        self.retry_for = retry_for
        self.result = WorkloadResult()
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def stop(self) -> None:
        self._stop.set()

    def _one(self, index: int, body: dict[str, Any]) -> None:
        deadline = time.monotonic() + self.retry_for
        delay = 0.05
        while True:
            try:
                self.send(body)
                with self._lock:
                    self.result.started += 1
                self.bus.emit(SagaStarted(index, True))
                return
            except Exception as exc:  # noqa: BLE001 - the entry point may be down under faults
                if time.monotonic() + delay > deadline or self._stop.is_set():
                    with self._lock:
                        self.result.failed += 1
                        if len(self.result.errors) < 20:
                            self.result.errors.append(f"saga {index}: {exc}")
                    self.bus.emit(SagaStarted(index, False, str(exc)))
                    return
                with self._lock:
                    self.result.retries += 1
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    def run(self) -> WorkloadResult:
        """Start sagas at `rate` per second until `count` are started (or `duration` passes)."""
        rng = random.Random(self.seed)
        t0 = time.monotonic()
        interval = 1.0 / self.spec.rate
        limit = self.count if self.duration is None else 10**9
        # bodies are drawn up front in order, so the same seed gives the same sagas regardless of timing
        with ThreadPoolExecutor(max_workers=self.spec.concurrency) as pool:
            i = 0
            while i < limit and not self._stop.is_set():
                if self.duration is not None and time.monotonic() - t0 >= self.duration:
                    break
                target = t0 + i * interval
                now = time.monotonic()
                if target > now:
                    if self._stop.wait(target - now):
                        break
                body = self.body(i, rng)
                self.result.requested += 1
                pool.submit(self._one, i, body)
                i += 1
        self.result.seconds = time.monotonic() - t0
        return self.result


def http_sender(system: Any, spec: WorkloadSpec) -> Callable[[dict[str, Any]], None]:
    """Send each body to the entry service over HTTP; a non-2xx answer is an error."""
    svc = system.services[spec.service]

    def send(body: dict[str, Any]) -> None:
        resp = svc.http.request(spec.method, spec.path, json_body=body, timeout=10)
        if not 200 <= resp.status < 300:
            raise RuntimeError(f"{spec.method} {spec.path} answered {resp.status}: {resp.text[:200]}")

    return send


def nats_sender(system: Any, spec: WorkloadSpec) -> Callable[[dict[str, Any]], None]:
    """Publish each body on the workload subject (JetStream publish when a stream captures it)."""
    from sagaproof.subjects import matches as subject_matches

    captured = any(subject_matches(p, spec.subject or "") for s in system.spec.nats.streams for p in s.subjects)

    async def publish(body: dict[str, Any]) -> None:
        import nats

        nc = getattr(system, "_workload_nc", None)
        if nc is None or nc.is_closed:
            nc = await nats.connect(servers=system.nats_urls, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
            system._workload_nc = nc
        data = json.dumps(body).encode()
        if captured:
            await nc.jetstream().publish(spec.subject, data, timeout=5,
                                         headers={"Nats-Msg-Id": str(body.get("event_id") or uuid.uuid4())})
        else:
            await nc.publish(spec.subject, data)
            await nc.flush(timeout=5)

    def send(body: dict[str, Any]) -> None:
        system.loop.run(publish(body), timeout=10)

    return send
