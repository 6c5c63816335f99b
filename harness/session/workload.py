"""The workload: start N sagas at a rate, over HTTP to a service or by publishing an event on NATS.

Bodies come from the system file's ``workload.body`` callable ``(index, rng) -> dict``, with ``rng`` a
``random.Random`` seeded from the run's seed, so the same seed starts the same sagas. A start that fails
(the entry service is down, NATS is cut) is retried with backoff for a bounded time; what never got in
is counted, not hidden.

Each start request is also an *operation* of the client's view, in the manner of Jepsen and Maelstrom: when a
recorder is given, one ``{"kind": "operation"}`` record per request goes into the history with the saga it
starts, its correlation key (from the answer, else from the request body), when it was invoked and completed,
and its outcome: ``ok`` (accepted), ``fail`` (definitely not accepted: refused, or answered 4xx) or ``unknown``
(it may or may not have got in: a time-out, a dropped connection, a 5xx). The checker holds an accepted
request to have started its saga on the wire (``no_lost_request``); an unknown one owes nothing.
"""

from __future__ import annotations

import itertools
import json
import random
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sagaproof.harness.config import SagaSpec, SystemSpec, WorkloadSpec, field_at, load_callable
from sagaproof.harness.events import EventBus, SagaStarted


class RequestRejected(Exception):
    """A start request that definitely did not get in (refused, or answered 4xx): its outcome is ``fail``."""


@dataclass
class WorkloadResult:
    """What the workload did: ``started`` requests were accepted, ``failed`` were not (of which ``unknown`` may
    have got in all the same, and the rest were definitely refused)."""

    requested: int = 0
    started: int = 0
    failed: int = 0
    unknown: int = 0
    retries: int = 0
    duplicated: int = 0  # requests sent a second time after they were accepted ([workload] duplicate)
    seconds: float = 0.0
    held_back: float = 0.0  # seconds the workload waited because [workload] max_open sagas were open
    errors: list[str] = field(default_factory=list)


def _takes_headers(send: Callable[..., Any]) -> bool:
    """Whether a sender takes the request's headers as a second argument (the harness's own senders do)."""
    import inspect

    try:
        params = list(inspect.signature(send).parameters.values())
    except (TypeError, ValueError):
        return False
    return len(params) >= 2 or any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params)


def start_saga(spec: WorkloadSpec, sagas: dict[str, SagaSpec]) -> SagaSpec | None:
    """The saga a start request begins: ``workload.saga``, else the only saga, else the one started by the
    published subject."""
    if spec.saga:
        return sagas.get(spec.saga)
    if len(sagas) == 1:
        return next(iter(sagas.values()))
    return next((s for s in sagas.values() if spec.via == "publish" and s.start == spec.subject), None)


def request_key(spec: WorkloadSpec, saga: SagaSpec | None, answer: Any, body: Any) -> Any:
    """The correlation key of a start request: at ``workload.key`` (else the saga's key path, else its last
    field name) in the answer, else in the request body; None when neither names it."""
    if saga is None and not spec.key:
        return None
    paths = [spec.key] if spec.key else [saga.key, saga.key.rsplit(".", 1)[-1]]  # type: ignore[union-attr]
    for doc in (answer, body):
        for path in dict.fromkeys(paths):
            value = field_at(doc, path)
            if isinstance(value, str | int) and not isinstance(value, bool):
                return value
    return None


def body_factory(system: SystemSpec) -> Callable[[int, random.Random], dict[str, Any]]:
    """The workload's body callable, or a default that sends {"index": i}."""
    if system.workload.body:
        return load_callable(system, system.workload.body, "workload.body")
    return lambda i, rng: {"index": i, "id": str(uuid.UUID(int=rng.getrandbits(128)))}


class Workload:
    """Drives saga starts; call :meth:`run` from a thread (it blocks until done or stopped)."""

    def __init__(self, spec: WorkloadSpec, send: Callable[..., Any],
                 body: Callable[[int, random.Random], dict[str, Any]], *, seed: int, bus: EventBus | None = None,
                 count: int | None = None, duration: float | None = None, retry_for: float = 15.0,
                 recorder: Any = None, sagas: dict[str, SagaSpec] | None = None,
                 open_sagas: Callable[[], int] | None = None):
        """``send(body)`` (``send(body, headers)`` when the request has headers) makes one request and returns the answer's JSON (or None); it raises
        :class:`RequestRejected` when the request definitely did not get in, anything else when it may have.
        With a ``recorder`` (``.add(record)``, ``.now()``), each request becomes an operation record."""
        self.spec = spec
        self.recorder = recorder
        self.saga = start_saga(spec, sagas or {})
        self.send = send
        self._send_takes_headers = _takes_headers(send)
        self.body = body
        self.seed = seed
        self.bus = bus or EventBus()
        self.count = spec.sagas if count is None else count
        self.duration = duration
        self.retry_for = retry_for
        self.open_sagas = open_sagas  # sagas open now; starts wait while `open_limit` are open
        self.open_limit = spec.open_limit()
        self.result = WorkloadResult()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        # Request ids are new in every workload: a long-lived system (attach mode, a pytest session's several
        # start_sagas calls) remembers the idempotency keys of earlier runs and must never see one again.
        self._salt = secrets.token_hex(8)

    def stop(self) -> None:
        self._stop.set()

    def _record(self, index: int, body: dict[str, Any], invoked: float, outcome: str, detail: str, attempts: int,
                answer: Any = None) -> None:
        if self.recorder is None:
            return
        s = self.spec
        self.recorder.add({
            "kind": "operation", "t": invoked, "op": index, "saga": self.saga.name if self.saga else None,
            "key": request_key(s, self.saga, answer, body), "invoked": invoked, "completed": self.recorder.now(),
            "outcome": outcome, "detail": detail, "attempts": attempts, "request_id": self.request_id(index),
            "request": f"{s.method} {s.path}" if s.via == "http" else f"publish {s.subject}"})

    def request_id(self, index: int) -> str:
        """The id of start request ``index``: the same on every retry of the request, new in every run (it is
        what ``{request_id}`` and ``[workload] idempotency_key`` send; the history records it)."""
        return str(uuid.UUID(int=random.Random(f"{self.seed}:{self._salt}:{index}").getrandbits(128)))

    def _one(self, index: int, body: dict[str, Any]) -> None:
        deadline = time.monotonic() + self.retry_for
        delay = 0.05
        invoked = self.recorder.now() if self.recorder is not None else 0.0
        attempts = 0
        maybe_in = False  # some attempt may have got in without our hearing so
        headers = self.spec.request_headers(index, self.request_id(index))
        if self.spec.via == "publish":  # a retried publish is de-duplicated by the stream: one id per request
            headers.setdefault("Nats-Msg-Id", str(body.get("event_id") or self.request_id(index)))
        while True:
            attempts += 1
            try:
                # every attempt of one request carries the same headers: a retry is the same request again
                answer = self.send(body, headers) if headers and self._send_takes_headers else self.send(body)
                if self.spec.duplicate and random.Random(f"{self.seed}:duplicate:{index}").random() < self.spec.duplicate:
                    # a duplicate-request fault: the same request again, as a client or a proxy that retries a
                    # request it believes lost; an idempotent entry point answers with what the first one did
                    try:
                        self.send(body, headers) if headers and self._send_takes_headers else self.send(body)
                        attempts += 1
                        with self._lock:
                            self.result.duplicated += 1
                    except Exception:  # noqa: BLE001 - the first one got in: that is the request's outcome
                        pass
                with self._lock:
                    self.result.started += 1
                self._record(index, body, invoked, "ok", "accepted", attempts, answer)
                self.bus.emit(SagaStarted(index, True))
                return
            except Exception as exc:  # noqa: BLE001 - the entry point may be down under faults
                maybe_in = maybe_in or not isinstance(exc, RequestRejected)
                if time.monotonic() + delay > deadline or self._stop.is_set():
                    with self._lock:
                        self.result.failed += 1
                        self.result.unknown += maybe_in
                        if len(self.result.errors) < 20:
                            self.result.errors.append(f"saga {index}: {exc}")
                    self._record(index, body, invoked, "unknown" if maybe_in else "fail",
                                 str(exc) or type(exc).__name__, attempts)
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
        pace0 = t0  # the rate's origin; moves on by each pause for max_open, so the rate resumes without a burst
        interval = 1.0 / self.spec.rate
        limit = self.count if self.duration is None else 10**9
        # bodies are drawn up front in order, so the same seed gives the same sagas regardless of timing
        with ThreadPoolExecutor(max_workers=self.spec.concurrency) as pool:
            i = 0
            while i < limit and not self._stop.is_set():
                if self.duration is not None and time.monotonic() - t0 >= self.duration:
                    break
                target = pace0 + i * interval
                now = time.monotonic()
                if target > now:
                    if self._stop.wait(target - now):
                        break
                if self.open_sagas is not None and self.open_sagas() >= self.open_limit:
                    waited = time.monotonic()
                    while self.open_sagas() >= self.open_limit and not self._stop.wait(0.02):
                        if self.duration is not None and time.monotonic() - t0 >= self.duration:
                            break
                    waited = time.monotonic() - waited
                    self.result.held_back += waited
                    pace0 += waited
                    if self._stop.is_set() or (self.duration is not None and time.monotonic() - t0 >= self.duration):
                        break
                body = self.body(i, rng)
                self.result.requested += 1
                pool.submit(self._one, i, body)
                i += 1
        self.result.seconds = time.monotonic() - t0
        return self.result


def http_sender(system: Any, spec: WorkloadSpec) -> Callable[[dict[str, Any]], Any]:
    """Send each body to the entry service over HTTP; returns the answer's JSON. A refused connection or a 4xx
    answer is a definite failure (:class:`RequestRejected`); a time-out, a dropped connection or a 5xx may have
    got in."""
    # a service with replicas is called on each replica in turn (as a load balancer would)
    replicas = [s for s in system.services.values()
                if getattr(getattr(s, "spec", None), "service", None) == spec.service] or [system.services[spec.service]]
    turn = itertools.count()

    def send(body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
        svc = replicas[next(turn) % len(replicas)]
        try:
            resp = svc.http.request(spec.method, spec.path, json_body=body, headers=headers, timeout=10)
        except ConnectionRefusedError as err:
            raise RequestRejected(f"{spec.method} {spec.path}: connection refused") from err
        if 400 <= resp.status < 500:
            raise RequestRejected(f"{spec.method} {spec.path} answered {resp.status}: {resp.text[:200]}")
        if not 200 <= resp.status < 300:
            raise RuntimeError(f"{spec.method} {spec.path} answered {resp.status}: {resp.text[:200]}")
        try:
            return resp.json()
        except ValueError:
            return None

    return send


def nats_sender(system: Any, spec: WorkloadSpec) -> Callable[[dict[str, Any]], Any]:
    """Publish each body on the workload subject (JetStream publish when a stream captures it)."""
    from sagaproof.subjects import matches as subject_matches

    subject = spec.subject
    if not subject:  # config.py requires a subject whenever via = "publish"
        raise ValueError('nats_sender needs a workload with via = "publish" and a subject')
    captured = any(subject_matches(p, subject) for s in system.spec.nats.streams for p in s.subjects)

    async def publish(body: dict[str, Any], headers: dict[str, str]) -> None:
        import nats

        nc = getattr(system, "_workload_nc", None)
        if nc is None or nc.is_closed:
            from sagaproof.harness.env.aio import quiet_nats_error

            nc = await nats.connect(servers=system.nats_urls, max_reconnect_attempts=-1, reconnect_time_wait=0.2,
                                    error_cb=quiet_nats_error, **getattr(system, "nats_options", {}))
            system._workload_nc = nc
        data = json.dumps(body).encode()
        if captured:
            await nc.jetstream().publish(subject, data, timeout=5, headers=headers)
        else:
            await nc.publish(subject, data, headers=headers or None)
            await nc.flush(timeout=5)

    def send(body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
        hdrs = dict(headers or {})
        if captured:  # the stream de-duplicates a retried publish by its id (one id per request, not per attempt)
            hdrs.setdefault("Nats-Msg-Id", str(body.get("event_id") or uuid.uuid4()))
        system.loop.run(publish(body, hdrs), timeout=10)
        return None

    return send
