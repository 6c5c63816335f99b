"""Shared plumbing of the trip-booking services: settings, CloudEvents, SQLite store, transactional outbox,
JetStream consumers and a tiny JSON-over-HTTP server.

Every service is a small module that creates a :class:`TripService`, registers one handler per event subject
it consumes (grouped into consumers, see below) and calls :meth:`TripService.run`. The plumbing gives each of
them the same delivery guarantees:

* Events are CloudEvents 1.0 in structured JSON: ``specversion``, ``id`` (a uuid), ``type`` (equal to the
  subject), ``source`` (the service), ``time``, ``causationid`` (the ``id`` of the event this one reacts to)
  and ``data``, which holds the business fields, always with the saga's ``trip_id``.
* Inputs come from durable JetStream pull consumers with explicit ack. A service may split its subjects
  over several consumers (``group=``), so a slow handler on one (a supplier's API) does not hold up the
  others (releases). A consumer works through each fetched batch in order, or, if it is ``concurrent``, waits
  on the outside world for the whole batch at once (the transactions themselves never interleave). A message
  is acked only after the SQLite transaction that applied it has committed *and* the events it produced
  have been accepted by JetStream.
* Each input's ``id`` is recorded in the ``processed`` table in the same transaction as its effect, so a
  redelivered or duplicated event is applied once.
* A handler's ``prepare`` coroutine runs before the transaction, for calls to the outside world. When it
  raises :class:`Transient`, the subscription's ``transient`` handler records the failed attempt (and the
  events announcing it) in a transaction of its own, and the input is handed back to JetStream to be
  delivered again after a short delay: a retry that survives a crash.
* Outgoing events go to the ``outbox`` table in that same transaction and are published by a relay with
  ``Nats-Msg-Id: <id>``, retried until JetStream acks them.
* The NATS connection reconnects forever and pings every 2 s.

Only the standard library and nats-py are used.
The parts every example shares (the SQLite store, the outbox relay, the HTTP server, the stream made sure of)
are the examples' service kit, ``examples/_lib/servicekit.py``, re-exported here; this module holds what is
the example's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sqlite3
import sys
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

_KIT = Path(__file__).resolve().parent.parent / "_lib"  # examples/_lib: the service kit the examples share
if str(_KIT) not in sys.path:
    sys.path.insert(0, str(_KIT))
try:
    import servicekit
    from servicekit import (
        DUPLICATE_WINDOW,
        Event,
        HttpResult,
        HttpServer,
        OutboxRelay,
        Request,
        Route,
        ensure_stream,
        now_iso,
        transaction,
    )
except ImportError as exc:  # an example copied without examples/_lib beside it
    raise SystemExit(f"trips_common: the examples' service kit ({_KIT / 'servicekit.py'}) was not found ({exc}); copy "
                     f"examples/_lib beside the example's directory") from None

__all__ = ["DUPLICATE_WINDOW", "Event", "HttpResult", "HttpServer", "OutboxRelay", "Request", "Route", "add_to_outbox",
           "new_event", "now_iso", "open_db", "transaction", "Settings", "Transient", "TripService", "env_ms", "trip_of"]

STREAM = "TRIPS"
STREAM_SUBJECTS = ["trip.>", "risk.>", "payment.>", "flight.>", "hotel.>"]
FETCH_BATCH = 10
RETRY_DELAY = 0.3  # seconds before a transiently failed input is delivered again

Handler = Callable[..., list[Event]]
Prepare = Callable[[Event], Awaitable[Any]]


class Transient(Exception):
    """Raised by a ``prepare`` step when the outside world failed in a way worth retrying."""


# --------------------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Settings:
    """What a service reads from its environment (see the README for the full list)."""

    name: str
    port: int
    nats_url: str
    data_dir: Path
    bug: str
    ack_wait: float

    @classmethod
    def from_env(cls, name: str, default_port: int) -> Settings:
        """Read ``TRIPS_PORT``, ``NATS_URL``, ``DATA_DIR``, ``TRIPS_BUG`` and ``TRIPS_ACK_WAIT``."""
        env = os.environ
        try:
            port = int(env.get("TRIPS_PORT", default_port))
            ack_wait = float(env.get("TRIPS_ACK_WAIT", "2"))
        except ValueError as exc:
            raise SystemExit(f"{name}: TRIPS_PORT and TRIPS_ACK_WAIT must be numbers ({exc}).") from None
        return cls(name=name, port=port, nats_url=env.get("NATS_URL", "nats://127.0.0.1:4222"),
                   data_dir=Path(env.get("DATA_DIR", f".trips-data/{name}")), bug=env.get("TRIPS_BUG", ""),
                   ack_wait=ack_wait)


def env_ms(name: str, default: float) -> float:
    """A latency setting in milliseconds from the environment, as seconds."""
    return float(os.environ.get(name, default)) / 1000


def new_event(type_: str, source: str, trip_id: str, *, caused_by: Event | None = None, **data: Any) -> Event:
    """A CloudEvent of ``type_`` from ``source``: a fresh ``id``, the time, the ``id`` of the event it reacts
    to as ``causationid``, and ``data`` = ``{"trip_id": trip_id, **data}``."""
    event: Event = {"specversion": "1.0", "id": str(uuid.uuid4()), "type": type_, "source": source,
                    "time": now_iso(), "datacontenttype": "application/json"}
    if caused_by is not None:
        event["causationid"] = caused_by["id"]
    event["data"] = {"trip_id": trip_id, **data}
    return event


def trip_of(event: Event) -> str:
    """The saga's correlation key of an event."""
    trip_id: str = event["data"]["trip_id"]
    return trip_id


# ------------------------------------------------------------------------------------------ store

_BASE_SCHEMA = """
CREATE TABLE IF NOT EXISTS processed (
    event_id TEXT PRIMARY KEY, type TEXT NOT NULL, trip_id TEXT NOT NULL, processed_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL UNIQUE, subject TEXT NOT NULL,
    body TEXT NOT NULL, sent INTEGER NOT NULL DEFAULT 0);
"""


def open_db(path: Path, schema: str) -> sqlite3.Connection:
    """Open (creating if needed) the service's SQLite database in WAL mode, with the processed-events and outbox
    tables and ``schema`` (:func:`servicekit.open_db`)."""
    return servicekit.open_db(path, _BASE_SCHEMA + schema)


def add_to_outbox(db: sqlite3.Connection, events: list[Event]) -> None:
    """Queue events for publishing; call inside the transaction that produced them."""
    for event in events:
        db.execute("INSERT INTO outbox (event_id, subject, body) VALUES (?, ?, ?)",
                   (event["id"], event["type"], json.dumps(event, separators=(",", ":"))))


# ---------------------------------------------------------------------------------------- service


@dataclass
class _Subscription:
    handler: Handler
    prepare: Prepare | None = None
    transient: Handler | None = None


@dataclass
class _Group:
    """One consumer: its subjects and how they are delivered (``durable`` or a plain ``core`` subscription)."""

    name: str
    delivery: str = "durable"
    concurrent: bool = False
    subjects: dict[str, _Subscription] = field(default_factory=dict)


@dataclass
class TripService:
    """One service: its store, its consumers, its outbox relay and its HTTP API."""

    settings: Settings
    schema: str = ""
    state_fn: Callable[[sqlite3.Connection], dict[str, Any]] | None = None
    groups: dict[str, _Group] = field(default_factory=dict)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                            format=f"%(asctime)s {self.settings.name} %(levelname)s %(message)s")
        self.log = logging.getLogger(self.settings.name)
        self.db = open_db(self.settings.data_dir / f"{self.settings.name}.db", self.schema)
        self.relay = OutboxRelay(self.db, self.log)
        self.http = HttpServer(self.log)
        self.http.add("GET", "/health", self._health)
        self.http.add("GET", "/state", self._state)
        self.ready = False
        self.nc: Any = None
        self._consuming: set[str] = set()

    # -- registration

    def on(self, subject: str, handler: Handler, *, group: str = "main", delivery: str = "durable",
           concurrent: bool = False, prepare: Prepare | None = None, transient: Handler | None = None) -> None:
        """Handle events on ``subject`` with ``handler(db, event[, prepared])`` inside the transaction that also
        records the event as processed and queues the returned events.

        ``prepare(event)`` is awaited before the transaction (for calls to the outside world); its result is
        the handler's third argument. If it raises :class:`Transient`, ``transient(db, event, exc)`` runs in a
        transaction instead, its events are published, and the input is delivered again later.
        """
        g = self.groups.setdefault(group, _Group(group, delivery, concurrent))
        g.subjects[subject] = _Subscription(handler, prepare, transient)

    def route(self, method: str, pattern: str, fn: Route) -> None:
        """Serve ``fn(request) -> (status, json_body)`` on ``method pattern``."""
        self.http.add(method, pattern, fn)

    # -- http

    def _health(self, _req: Request) -> HttpResult:
        connected = bool(self.nc is not None and self.nc.is_connected)
        if not self.ready:
            return 503, {"status": "starting", "nats": "connected" if connected else "connecting"}
        return 200, {"status": "ok", "nats": "connected" if connected else "reconnecting"}

    def _state(self, _req: Request) -> HttpResult:
        state: dict[str, Any] = {"service": self.settings.name}
        if self.state_fn is not None:
            state.update(self.state_fn(self.db))
        state["processed_events"] = self.db.execute("SELECT COUNT(*) FROM processed").fetchone()[0]
        state["outbox_unsent"] = self.db.execute("SELECT COUNT(*) FROM outbox WHERE sent = 0").fetchone()[0]
        return 200, state

    # -- running

    def run(self) -> None:
        """Run until SIGTERM or SIGINT."""
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(self._main())

    async def _main(self) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        server = await self.http.start(self.settings.port)
        self.log.info("HTTP on 127.0.0.1:%d", server.sockets[0].getsockname()[1])
        tasks = [asyncio.create_task(self.relay.run(), name="relay"),
                 asyncio.create_task(self._start(), name="start")]
        await stop.wait()
        self.log.info("stopping")
        server.close()
        for task in tasks + self._tasks:
            task.cancel()
        await asyncio.gather(*tasks, *self._tasks, return_exceptions=True)
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.nc.close(), 2)

    async def _connect(self) -> Any:
        async def on_error(exc: Exception) -> None:
            self.log.warning("nats: %s", str(exc) or type(exc).__name__)

        async def on_disconnect() -> None:
            self.log.warning("nats: disconnected")

        async def on_reconnect() -> None:
            self.log.info("nats: reconnected")

        attempts = -1
        if self.settings.bug == "no_reconnect" and self.settings.name == "hotels":
            # The bug: hotels gives up reconnecting after three tries; its fetch loop then only logs that the
            # connection is closed.
            attempts = 3
        return await nats.connect(
            self.settings.nats_url, name=self.settings.name, max_reconnect_attempts=attempts,
            reconnect_time_wait=0.25, connect_timeout=2, ping_interval=2, max_outstanding_pings=2,
            error_cb=on_error, disconnected_cb=on_disconnect, reconnected_cb=on_reconnect)

    async def _start(self) -> None:
        """Connect, make sure the stream and the consumers exist, then work through each consumer."""
        self.nc = await self._connect()
        js = self.nc.jetstream(timeout=3)
        subs: dict[str, Any] = {}
        while True:
            try:
                await _ensure_stream(js)
                for g in self.groups.values():
                    if g.name not in subs:
                        subs[g.name] = await (self._core(g) if g.delivery == "core" else self._durable(js, g))
                break
            except Exception as exc:  # the broker may still be starting, or be cut off
                self.log.warning("setting up JetStream failed (%s), retrying", str(exc) or type(exc).__name__)
                await asyncio.sleep(0.5)
        self.relay.attach(js)
        for g in self.groups.values():
            self._tasks.append(asyncio.create_task(self._consume(g, subs[g.name]), name=f"consume-{g.name}"))
        self.ready = True
        for g in self.groups.values():
            self.log.info("consuming %s (%s, %s)", ", ".join(sorted(g.subjects)), g.name, g.delivery)

    async def _durable(self, js: Any, g: _Group) -> Any:
        durable = f"{self.settings.name}-{g.name}"
        config = ConsumerConfig(durable_name=durable, ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL,
                                ack_wait=self.settings.ack_wait, max_deliver=-1, max_ack_pending=1000,
                                filter_subjects=sorted(g.subjects))
        await js.add_consumer(STREAM, config)  # creates it, or updates it if our subjects changed
        return await js.pull_subscribe_bind(consumer=durable, stream=STREAM)

    async def _core(self, g: _Group) -> asyncio.Queue[Msg]:
        queue: asyncio.Queue[Msg] = asyncio.Queue()
        for subject in sorted(g.subjects):
            await self.nc.subscribe(subject, cb=queue.put)
        return queue

    async def _consume(self, g: _Group, sub: Any) -> None:
        if g.delivery == "core":
            while True:
                await self._process(g, await sub.get())
        while True:
            try:
                msgs = await sub.fetch(FETCH_BATCH, timeout=1)
            except nats.errors.TimeoutError:
                continue
            except Exception as exc:  # disconnected or the server is restarting
                self.log.warning("fetch failed (%s), retrying", str(exc) or type(exc).__name__)
                await asyncio.sleep(0.25)
                continue
            if self.settings.bug == "ack_before_commit" and self.settings.name == "flights":
                # The bug: flights acks each fetched batch on receipt ("so it is not redelivered while we call
                # the airline"), before anything is committed or published.
                for msg in msgs:
                    await self._settle(msg, "ack")
            if g.concurrent:
                await asyncio.gather(*(self._process(g, msg) for msg in msgs))
            else:
                for msg in msgs:
                    await self._process(g, msg)

    async def _process(self, g: _Group, msg: Msg) -> None:
        try:
            event = json.loads(msg.data)
            if not (isinstance(event, dict) and isinstance(event.get("id"), str)
                    and isinstance(event.get("data"), dict) and isinstance(event["data"].get("trip_id"), str)):
                raise ValueError("not an event: needs a string id and data.trip_id")
        except ValueError as exc:
            # A message we can never process: drop it for good instead of redelivering it forever.
            self.log.error("dropping malformed message on %s: %s", msg.subject, exc)
            await self._settle(msg, "term")
            return
        sub = g.subjects[msg.subject]
        # double_screen: risk "never sees an event twice" (it did not use to sit behind JetStream), so it keeps
        # no record of what it processed, and its decision row is written after the outcome is queued.
        careless = self.settings.bug == "double_screen" and self.settings.name == "risk"
        if careless or not self._seen(event["id"]):
            try:
                extra = (await sub.prepare(event),) if sub.prepare is not None else ()
            except Transient as exc:
                await self._retry_later(msg, sub, event, exc)
                return
            except Exception:
                self.log.exception("preparing %s %s failed; it will be redelivered", msg.subject, event["id"])
                await self._settle(msg, "nak")
                return
            try:
                with transaction(self.db):
                    if careless:
                        add_to_outbox(self.db, sub.handler(self.db, event, *extra))
                    elif not self._seen(event["id"]):
                        self.db.execute("INSERT OR IGNORE INTO processed VALUES (?, ?, ?, ?)",
                                        (event["id"], msg.subject, trip_of(event), now_iso()))
                        add_to_outbox(self.db, sub.handler(self.db, event, *extra))
            except Exception:
                self.log.exception("handling %s %s failed; it will be redelivered", msg.subject, event["id"])
                await self._settle(msg, "nak")
                return
        # Publish what this event produced (or, for a redelivery, whatever is still unsent) before acking:
        # if we crash here the input comes back and the outbox is retried.
        await self.relay.flush()
        await self._settle(msg, "ack")

    async def _retry_later(self, msg: Msg, sub: _Subscription, event: Event, exc: Transient) -> None:
        self.log.warning("%s %s: %s; trying again in %.1fs", msg.subject, event["id"], exc, RETRY_DELAY)
        if sub.transient is not None:
            try:
                with transaction(self.db):
                    add_to_outbox(self.db, sub.transient(self.db, event, exc))
            except Exception:
                self.log.exception("recording the failed attempt of %s %s failed", msg.subject, event["id"])
            self.relay.kick()
            await self.relay.flush()
        await self._settle(msg, "nak", delay=RETRY_DELAY)

    def _seen(self, event_id: str) -> bool:
        return self.db.execute("SELECT 1 FROM processed WHERE event_id = ?", (event_id,)).fetchone() is not None

    async def _settle(self, msg: Msg, how: str, delay: float = 1.0) -> None:
        if not msg.reply or msg.is_acked:  # a core NATS message, or already acked
            return
        with contextlib.suppress(Exception):  # a lost ack only means a redelivery, which we dedupe
            if how == "nak":
                await msg.nak(delay=delay)
            else:
                await getattr(msg, how)()


async def _ensure_stream(js: Any) -> None:
    await ensure_stream(js, STREAM, STREAM_SUBJECTS)
