"""Status reads: a client reading each saga's state, during the run and once the system is quiescent.

A saga that declares ``[sagas.NAME.status]`` (:class:`~harness.config.StatusReadSpec`) can be read the way its
users read it: an HTTP GET to a service, a NATS request, or a JetStream key-value entry. :class:`StatusReader`
makes one such read and returns what the client saw; :class:`ReadSchedule` makes the run's reads:

* while the workload runs, a seeded ``[reads] sample`` of the sagas is read at random moments of their lives,
  following their events on the wire (at most :data:`MAX_READS_PER_SAGA` per saga, dropped rather than queued
  when the rate is exceeded). When the status is read over HTTP from a service whose contracts say which of the
  saga's subjects it sends or receives (the status's owner), only those events are followed -- the others
  cannot change what it shows -- and each is followed by two reads: one soon after (the event's own effect) and
  one later (what the owner made of it once it took it); when the first shows what the saga showed before (the
  owner lags behind the wire), up to :data:`FOLLOW_UPS` more follow, further and further apart, until one shows a
  change. Otherwise every event of the saga is followed by one
  read, a random delay later (soon or later). A status that shows a terminal value only for a while (overwritten
  once a later step failed) is read inside that while far more often this way;
* once the system is quiescent, every saga the run started is read once (:meth:`ReadSchedule.final_reads`).

At most ``[reads] rate`` reads per second and ``concurrency`` in flight. Each read is a ``read`` record in the
history, shaped like the workload's ``operation`` records (``invoked``, ``completed``, ``outcome`` ``ok``,
``fail`` or ``unknown``, ``detail``, ``request``) plus what it read: ``value`` (the status), ``status`` (what
the value means: ``pending``, ``success``, ``abort``, or None for an undeclared value), ``found`` (False when
the system answered that it has no such saga: a 404, an empty reply, no key-value entry) and ``phase``
(``during`` or ``final``). The checks of :mod:`harness.checks.reads` hold them against the wire.
"""

from __future__ import annotations

import heapq
import json
import random
import threading
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from sagaproof.harness.config import ReadsSpec, SagaSpec, StatusReadSpec, field_at, saga_roles

__all__ = ["MAX_READS_PER_SAGA", "ReadResult", "ReadSchedule", "StatusReader"]

MAX_READS_PER_SAGA = 12  # reads of one sampled saga while it runs
FOLLOW_UPS = 3  # reads more after an owned event's first read while the status shows what it showed before
FOLLOW_DELAY = 0.2  # the first of them this long after (seconds), each next one twice as long
REREAD_TERMINAL = 20  # sagas whose final read was terminal, read once more after the final pass
READ_DELAY = 0.15  # half the reads follow a sampled saga's event by a random delay up to this (seconds)
READ_LATER = 1.0  # and the other half by a delay between READ_DELAY and this
MAX_QUEUED = 2_000  # reads waiting to be made while the run goes on; more are dropped (counted)


@dataclass
class ReadResult:
    """What one read saw: ``outcome`` ``ok`` (an answer), ``fail`` (a definite refusal: 4xx other than 404, a
    bad answer) or ``unknown`` (no answer: time-out, connection refused or dropped, 5xx); with ``ok``,
    ``found`` says whether the system knows the saga and ``value`` is the status field's value."""

    outcome: str
    value: Any = None
    found: bool = False
    detail: str = ""


class StatusReader:
    """Reads a saga instance's status the way its ``[sagas.NAME.status]`` declares, against a running system
    (``services[NAME].http``, ``nats_urls``, ``nats_options``, ``loop``: :class:`harness.env.system.System`)."""

    def __init__(self, system: Any, sagas: dict[str, SagaSpec]):
        self.system = system
        self.sagas = {n: s for n, s in sagas.items() if s.status is not None}
        self._nc: Any = None

    def read(self, saga: str, key: str) -> ReadResult:
        """One read of saga ``saga``'s instance ``key``."""
        spec = self.sagas[saga].status
        assert spec is not None
        try:
            if spec.via == "http":
                return self._http(spec, key)
            return self._nats(spec, key)
        except Exception as exc:  # noqa: BLE001 - under faults any read may go unanswered
            return ReadResult("unknown", detail=str(exc) or type(exc).__name__)

    def _answer(self, spec: StatusReadSpec, doc: Any) -> ReadResult:
        if doc is None:
            return ReadResult("ok", None, False, "no such saga")
        value = field_at(doc, spec.field)
        if value is None:
            return ReadResult("fail", None, True, f"the answer has no field {spec.field!r}")
        return ReadResult("ok", value, True)

    def _http(self, spec: StatusReadSpec, key: str) -> ReadResult:
        svc = self.system.services[spec.service]
        path = str(spec.path).replace("{key}", quote(key, safe=""))
        resp = svc.http.request("GET", path, timeout=spec.timeout)
        if resp.status == 404:
            return self._answer(spec, None)
        if 400 <= resp.status < 500:
            return ReadResult("fail", detail=f"GET {path} answered {resp.status}: {resp.text[:200]}")
        if not 200 <= resp.status < 300:
            return ReadResult("unknown", detail=f"GET {path} answered {resp.status}: {resp.text[:200]}")
        try:
            doc = resp.json()
        except ValueError:
            return ReadResult("fail", detail=f"GET {path} answered {resp.status} with no JSON: {resp.text[:200]}")
        return self._answer(spec, doc)

    async def _connect(self) -> Any:
        import nats

        if self._nc is None or self._nc.is_closed:
            from sagaproof.harness.env.aio import quiet_nats_error

            self._nc = await nats.connect(servers=self.system.nats_urls, max_reconnect_attempts=-1,
                                          reconnect_time_wait=0.2, name="sagaproof-reads", error_cb=quiet_nats_error,
                                          **getattr(self.system, "nats_options", {}))
        return self._nc

    def _nats(self, spec: StatusReadSpec, key: str) -> ReadResult:
        async def go() -> ReadResult:
            nc = await self._connect()
            if spec.via == "nats":
                msg = await nc.request(str(spec.subject).replace("{key}", key), b"", timeout=spec.timeout)
                if not msg.data:
                    return self._answer(spec, None)
                try:
                    return self._answer(spec, json.loads(msg.data))
                except ValueError:
                    return ReadResult("fail", detail=f"the reply is not JSON: {msg.data[:200]!r}")
            from nats.js.errors import KeyNotFoundError

            kv = await nc.jetstream().key_value(str(spec.bucket))
            try:
                entry = await kv.get(str(spec.key).replace("{key}", key))
            except KeyNotFoundError:
                return self._answer(spec, None)
            if entry.value is None or entry.operation in ("DEL", "PURGE"):
                return self._answer(spec, None)
            try:
                return self._answer(spec, json.loads(entry.value))
            except ValueError:  # a bare value: the status itself
                text = entry.value.decode(errors="replace")
                return ReadResult("ok", text, True)

        loop = self.system.loop
        result: ReadResult = loop.run(go(), timeout=spec.timeout + 1.0)
        return result

    def close(self) -> None:
        nc, self._nc = self._nc, None
        if nc is not None and not nc.is_closed and self.system.loop is not None:
            try:
                self.system.loop.run(nc.close(), timeout=5)
            except Exception:  # noqa: BLE001 - closing at teardown
                pass


class ReadSchedule:
    """The run's reads (see the module docstring). :meth:`on_message` is fed every recorded message (the
    engine's tracker feeds it); :meth:`final_reads` reads every saga once, after quiescence; :meth:`stop` ends
    the reads in flight. ``record(dict)`` writes a ``read`` record (the engine's sink), ``now()`` is the
    history's clock."""

    def __init__(self, reader: StatusReader, spec: ReadsSpec, sagas: dict[str, SagaSpec], *, seed: int,
                 record: Callable[[dict[str, Any]], None], now: Callable[[], float],
                 owner_subjects: dict[str, set[str]] | None = None):
        self.reader = reader
        # saga -> the subjects its status's owner sends or receives (see owner_subjects()); a saga not in it has
        # every event followed by one read
        self.owner_subjects = {n: set(subs) for n, subs in (owner_subjects or {}).items() if subs}
        self.spec = spec
        self.sagas = {n: s for n, s in sagas.items() if s.status is not None}
        self.seed = seed
        self.record = record
        self.now = now
        self.rng = random.Random(seed * 7919 + 23)
        self._subjects: dict[str, list[str]] = {}
        for name, s in self.sagas.items():
            for subject in saga_roles(s):
                self._subjects.setdefault(subject, []).append(name)
        self.started: dict[str, set[str]] = {n: set() for n in self.sagas}  # every saga seen start
        self._reads_of: dict[tuple[str, str], int] = {}
        self._queue: list[tuple[float, int, str, str, int]] = []  # (due, op, saga, key, follow-ups left)
        self._last_value: dict[tuple[str, str], Any] = {}  # what the last answered read of a saga showed
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=spec.concurrency, thread_name_prefix="sagaproof-read")
        self._slots = threading.Semaphore(spec.concurrency)
        self._next_at = time.monotonic()  # the rate: the earliest moment of the next read
        self._op = 0
        self.made = 0
        self.dropped = 0
        self.seconds = 0.0  # time spent in final reads
        self._thread = threading.Thread(target=self._main, name="sagaproof-reads", daemon=True)
        self._thread.start()

    def sampled(self, saga: str, key: str) -> bool:
        """Whether this saga instance is read while it runs (seeded, the same for a key in every run)."""
        h = zlib.crc32(f"{self.seed}:{saga}:{key}".encode()) / 2**32
        return h < self.spec.sample

    def on_message(self, message: dict[str, Any]) -> None:
        """A recorded message (``subject``, ``data``): note the sagas it starts; schedule a read of a sampled saga."""
        names = self._subjects.get(str(message.get("subject")))
        if not names or self._stop.is_set():
            return
        for name in names:
            saga = self.sagas[name]
            value = field_at(message.get("data"), saga.key)
            if value is None or isinstance(value, dict | list):
                continue
            key = str(value)
            with self._cond:
                if message.get("subject") == saga.start:
                    self.started[name].add(key)
                if not self.sampled(name, key):
                    continue
                planned = self.reads_after(name, str(message.get("subject")))
                reads = [(self._soon(), FOLLOW_UPS), (self._later(), 0)] if planned == 2 else [(self._delay(), 0)]
                for delay, follow in reads[:planned]:
                    if not self._push(name, key, delay, follow):
                        break
                self._cond.notify()

    def _push(self, name: str, key: str, delay: float, follow: int) -> bool:
        """Queue one read of a saga instance ``delay`` seconds from now (under ``_cond``); False when its budget
        or the queue is full."""
        n = self._reads_of.get((name, key), 0)
        if n >= MAX_READS_PER_SAGA:
            return False
        if len(self._queue) >= MAX_QUEUED:
            self.dropped += 1
            return False
        self._reads_of[(name, key)] = n + 1
        heapq.heappush(self._queue, (time.monotonic() + delay, self._next(), name, key, follow))
        return True

    def reads_after(self, saga: str, subject: str) -> int:
        """How many reads an event on ``subject`` of a sampled saga instance schedules: with a known owner of the
        status, two for an event it sends or receives and none for another (which cannot change what it shows);
        with none known, one."""
        owned = self.owner_subjects.get(saga)
        if owned is None:
            return 1
        return 2 if subject in owned else 0

    def _soon(self) -> float:
        return self.rng.uniform(0.0, READ_DELAY)

    def _later(self) -> float:
        return self.rng.uniform(READ_DELAY, READ_LATER)

    def _delay(self) -> float:
        """How long after a sampled saga's event its read is made: half soon after (the event's own effect), half
        later (what its owner made of it once it took it), up to :data:`READ_LATER`."""
        return self._soon() if self.rng.random() < 0.5 else self._later()

    def _next(self) -> int:
        self._op += 1
        return self._op

    def _pace(self) -> None:
        """Wait for the rate (at most `rate` reads per second)."""
        with self._cond:
            at = max(self._next_at, time.monotonic())
            self._next_at = at + 1.0 / self.spec.rate
        delay = at - time.monotonic()
        if delay > 0:
            self._stop.wait(delay)

    def _main(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                if not self._queue:
                    self._cond.wait(0.2)
                    continue
                due, op, name, key, follow = self._queue[0]
                wait = due - time.monotonic()
                if wait > 0:
                    self._cond.wait(min(wait, 0.2))
                    continue
                heapq.heappop(self._queue)
                late = time.monotonic() - self._next_at
            if late < -1.0:  # over the rate by more than a second's worth: drop this sample
                with self._cond:
                    self.dropped += 1
                continue
            self._pace()
            self._slots.acquire()
            try:
                self._pool.submit(self._record_with, self.record, op, name, key, "during", follow)
            except RuntimeError:  # the pool is shut down
                self._slots.release()
                return

    def final_reads(self, keys: dict[str, set[str]] | None = None, *, retries: int = 3) -> int:
        """Read every saga (``keys``, default every saga seen starting) once, at the rate; a read that got no
        answer (``unknown``) is tried again up to ``retries`` times. Returns how many reads were made."""
        t0 = time.monotonic()
        with self._cond:
            self._queue.clear()  # the run's samples are over
        todo = [(name, key) for name, ks in sorted((keys or self.started).items()) for key in sorted(ks)]
        made = 0
        results: dict[tuple[str, str], str] = {}  # the last outcome of each saga's read
        terminal: list[tuple[str, str]] = []  # sagas whose final read answered with a terminal status
        lock = threading.Lock()
        for attempt in range(retries + 1):
            if not todo or self._stop.is_set():
                break

            def keep_as(name: str, key: str) -> Callable[[dict[str, Any]], None]:
                def keep(rec: dict[str, Any]) -> None:
                    with lock:
                        results[(name, key)] = str(rec.get("outcome"))
                        if rec.get("found") and rec.get("status") in ("success", "abort"):
                            terminal.append((name, key))
                    self.record(rec)

                return keep

            futures = []
            for name, key in todo:
                self._pace()
                self._slots.acquire()  # taken here, released by the read: a worker never waits for a slot
                futures.append(self._pool.submit(self._record_with, keep_as(name, key), self._next(), name, key,
                                                 "final"))
            for f in futures:
                f.result()
            made += len(todo)
            todo = [(n, k) for n, k in todo if results.get((n, k)) == "unknown"]
            if todo and attempt < retries:
                self._stop.wait(0.5)
        # A terminal status must never change: read a few of the sagas that answered terminal once more, so the
        # stability check has something to judge however few sagas the run sampled while they ran.
        again = sorted(terminal)[:REREAD_TERMINAL]
        futures = []
        for name, key in again:
            if self._stop.is_set():
                break
            self._pace()
            self._slots.acquire()
            futures.append(self._pool.submit(self._record_with, self.record, self._next(), name, key, "final"))
        for f in futures:
            f.result()
        made += len(futures)
        self.seconds += time.monotonic() - t0
        return made

    def _record_with(self, record: Callable[[dict[str, Any]], None], op: int, saga: str, key: str,
                     phase: str, follow: int = 0) -> None:
        try:
            rec = make_read(self.reader, self.sagas[saga], self.now, record, op, key, phase)
            self.made += 1
        finally:
            self._slots.release()
        if phase != "during":
            return
        with self._cond:
            seen = (rec.get("outcome") == "ok", rec.get("found"), rec.get("value"))
            before = self._last_value.get((saga, key))
            if seen[0]:
                self._last_value[(saga, key)] = seen
            # The owner has not shown the event's effect yet (it lags behind the wire): read again, later and
            # later, so the status is read once it changes -- and before a next event changes it again.
            if follow > 0 and not self._stop.is_set() and (not seen[0] or seen == before):
                self._push(saga, key, FOLLOW_DELAY * 2 ** (FOLLOW_UPS - follow), follow - 1)
                self._cond.notify()

    def stop(self) -> None:
        """Stop reading: no new read starts; those in flight finish (each bounded by its timeout)."""
        self._stop.set()
        with self._cond:
            self._queue.clear()
            self._cond.notify_all()
        self._thread.join(timeout=5)
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.reader.close()


def start_reads(session: Any) -> ReadSchedule | None:
    """The run's :class:`ReadSchedule` for an open session (fed the recorded messages), or None when no saga
    declares a status read or ``[reads] enabled = false``."""
    spec = session.spec
    if not spec.reads.enabled or not any(s.status is not None for s in spec.sagas.values()):
        return None
    schedule = ReadSchedule(StatusReader(session.system, spec.sagas), spec.reads, spec.sagas, seed=session.seed,
                            record=session.sink.add, now=lambda: session.now,
                            owner_subjects=owner_subjects(spec.sagas, getattr(session, "contract_set", None)))
    session.tracker.feeds.append(schedule.on_message)
    return schedule


def owner_subjects(sagas: dict[str, SagaSpec], contract_set: Any) -> dict[str, set[str]]:
    """Saga -> the subjects of it that its status's owner sends or receives, by the contracts: for a status read
    over HTTP from a service (its owner), when the contracts name that service on at least one of the saga's
    subjects. A status read over NATS or from a key-value bucket has no known owner (and is left out)."""
    out: dict[str, set[str]] = {}
    if contract_set is None:
        return out
    for name, saga in sagas.items():
        status = saga.status
        if status is None or status.via != "http" or not status.service:
            continue
        owned = {subject for subject in saga_roles(saga)
                 if status.service in contract_set.sender_of(subject)
                 or status.service in contract_set.receivers_of(subject)}
        if owned:
            out[name] = owned
    return out


def final_keys(session: Any) -> dict[str, set[str]]:
    """Every saga to read once the system is quiescent: those seen starting on the wire, and those whose start
    request named a key (accepted or unknown: the read says what became of it) -- for a request that got no
    answer, its request id when the system keys its sagas by it (:func:`harness.checks.reads.keyed_by_request_id`)."""
    reads: ReadSchedule = session.reads
    keys = {name: set(ks) for name, ks in reads.started.items()}
    only = next(iter(session.spec.sagas)) if len(session.spec.sagas) == 1 else None
    if session.history is not None:
        from sagaproof.harness.checks.reads import keyed_by_request_id, op_key

        session.history.flush()
        ops = list(session.history.records(kinds=("operation",)))
        by_request_id = keyed_by_request_id(ops)
        for rec in ops:
            saga, key = rec.get("saga") or only, op_key(rec, by_request_id)
            if saga in keys and key is not None and rec.get("outcome") in ("ok", "unknown"):
                keys[saga].add(str(key))
    return keys


def read_once(session: Any, key: Any, saga: str | None = None, *, phase: str = "test") -> dict[str, Any]:
    """One status read of saga instance ``key`` (of ``saga``, default the only saga with a status read), made
    and recorded exactly as the run's reads are; returns the ``read`` record. ConfigError when no saga (or
    not that saga) declares a status read."""
    from sagaproof.harness.errors import ConfigError

    declared = [n for n, s in session.spec.sagas.items() if s.status is not None]
    name = saga if saga is not None else (declared[0] if len(declared) == 1 else None)
    if name not in declared:
        raise ConfigError(f"{session.spec.path}: " + (
            f"saga '{saga}' declares no status read; add [sagas.{saga}.status] (see docs/system-file.md)."
            if saga is not None and declared else
            f"{len(declared)} sagas declare a status read; pass saga= to name one." if len(declared) > 1 else
            "no saga declares a status read; add [sagas.NAME.status] (see docs/system-file.md)."))
    assert name is not None
    schedule: ReadSchedule | None = getattr(session, "reads", None)
    reader = schedule.reader if schedule is not None else StatusReader(session.system, session.spec.sagas)
    try:
        return make_read(reader, session.spec.sagas[name], lambda: session.now, session.sink.add, -1, str(key), phase)
    finally:
        if schedule is None:
            reader.close()


def make_read(reader: StatusReader, saga: SagaSpec, now: Callable[[], float],
              record: Callable[[dict[str, Any]], None], op: int, key: str, phase: str) -> dict[str, Any]:
    """Read one saga instance and record it as a ``read`` record (returned)."""
    spec = saga.status
    assert spec is not None
    invoked = now()
    res = reader.read(saga.name, key)
    rec = {"kind": "read", "t": invoked, "op": op, "saga": saga.name, "key": key, "invoked": invoked,
           "completed": now(), "outcome": res.outcome, "value": res.value, "found": res.found,
           "status": spec.meaning(res.value) if res.outcome == "ok" and res.found else None,
           "detail": res.detail, "request": spec.where(key), "phase": phase}
    record(rec)
    return rec


def window_keys(session: Any, window: Any) -> dict[str, set[str]]:
    """The sagas with a status read that a check window judges (see :func:`harness.checks._window_keys`)."""
    from sagaproof.harness.checks import _window_keys

    declared = {n: s for n, s in session.spec.sagas.items() if s.status is not None}
    session.history.flush()
    return _window_keys(session.history.reader(), declared, window)


def wait_quiescent(session: Any, limit: float) -> bool:
    """Wait (at most ``limit`` seconds) until the broker says the system is quiescent (every delivery answered),
    so a status read then sees every outcome its owner took; True if it is."""
    broker = getattr(session.system, "broker", None)
    if broker is None:
        return False
    deadline = time.monotonic() + limit
    while True:
        if broker.quiescence(0.3)[0]:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
