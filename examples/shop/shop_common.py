"""Shared plumbing of the shop's services: settings, SQLite store, transactional outbox, JetStream
consumer loop and a tiny JSON-over-HTTP server.

Every shop service is a small module that creates a :class:`ShopService`, registers one handler per
event subject it consumes (and, for `order`, its HTTP routes) and calls :meth:`ShopService.run`.
The plumbing here gives each of them the same delivery guarantees:

* Inputs come from a durable JetStream pull consumer with explicit ack.  A message is acked only
  after the local SQLite transaction that applied it has committed *and* the events it produced
  have been accepted by JetStream, so a crash at any point leads to a redelivery, never a loss.
* Each input's ``event_id`` is recorded in the ``processed`` table in the same transaction as its
  effect, so a redelivered or duplicated event is applied once (dedupe by event id).
* Outgoing events are written to the ``outbox`` table in that same transaction and published by a
  relay with ``Nats-Msg-Id: <event_id>``, retried until JetStream acks them; unsent rows are
  published again at start-up.  JetStream drops a retried copy inside its duplicate window, and
  consumers drop any later copy by event id.
* The NATS connection reconnects forever and pings every 2 s, so a cut or stalled link is noticed
  and healed without a restart.

Only the standard library and nats-py are used, so a service starts in well under a second.
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
    raise SystemExit(f"shop_common: the examples' service kit ({_KIT / 'servicekit.py'}) was not found ({exc}); copy "
                     f"examples/_lib beside the example's directory") from None

__all__ = ["DUPLICATE_WINDOW", "Event", "HttpResult", "HttpServer", "OutboxRelay", "Request", "Route", "add_to_outbox",
           "new_event", "now_iso", "open_db", "transaction", "Settings", "ShopService"]

STREAM = "SHOP"
STREAM_SUBJECTS = ["orders.>", "payments.>", "inventory.>", "shipping.>"]
FETCH_BATCH = 10

Handler = Callable[..., list[Event]]
Prepare = Callable[[Event], Awaitable[Any]]


# --------------------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Settings:
    """What a service reads from its environment (see the shop's README for the full list)."""

    name: str
    port: int
    nats_url: str
    data_dir: Path
    bug: str
    ack_wait: float
    nats_options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_env(cls, name: str, default_port: int) -> Settings:
        """Read ``SHOP_PORT``, ``NATS_URL``, ``DATA_DIR``, ``SHOP_BUG`` and ``SHOP_ACK_WAIT``."""
        env = os.environ
        try:
            port = int(env.get("SHOP_PORT", default_port))
            ack_wait = float(env.get("SHOP_ACK_WAIT", "2"))
        except ValueError as exc:
            raise SystemExit(f"{name}: SHOP_PORT and SHOP_ACK_WAIT must be numbers ({exc}).") from None
        return cls(
            name=name,
            port=port,
            nats_url=env.get("NATS_URL", "nats://127.0.0.1:4222"),
            data_dir=Path(env.get("DATA_DIR", f".shop-data/{name}")),
            bug=env.get("SHOP_BUG", ""),
            ack_wait=ack_wait,
            nats_options=_nats_access(env),
        )


def _nats_access(env: Any) -> dict[str, Any]:
    """nats-py connect options from ``NATS_CREDS`` (a .creds file), ``NATS_NKEY`` (a seed file) and
    ``NATS_TLS_CA`` / ``NATS_TLS_CERT`` / ``NATS_TLS_KEY``, for a NATS that asks for them (none by default)."""
    options: dict[str, Any] = {}
    if env.get("NATS_CREDS"):
        options["user_credentials"] = env["NATS_CREDS"]
    if env.get("NATS_NKEY"):
        options["nkeys_seed"] = env["NATS_NKEY"]
    if env.get("NATS_TLS_CA") or env.get("NATS_TLS_CERT"):
        import ssl

        ctx = ssl.create_default_context(cafile=env.get("NATS_TLS_CA") or None)
        if env.get("NATS_TLS_CERT"):
            ctx.load_cert_chain(env["NATS_TLS_CERT"], env.get("NATS_TLS_KEY") or None)
        options["tls"] = ctx
    return options


def new_event(type_: str, order_id: str, *, caused_by: Event | None = None, **payload: Any) -> Event:
    """Build an event: the envelope (fresh ``event_id``, ``type``, ``order_id``, ``occurred_at`` and,
    when it reacts to another event, that event's id as ``causation_id``) followed by its payload."""
    event: Event = {
        "event_id": str(uuid.uuid4()),
        "type": type_,
        "order_id": order_id,
        "occurred_at": now_iso(),
    }
    if caused_by is not None:
        event["causation_id"] = caused_by["event_id"]
    event.update(payload)
    return event


# ------------------------------------------------------------------------------------------ store

_BASE_SCHEMA = """
CREATE TABLE IF NOT EXISTS processed (
    event_id TEXT PRIMARY KEY, type TEXT NOT NULL, order_id TEXT NOT NULL, processed_at TEXT NOT NULL);
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
        db.execute(
            "INSERT INTO outbox (event_id, subject, body) VALUES (?, ?, ?)",
            (event["event_id"], event["type"], json.dumps(event, separators=(",", ":"))),
        )


# ---------------------------------------------------------------------------------------- service


@dataclass
class _Subscription:
    handler: Handler
    prepare: Prepare | None = None


@dataclass
class ShopService:
    """One shop service: its store, its consumer, its outbox relay and its HTTP API.

    ``delivery`` is ``"durable"`` (the JetStream pull consumer described in the module docstring)
    or ``"core"`` (a plain NATS subscription: no ack, no redelivery, nothing received while the
    service is down).  ``dedupe=False`` skips the processed-event check.
    """

    settings: Settings
    schema: str = ""
    delivery: str = "durable"
    dedupe: bool = True
    ack_early: bool = False
    handlers: dict[str, _Subscription] = field(default_factory=dict)
    state_fn: Callable[[sqlite3.Connection], dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                            format=f"%(asctime)s {self.settings.name} %(levelname)s %(message)s")
        self.log = logging.getLogger(self.settings.name)
        if self.settings.bug == "ack_before_commit":
            # The bug lives in this shared loop, so every service has it: each fetched batch is
            # acked on receipt ("so it is not redelivered while we work"), before anything commits.
            self.ack_early = True
        self.db = open_db(self.settings.data_dir / f"{self.settings.name}.db", self.schema)
        self.relay = OutboxRelay(self.db, self.log)
        self.http = HttpServer(self.log)
        self.http.add("GET", "/health", self._health)
        self.http.add("GET", "/state", self._state)
        self.ready = False
        self.nc: Any = None

    # -- registration

    def on(self, subject: str, handler: Handler, *, prepare: Prepare | None = None) -> None:
        """Handle events on ``subject`` with ``handler(db, event)``, called inside the transaction
        that also records the event as processed and queues the returned events.

        ``prepare(event)`` is an optional coroutine awaited *before* the transaction (for calls to
        the outside world); its result becomes a third argument of ``handler``.
        """
        self.handlers[subject] = _Subscription(handler, prepare)

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
        try:
            asyncio.run(self._main())
        except KeyboardInterrupt:
            pass

    async def _main(self) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        server = await self.http.start(self.settings.port)
        self.log.info("HTTP on 127.0.0.1:%d", server.sockets[0].getsockname()[1])
        tasks = [asyncio.create_task(self.relay.run(), name="relay"),
                 asyncio.create_task(self._consume(), name="consume")]
        await stop.wait()
        self.log.info("stopping")
        server.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
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

        # max_reconnect_attempts=-1 also makes the *first* connect retry forever, so a service
        # started before the broker (or behind a cut proxy) simply waits.
        attempts = -1
        if self.settings.bug == "no_reconnect" and self.settings.name == "inventory":
            # The bug: "don't hammer a broker that is down" -- inventory gives up after three tries, and
            # from then on its fetch loop only logs that the connection is closed.
            attempts = 3
        return await nats.connect(
            self.settings.nats_url, name=self.settings.name, max_reconnect_attempts=attempts,
            reconnect_time_wait=0.25, connect_timeout=2, ping_interval=2, max_outstanding_pings=2,
            error_cb=on_error, disconnected_cb=on_disconnect, reconnected_cb=on_reconnect,
            **self.settings.nats_options,
        )

    async def _setup(self) -> Any:
        """Connect, make sure the stream and this service's consumer exist, and subscribe."""
        self.nc = await self._connect()
        js = self.nc.jetstream(timeout=3)
        while True:
            try:
                await _ensure_stream(js)
                if self.delivery == "core":
                    sub: Any = asyncio.Queue()
                    for subject in sorted(self.handlers):
                        await self.nc.subscribe(subject, cb=sub.put)
                else:
                    sub = await self._durable(js)
                break
            except Exception as exc:  # the broker may still be starting, or be cut off
                self.log.warning("setting up JetStream failed (%s), retrying", str(exc) or type(exc).__name__)
                await asyncio.sleep(0.5)
        self.relay.attach(js)
        return sub

    async def _durable(self, js: Any) -> Any:
        config = ConsumerConfig(
            durable_name=self.settings.name,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=self.settings.ack_wait,
            max_deliver=-1,
            max_ack_pending=1000,
            filter_subjects=sorted(self.handlers),
        )
        # add_consumer creates the durable, or updates it if our subjects changed since last run.
        await js.add_consumer(STREAM, config)
        return await js.pull_subscribe_bind(consumer=self.settings.name, stream=STREAM)

    async def _consume(self) -> None:
        sub = await self._setup()
        self.ready = True
        self.log.info("consuming %s (%s)", ", ".join(sorted(self.handlers)) or "nothing", self.delivery)
        if self.delivery == "core":
            while True:
                await self._process(await sub.get())
        while True:
            try:
                msgs = await sub.fetch(FETCH_BATCH, timeout=1)
            except nats.errors.TimeoutError:
                continue
            except Exception as exc:  # disconnected or the server is restarting
                self.log.warning("fetch failed (%s), retrying", str(exc) or type(exc).__name__)
                await asyncio.sleep(0.25)
                continue
            if self.ack_early:
                for msg in msgs:
                    await msg.ack()
            for msg in msgs:
                await self._process(msg)

    async def _process(self, msg: Msg) -> None:
        try:
            event = json.loads(msg.data)
            if not (isinstance(event, dict) and isinstance(event.get("event_id"), str)
                    and isinstance(event.get("order_id"), str)):
                raise ValueError("not an event: needs string fields event_id and order_id")
        except ValueError as exc:
            # A message we can never process: drop it for good instead of redelivering it forever.
            self.log.error("dropping malformed message on %s: %s", msg.subject, exc)
            await self._settle(msg, "term")
            return
        sub = self.handlers[msg.subject]
        seen = self.dedupe and self._seen(event["event_id"])
        if not seen:
            try:
                extra = (await sub.prepare(event),) if sub.prepare is not None else ()
                with transaction(self.db):
                    if self.dedupe and self._seen(event["event_id"]):
                        out: list[Event] = []
                    else:
                        self.db.execute(
                            "INSERT OR IGNORE INTO processed VALUES (?, ?, ?, ?)",
                            (event["event_id"], msg.subject, event["order_id"], now_iso()))
                        out = sub.handler(self.db, event, *extra)
                        add_to_outbox(self.db, out)
            except Exception:
                self.log.exception("handling %s %s failed; it will be redelivered", msg.subject,
                                   event["event_id"])
                await self._settle(msg, "nak")
                return
        # Publish what this event produced (or, for a redelivery, whatever is still unsent) before
        # acking: if we crash here the input comes back and the outbox is retried.
        await self.relay.flush()
        await self._settle(msg, "ack")

    def _seen(self, event_id: str) -> bool:
        return self.db.execute("SELECT 1 FROM processed WHERE event_id = ?", (event_id,)).fetchone() is not None

    async def _settle(self, msg: Msg, how: str) -> None:
        if not msg.reply or msg.is_acked:  # a core NATS message, or already acked
            return
        with contextlib.suppress(Exception):  # a lost ack only means a redelivery, which we dedupe
            if how == "nak":
                await msg.nak(delay=1)
            else:
                await getattr(msg, how)()


async def _ensure_stream(js: Any) -> None:
    await ensure_stream(js, STREAM, STREAM_SUBJECTS)
