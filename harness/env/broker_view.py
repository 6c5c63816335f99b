"""The broker's view of a run: each service's own NATS connection, JetStream advisories and the server's
monitoring endpoints, for the consumption checks and for deciding when the system is quiescent.

* Every service reaches NATS through its own link. With chaos on, the link is the service's fault proxy
  (the embedded Toxiproxy-compatible server) and an observer is tapped onto it; without chaos (or in front of
  an external Toxiproxy) a plain observing link is put in its place. See :mod:`chaos.observe` for what is read.
* In embedded NATS every service gets its own NATS user, so ``/connz`` attributes each connection.
* A connection of the harness's own subscribes to ``$JS.EVENT.ADVISORY.CONSUMER.>`` (max deliveries reached,
  message terminated, nak, consumer created/deleted).
* ``/jsz?consumers=true`` and ``/connz?subs=true&auth=true`` are read from the monitoring port of each
  embedded node; with ``nats.url`` the consumers are read through the JetStream API instead.

Observations become history records (``events.jsonl``) with ``t`` on the recorder's clock; see docs/checks.md.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from sagaproof.chaos.observe import ObservingLinks, WireObserver, attach
from sagaproof.harness.env.ports import with_port

MAX_BUFFERED = 200_000  # observations kept while no recorder listens (e.g. `sagaproof up`)
_ADVISORY_TYPES = {"MAX_DELIVERIES": "max_deliveries", "MSG_TERMINATED": "terminated", "MSG_NAKED": "nak",
                   "CREATED": "consumer_created", "DELETED": "consumer_deleted"}


def service_users(services: list[str], harness_user: str) -> dict[str, tuple[str, str]]:
    """One NATS user (named after the service) and a fresh password per service."""
    out = {}
    for name in services:
        user = name if name != harness_user else f"{name}-service"
        out[name] = (user, secrets.token_urlsafe(12))
    return out


class BrokerView:
    """What the broker and the services' links show during a run; owned by a running System."""

    def __init__(self, system: Any) -> None:
        self.system = system
        self.observers: dict[str, WireObserver] = {}
        self.users: dict[str, tuple[str, str]] = {}
        self.upstreams: dict[str, str] = {}  # service -> where its link leads (a NATS node, or its fault proxy)
        self.problems: list[str] = []
        self._links: ObservingLinks | None = None
        self._nc: Any = None
        self._pump: Any = None
        self._recorder: Any = None
        self._buffer: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ set-up
    def links(self, service_urls: dict[str, str]) -> dict[str, str]:
        """Observe every service's link; returns the NATS URL each service is given (with its own user).

        A TLS connection cannot be read on the way (and a plain link would break its host name check), so with
        ``[nats] tls_*`` or a ``tls://`` URL the services connect as before and are not observed."""
        nats_spec = self.system.spec.nats
        if nats_spec.tls_ca or nats_spec.tls_cert or any(u.startswith("tls://") for u in service_urls.values()):
            self.problems.append("the services reach NATS over TLS, which cannot be read on the way: the broker "
                                 "checks see only the server's side")
            return dict(service_urls)
        loop = self.system.loop
        fault_server = self.system.proxy_server
        out = {}
        for name, url in service_urls.items():
            observer = WireObserver(name)
            self.observers[name] = observer
            parts = urlsplit(url)
            hostport = parts.netloc.rpartition("@")[2]
            self.upstreams[name] = hostport
            proxy = None
            if fault_server is not None and name in self.system.proxy_names:
                proxy = fault_server.proxies.proxies.get(self.system.proxy_names[name])
            if proxy is not None:
                attach(proxy, observer)
            else:
                if self._links is None:
                    self._links = loop.run(_make_links(), timeout=15)
                links, upstream = self._links, hostport
                hostport = with_port(
                    self.system.ports,
                    lambda port: str(loop.run(links.add(name, upstream, observer, f"127.0.0.1:{port}"),  # noqa: B023
                                              timeout=15)),
                    lambda old, new, why: self.system.port_retried(f"link:{name}", old, new, why))  # noqa: B023
            user, password = self.users.get(name) or (parts.username, parts.password)
            auth = f"{user}:{password or ''}@" if user else ""
            out[name] = f"nats://{auth}{hostport}"
        return out

    def start(self, urls: list[str]) -> None:
        """Subscribe to the JetStream consumer advisories, and move the links' observations into the history
        every half second (on the system's loop)."""
        self.system.loop.run(self._start(urls), timeout=30)

    async def _start(self, urls: list[str]) -> None:
        import asyncio

        import nats
        from sagaproof.harness.env.aio import quiet_nats_error

        self._nc = await nats.connect(servers=urls, name="sagaproof-broker-view", max_reconnect_attempts=-1,
                                      reconnect_time_wait=0.2, connect_timeout=5, error_cb=quiet_nats_error,
                                      **getattr(self.system, "nats_options", {}))
        await self._nc.subscribe("$JS.EVENT.ADVISORY.CONSUMER.>", cb=self._on_advisory)
        await self._nc.flush()

        async def pump() -> None:
            while True:
                await asyncio.sleep(0.5)
                self.flush()

        self._pump = asyncio.get_running_loop().create_task(pump())

    def flush(self) -> None:
        """Move what the links observed so far into the history (or the buffer, before a recorder listens).

        Deliveries and answers go in as one ``wire`` record per service and flush, in compact columns (a run
        can have many; see docs/reports.md), the rarer observations as records of their own."""
        recorder = self._recorder
        t0 = recorder.t0 if recorder is not None else None  # once a recorder listens, rows come on its clock
        for name, observer in list(self.observers.items()):
            events, deliveries, answers = observer.drain_wire(t0)
            for event in events:
                self._on_event(event)
            if deliveries or answers:
                self._on_event(wire_event(name, deliveries, answers, t0))

    async def _on_advisory(self, msg: Any) -> None:
        tokens = msg.subject.split(".")
        kind = _ADVISORY_TYPES.get(tokens[4]) if len(tokens) > 4 else None
        if kind is None:
            return
        try:
            data = json.loads(msg.data)
        except ValueError:
            data = {}
        event = {"kind": "advisory", "type": kind, "stream": data.get("stream"), "consumer": data.get("consumer"),
                 "stream_seq": data.get("stream_seq"), "deliveries": data.get("deliveries"), "wall": time.time()}
        if data.get("reason"):
            event["reason"] = data["reason"]
        self._on_event(event)

    def close(self) -> None:
        """Close the advisory connection and the observing links (on the system's loop); idempotent."""
        loop = self.system.loop
        if loop is None:
            return
        pump, self._pump = self._pump, None
        if pump is not None:
            loop.loop.call_soon_threadsafe(pump.cancel)
        nc, self._nc = self._nc, None
        links, self._links = self._links, None
        for what in (nc, links):
            if what is None:
                continue
            try:
                loop.run(what.close(), timeout=10)
            except Exception as exc:  # noqa: BLE001 - best effort on the way down
                self.problems.append(f"closing the broker view: {type(exc).__name__}: {exc}")

    # ------------------------------------------------------------------ history
    def attach_recorder(self, recorder: Any) -> None:
        """Send every observation so far, and every later one, into `recorder`'s history."""
        self.flush()
        with self._lock:
            self._recorder = recorder
            buffered, self._buffer = self._buffer, []
            for event in buffered:
                recorder.add(_record(event, recorder.t0))

    def _on_event(self, event: dict[str, Any]) -> None:
        with self._lock:
            if self._recorder is not None:
                self._recorder.add(_record(event, self._recorder.t0))
            elif len(self._buffer) < MAX_BUFFERED:
                self._buffer.append(event)
            elif len(self._buffer) == MAX_BUFFERED:
                self._buffer.append(event)
                self.problems.append(f"more than {MAX_BUFFERED} observations before any recorder started; "
                                     f"later ones were not kept")

    def record_snapshot(self) -> dict[str, Any]:
        """Read the server's view now and add it to the history as a ``broker_snapshot`` record."""
        self.flush()
        snap = {"kind": "broker_snapshot", "wall": time.time(), "consumers": self.consumers(),
                "connections": self.connections(),
                "links": {name: {"connections": o.connections, "open": o.open_connections,
                                 "reconnects": max(0, o.connections - 1), "problems": list(o.problems),
                                 "core": o.core_counts()}
                          for name, o in self.observers.items()}}
        self._on_event(snap)
        return snap

    # ------------------------------------------------------------------ the server's view
    def _monitor_ports(self) -> list[int]:
        nats = self.system.nats
        return [n.http_port for n in nats.nodes] if nats is not None else []

    def consumers(self) -> list[dict[str, Any]]:
        """Every consumer the server knows: stream, name, durable, num_pending, num_ack_pending,
        num_redelivered, num_waiting, delivered/ack_floor stream sequences, ack_wait (s), filter subjects."""
        ports = self._monitor_ports()
        if ports:
            return _merge_jsz([_get_json(f"http://127.0.0.1:{p}/jsz?consumers=true&config=true") for p in ports])
        return self._consumers_via_api()

    def _consumers_via_api(self) -> list[dict[str, Any]]:
        if self._nc is None:
            return []

        async def read() -> list[dict[str, Any]]:
            js = self._nc.jetstream(timeout=5)
            out = []
            wanted = {s.name for s in self.system.spec.nats.streams}
            for stream in await js.streams_info():
                if wanted and stream.config.name not in wanted:
                    continue  # a shared cluster: only the run's streams
                for info in await js.consumers_info(stream.config.name):
                    cfg = info.config
                    out.append({"stream": stream.config.name, "name": info.name,
                                "durable": bool(cfg.durable_name), "num_pending": info.num_pending or 0,
                                "num_ack_pending": info.num_ack_pending or 0,
                                "num_redelivered": info.num_redelivered or 0, "num_waiting": info.num_waiting or 0,
                                "delivered_stream_seq": info.delivered.stream_seq if info.delivered else 0,
                                "ack_floor_stream_seq": info.ack_floor.stream_seq if info.ack_floor else 0,
                                "ack_wait": cfg.ack_wait or 30.0,
                                "filter_subjects": list(cfg.filter_subjects or ([cfg.filter_subject]
                                                                                if cfg.filter_subject else []))})
            return out

        try:
            found: list[dict[str, Any]] = self.system.loop.run(read(), timeout=15)
            return found
        except Exception as exc:  # noqa: BLE001
            self.problems.append(f"could not read the consumers through the JetStream API ({exc})")
            return []

    def connections(self) -> list[dict[str, Any]]:
        """Every client connection the server has (embedded NATS only): user, name, subscriptions, message counts."""
        out = []
        for port in self._monitor_ports():
            data = _get_json(f"http://127.0.0.1:{port}/connz?subs=true&auth=true")
            for c in data.get("connections") or []:
                out.append({"node": port, "cid": c.get("cid"), "user": c.get("authorized_user"),
                            "name": c.get("name"), "subscriptions": list(c.get("subscriptions_list") or []),
                            "in_msgs": c.get("in_msgs", 0), "out_msgs": c.get("out_msgs", 0),
                            "pending_bytes": c.get("pending_bytes", 0)})
        return out

    # ------------------------------------------------------------------ quiescence
    def quiescence(self, quiet: float) -> tuple[bool, str]:
        """(True, "") when nothing is in flight anywhere the broker can see, else (False, the first reason).

        Quiescent means: every service that ever connected is connected; no service holds a delivery it has
        not answered; no link carried activity for `quiet` seconds; every durable consumer a service uses has
        nothing pending and nothing awaiting an ack (an ack wait still running is a redelivery still to come).
        """
        now = time.monotonic()
        used: set[tuple[str, str]] = set()
        for name, obs in self.observers.items():
            if obs.ever_connected and obs.open_connections <= 0:
                return False, f"service '{name}' is not connected to NATS"
            if obs.unread:
                return False, f"service '{name}''s link has {obs.unread} bytes not read yet"
            held = obs.held()
            if held:
                (stream, consumer, seq), delivered = next(iter(held.items()))
                return False, (f"service '{name}' holds {len(held)} unanswered deliveries (e.g. {stream} "
                               f"sequence {seq} from consumer {consumer}, delivery {delivered})")
            if now - obs.last_activity < quiet:
                return False, f"service '{name}''s link is busy"
            used.update(obs.consumers)
            used.update(obs.delivering_consumers())
        # Without a service observed on its link (attach mode, TLS), every durable consumer of the run counts.
        for c in self.consumers():
            if not c.get("durable") or (used and (c["stream"], c["name"]) not in used):
                continue
            if c.get("num_pending") or c.get("num_ack_pending"):
                return False, (f"consumer {c['name']} of stream {c['stream']} has {c.get('num_pending', 0)} "
                               f"pending and {c.get('num_ack_pending', 0)} awaiting an ack")
        return True, ""


async def _make_links() -> ObservingLinks:
    return ObservingLinks()


def _get_json(url: str) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            data = json.load(resp)
            return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _merge_jsz(pages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per (stream, consumer) over every node's /jsz page, the leader's when it says which it is."""
    found: dict[tuple[str, str], tuple[bool, dict[str, Any]]] = {}
    for page in pages:
        server = page.get("server_id")
        for account in page.get("account_details") or []:
            for stream in account.get("stream_detail") or []:
                for c in stream.get("consumer_detail") or []:
                    cfg = c.get("config") or {}
                    key = (str(c.get("stream_name") or stream.get("name")), str(c.get("name")))
                    leader = (c.get("cluster") or {}).get("leader")
                    is_leader = leader is None or leader == server or leader == page.get("server_name")
                    ack_wait = cfg.get("ack_wait")
                    entry = {"stream": key[0], "name": key[1], "durable": bool(cfg.get("durable_name")) or not cfg,
                             "num_pending": c.get("num_pending", 0), "num_ack_pending": c.get("num_ack_pending", 0),
                             "num_redelivered": c.get("num_redelivered", 0), "num_waiting": c.get("num_waiting", 0),
                             "delivered_stream_seq": (c.get("delivered") or {}).get("stream_seq", 0),
                             "ack_floor_stream_seq": (c.get("ack_floor") or {}).get("stream_seq", 0),
                             "ack_wait": ack_wait / 1e9 if isinstance(ack_wait, int | float) else 30.0,
                             "filter_subjects": list(cfg.get("filter_subjects") or
                                                     ([cfg["filter_subject"]] if cfg.get("filter_subject") else []))}
                    if key not in found or (is_leader and not found[key][0]):
                        found[key] = (is_leader, entry)
    return [entry for _, entry in found.values()]


def wire_event(service: str, deliveries: dict[str, Any] | None, answers: dict[str, Any] | None,
               t0: float | None) -> dict[str, Any]:
    """The ``wire`` observation of one flush of a service's link: its deliveries and answers in columns
    (:meth:`WireObserver.drain_wire`), timed by the first of them; `t0` is what their times count from (None:
    they are walls)."""
    first = min(([deliveries["t"][0]] if deliveries else []) + ([answers["t"][0]] if answers else []))
    event: dict[str, Any] = {"kind": "wire", "service": service, "deliveries": deliveries or {},
                             "answers": answers or {}}
    if t0 is None:
        event["wall"] = first
    else:
        event["t"] = first
        event["_rows_t0"] = t0
    return event


def _shift(columns: Any, by: float, t0: float | None = None) -> None:
    """Move a wire record's times (columns, or rows of older histories) by `by`; with `t0`, then make them
    seconds since `t0` (rounded to the µs, never negative)."""
    if not columns:
        return
    if isinstance(columns, dict):
        times = [t + by for t in columns.get("t") or ()]
        columns["t"] = times if t0 is None else [round(t - t0, 6) if t > t0 else 0.0 for t in times]
    else:
        for row in columns or ():
            row[0] += by
            if t0 is not None:
                row[0] = round(max(0.0, row[0] - t0), 6)


def _record(event: dict[str, Any], t0: float) -> dict[str, Any]:
    rec = dict(event)
    rows_t0 = rec.pop("_rows_t0", None)
    if rows_t0 == t0:  # already on this clock (times and t), as the links drained it
        return rec
    wire = rec.get("kind") == "wire"
    if rows_t0 is not None:  # on another recorder's clock: back to walls
        rec["wall"] = rec.pop("t") + rows_t0
        for columns in (rec.get("deliveries"), rec.get("answers")):
            _shift(columns, rows_t0)
    rec["t"] = round(max(0.0, float(rec.pop("wall", time.time())) - t0), 6)  # set-up before recording: t=0
    if wire:  # a wire record's deliveries and answers carry their own times
        for columns in (rec.get("deliveries"), rec.get("answers")):
            _shift(columns, 0.0, t0)
    return rec
