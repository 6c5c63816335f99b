"""Checks over the broker's view: did every consumer take what its contract says it receives, and how?

Pure functions over a recorded history (``events.jsonl`` records: messages with their stream sequence, the
links' ``delivery``/``ack``/``nats_sub``/``js_consumer`` observations, ``advisory`` records and faults; see
:mod:`harness.env.broker_view`). Nothing here starts anything. Three checks, reported like the saga checks (what
was expected, what happened, the events with the faults active at each, the command that reproduces it):

``delivery guarantee``
    A service reads a subject that a stream captures through a plain core-NATS subscription: at most once,
    so whatever is published while it is away (killed, paused, cut off, reconnecting) is lost for it. A
    contract states that this is intended with ``x-sagaproof-delivery: at-most-once`` on the receive
    operation, which silences the finding (and the consumption check for that subject).
``consumption``
    Every message stored on a subject a service's contract says it receives is acknowledged by that service
    at least once by the end of the run (by quiescence).
``dead letters``
    Messages a consumer gave up on: terminated (``+TERM``) or dead-lettered (``max_deliver`` reached).

:func:`matrix` and :func:`coverage` summarise the same history for the report: per subject and consuming
service the messages, acks, redeliveries, terminations and faults seen; per stream whether any consumer
ever saw a redelivery (if none did, a non-idempotent consumer could not have been caught by the run).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sagaproof.chaos.observe import wire_rows

from sagaproof.subjects import matches, overlaps

BROKER_CHECKS: tuple[str, ...] = ("delivery guarantee", "consumption", "dead letters")
AT_MOST_ONCE = "at-most-once"
_SYSTEM_PREFIXES = ("_INBOX.", "$JS.", "$SYS.", "_R_.", "$KV.", "$O.")
MAX_DETAILS = 30


@dataclass(frozen=True)
class Receive:
    """A service's contract says it receives `pattern` (with an optional stated delivery intent)."""

    service: str
    pattern: str
    intent: str | None = None


def receives_from_contracts(contract_set: Any) -> list[Receive]:
    """Every (service, subject pattern, intent) a contract set declares as received."""
    if contract_set is None:
        return []
    out = []
    for ch in contract_set.channels.values():
        for svc in ch.consumers:
            out.append(Receive(svc, ch.subject, getattr(ch, "delivery", {}).get(svc)))
    return out


@dataclass
class BrokerFinding:
    """One thing a broker check found, readable on its own (the saga checks' failure format)."""

    check: str
    service: str
    subject: str
    expected: str
    detail: str
    stream: str | None = None
    stream_seq: int | None = None
    saga: str | None = None
    key: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    faults_active: list[list[str]] = field(default_factory=list)
    faults: dict[str, dict[str, Any]] = field(default_factory=dict)
    fix: str = ""
    repro: str | None = None
    in_flight: bool = False  # consumption: it may still be taken while the system moves (not in to_dict)

    @property
    def title(self) -> str:
        where = f" {self.stream} sequence {self.stream_seq}" if self.stream_seq is not None else ""
        saga = f" (saga '{self.saga}' key {self.key})" if self.key is not None else ""
        return f"{self.check.capitalize()} violated: service '{self.service}', {self.subject}{where}{saga}"

    def _fault_label(self, fid: str) -> str:
        f = self.faults.get(fid) or {}
        target = f.get("target")
        return f"{fid} {f.get('kind', '?')}" + (f" {target}" if target else "")

    def message(self, repro: str | None = None) -> str:
        """The human text: what was expected, what happened, the events with their faults, the fix, the command."""
        lines = [self.title, f"  expected: {self.expected}", f"  but:      {self.detail}"]
        if self.events:
            lines.append(f"  events seen ({len(self.events)}):")
            width = max(len(str(e.get("service") or "?")) for e in self.events)
            for i, e in enumerate(self.events):
                fa = self.faults_active[i] if i < len(self.faults_active) else []
                faults = ("  faults: " + ", ".join(self._fault_label(f) for f in fa)) if fa else ""
                lines.append(f"     t={float(e.get('t', 0.0)):.3f}s  {str(e.get('service') or '?'):<{width}}  "
                             f"{e.get('what')}{faults}")
        if self.fix:
            lines.append(f"  fix:      {self.fix}")
        cmd = repro or self.repro
        if cmd:
            lines.append(f"  reproduce: {cmd}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.check, "service": self.service, "subject": self.subject, "title": self.title,
                "expected": self.expected, "detail": self.detail, "stream": self.stream,
                "stream_seq": self.stream_seq, "saga": self.saga, "key": self.key, "events": self.events,
                "faults_active": self.faults_active, "faults": self.faults, "fix": self.fix, "repro": self.repro,
                "message": self.message()}


@dataclass
class BrokerReport:
    """What the broker checks found, and the summaries the report shows."""

    findings: dict[str, list[BrokerFinding]] = field(default_factory=lambda: {c: [] for c in BROKER_CHECKS})
    summaries: dict[str, str] = field(default_factory=dict)
    matrix: list[dict[str, Any]] = field(default_factory=list)
    coverage: dict[str, Any] = field(default_factory=dict)
    services: dict[str, dict[str, Any]] = field(default_factory=dict)
    not_taken: dict[tuple[str, str], str] = field(default_factory=dict)  # (service, pattern) -> "none" | "some"
    # check -> ("not judged" | "not applicable", why) for a check that judged nothing (passed otherwise)
    unjudged: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """No finding, and no check that applied had nothing to judge."""
        return not any(self.findings.values()) and not any(st == "not judged" for st, _ in self.unjudged.values())

    def with_repro(self, command: str) -> BrokerReport:
        for group in self.findings.values():
            for f in group:
                if not f.repro:
                    f.repro = command
        return self

    def outcomes(self) -> list[Any]:
        """One :class:`harness.checks.results.CheckOutcome` per broker check, in ``BROKER_CHECKS`` order."""
        from sagaproof.harness.checks.results import CheckOutcome

        out = []
        for name in BROKER_CHECKS:
            found = self.findings[name]
            if not found and name in self.unjudged:
                status, why = self.unjudged[name]
                out.append(CheckOutcome.not_judged(name, why) if status == "not judged"
                           else CheckOutcome.not_applicable(name, why))
                continue
            details = [f.message() for f in found[:MAX_DETAILS]]
            if len(found) > MAX_DETAILS:
                details.append(f"... and {len(found) - MAX_DETAILS} more (see report.json)")
            out.append(CheckOutcome(name, not found, self.summaries.get(name, ""), details))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "summaries": self.summaries,
                "findings": {k: [f.to_dict() for f in v[:500]] for k, v in self.findings.items()},
                "counts": {k: len(v) for k, v in self.findings.items()}, "matrix": self.matrix,
                "coverage": self.coverage, "services": self.services,
                "not_taken": [{"service": s, "subject": p, "how": h} for (s, p), h in self.not_taken.items()]}


class _Rec:
    """A compact record the checks index by the hundred thousand: slots, not a dict, read like one."""

    __slots__: tuple[str, ...] = ()

    def __getitem__(self, name: str) -> Any:
        return getattr(self, name)

    def get(self, name: str, default: Any = None) -> Any:
        return getattr(self, name, default)


class _Stored(_Rec):
    __slots__ = ("t", "subject", "producer", "saga", "key", "faults")

    def __init__(self, t: float, subject: Any, producer: Any, saga: str | None, key: str | None,
                 faults: tuple[str, ...]) -> None:
        self.t, self.subject, self.producer, self.saga, self.key, self.faults = t, subject, producer, saga, key, faults


class _Delivery(_Rec):
    __slots__ = ("t", "service", "conn", "subject", "sid", "stream", "consumer", "delivered", "stream_seq",
                 "consumer_seq", "pending", "faults")

    def __init__(self, t: float, service: str, conn: Any, subject: Any, sid: Any, stream: str, consumer: str,
                 delivered: Any, stream_seq: int, consumer_seq: Any, pending: Any, faults: tuple[str, ...]) -> None:
        self.t, self.service, self.conn, self.subject, self.sid = t, service, conn, subject, sid
        self.stream, self.consumer, self.delivered, self.stream_seq = stream, consumer, delivered, stream_seq
        self.consumer_seq, self.pending, self.faults = consumer_seq, pending, faults


class _Answer(_Rec):
    __slots__ = ("t", "service", "conn", "how", "stream", "consumer", "delivered", "stream_seq", "reason", "faults")

    def __init__(self, t: float, service: str, conn: Any, how: str, stream: str, consumer: str, delivered: Any,
                 stream_seq: int, reason: Any, faults: tuple[str, ...]) -> None:
        self.t, self.service, self.conn, self.how, self.stream = t, service, conn, how, stream
        self.consumer, self.delivered, self.stream_seq, self.faults = consumer, delivered, stream_seq, faults
        self.reason = reason or None


class _History:
    """One pass over the records: what the checks and summaries need, indexed compactly.

    The history itself is streamed, never held: only one small record per stored message, delivery and answer
    is kept (slots, with their repeated names shared), so memory grows by a few hundred bytes per message.
    """

    def __init__(self, records: Iterable[dict[str, Any]], sagas: Mapping[str, Any]) -> None:
        saga_of: dict[str, list[tuple[str, Any]]] = defaultdict(list)
        for name, spec in sagas.items():
            subjects = {spec.start, *spec.success, *spec.abort}
            for st in spec.steps:
                subjects.update(s for s in (st.success, st.failure, st.compensation) if s)
            for s in subjects:
                saga_of[s].append((name, spec))
        self.stored: dict[tuple[str, int], _Stored] = {}
        self.deliveries: dict[tuple[str, str, int], list[_Delivery]] = defaultdict(list)
        self.answers: dict[tuple[str, str, int], list[_Answer]] = defaultdict(list)
        self.core: dict[tuple[str, str], int] = defaultdict(int)
        self.subs: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.consumers: dict[str, dict[tuple[str, str], dict[str, Any]]] = defaultdict(dict)
        self.js_sids: set[tuple[str, int, str]] = set()  # (service, conn, sid) that carried JetStream deliveries
        self.connects: dict[str, int] = defaultdict(int)
        self.advisories: list[dict[str, Any]] = []
        self.queues: dict[str, dict[str, Any]] = {}  # work queues: read from publishes, sequences known at the end
        self.snapshot: dict[str, Any] | None = None
        self.faults: dict[str, dict[str, Any]] = {}
        self.fault_windows: list[tuple[str, float, float | None]] = []
        active: dict[str, None] = {}
        snap: tuple[str, ...] = ()
        starts: dict[str, float] = {}
        if iter(records) is records:  # a one-shot iterator: the fault timeline needs a pass of its own
            records = list(records)
        timeline = _FaultTimeline(records)  # rows of wire records carry their own times
        names: dict[Any, Any] = {}

        def _n(x: Any) -> Any:  # one object per distinct service, stream, consumer and subject name
            return names.setdefault(x, x)

        for rec in records:
            kind = rec.get("kind")
            t = float(rec.get("t") or 0.0)
            if kind == "message":
                stream, seq = rec.get("stream"), rec.get("stream_seq")
                if stream is None or seq is None:
                    continue
                raw = rec.get("data")
                data: dict[str, Any] = raw if isinstance(raw, dict) else {}
                saga = key = None
                for saga_name, saga_spec in saga_of.get(rec.get("subject") or "", ()):
                    value = saga_spec.key_of(data) if hasattr(saga_spec, "key_of") else data.get(saga_spec.key)
                    if value is not None:
                        saga, key = saga_name, str(value)
                        break
                self.stored[(_n(stream), int(seq))] = _Stored(t, _n(rec.get("subject")), _n(rec.get("producer")),
                                                                saga, key, snap)
            elif kind == "delivery":
                svc, stream, seq = _n(rec["service"]), _n(rec["stream"]), int(rec["stream_seq"])
                self.deliveries[(svc, stream, seq)].append(_Delivery(
                    t, svc, rec.get("conn", 0), _n(rec.get("subject")), rec.get("sid"), stream,
                    _n(rec.get("consumer")), rec.get("delivered"), seq, rec.get("consumer_seq"), rec.get("pending"),
                    snap))
                self.js_sids.add((svc, rec.get("conn", 0), str(rec.get("sid"))))
            elif kind == "ack":
                svc, stream, seq = _n(rec["service"]), _n(rec["stream"]), int(rec["stream_seq"])
                self.answers[(svc, stream, seq)].append(_Answer(
                    t, svc, rec.get("conn", 0), _n(rec.get("how")), stream, _n(rec.get("consumer")),
                    rec.get("delivered"), seq, rec.get("reason"), snap))
            elif kind == "wire":
                svc = _n(rec["service"])
                d_rows, a_rows = wire_rows(rec.get("deliveries"), rec.get("answers"))
                for wt, conn, subject, sid, stream, consumer, delivered, seq, cseq, pending in d_rows:
                    stream, seq = _n(stream), int(seq)
                    self.deliveries[(svc, stream, seq)].append(_Delivery(
                        wt, svc, conn, _n(subject), sid, stream, _n(consumer), delivered, seq, cseq, pending,
                        timeline.at(wt)))
                    self.js_sids.add((svc, conn, str(sid)))
                for wt, conn, how, stream, consumer, delivered, seq, reason in a_rows:
                    stream, seq = _n(stream), int(seq)
                    self.answers[(svc, stream, seq)].append(_Answer(
                        wt, svc, conn, _n(how), stream, _n(consumer), delivered, seq, reason, timeline.at(wt)))
            elif kind == "nats_sub":
                self.subs[rec["service"]].append(rec)
            elif kind == "js_consumer":
                if rec.get("stream") and rec.get("consumer"):
                    self.consumers[rec["service"]][(rec["stream"], rec["consumer"])] = rec
            elif kind == "nats_connect":
                self.connects[rec["service"]] += 1
            elif kind == "advisory":
                self.advisories.append({**rec, "faults": snap})
            elif kind == "stream_state" and rec.get("retention") == "workqueue":
                self.queues[str(rec["stream"])] = rec
            elif kind == "broker_snapshot":
                self.snapshot = rec
                self.core = defaultdict(int)  # messages that reached each service on core subscriptions
                for svc, link in (rec.get("links") or {}).items():
                    for subject, n in ((link or {}).get("core") or {}).items():
                        self.core[(svc, subject)] += int(n)
            elif kind == "fault_start":
                f = rec.get("fault") or {}
                fid = str(f.get("id"))
                self.faults[fid] = f
                active[fid] = None
                snap = tuple(active)
                starts[fid] = t
            elif kind == "fault_end":
                fid = str(rec.get("fault_id"))
                active.pop(fid, None)
                snap = tuple(active)
                if fid in starts:
                    self.fault_windows.append((fid, starts.pop(fid), t))
        self.fault_windows += [(fid, t0, None) for fid, t0 in starts.items()]
        if self.queues:
            self._queue_messages(saga_of)
        # which service each consumer delivers to
        self.consumer_service: dict[tuple[str, str], str] = {}
        for (svc, stream, _seq), ds in self.deliveries.items():
            for d in ds:
                self.consumer_service.setdefault((stream, d["consumer"]), svc)
        for svc, cons in self.consumers.items():
            for k in cons:
                self.consumer_service.setdefault(k, svc)

    def _queue_messages(self, saga_of: Mapping[str, list[tuple[str, Any]]]) -> None:
        """The messages a work queue stored, by sequence: the recorder reads a work queue from its publishes (a
        consumer of its own would take messages from the services), so each sequence's subject is known from a
        delivery of it to a service, or from the queue's leftovers at the end (never acknowledged)."""
        first: dict[tuple[str, int], _Delivery] = {}
        for (_svc, stream, seq), ds in self.deliveries.items():
            if stream in self.queues:
                for one in ds:
                    if (stream, seq) not in first or one.t < first[(stream, seq)].t:
                        first[(stream, seq)] = one
        for stream, q in self.queues.items():
            left = {int(x["seq"]): x for x in q.get("leftovers") or []}
            for seq in range(int(q.get("first_seq") or 1), int(q.get("last_seq") or 0) + 1):
                if (stream, seq) in self.stored:
                    continue
                d = first.get((stream, seq))
                x = left.get(seq)
                if d is None and x is None:
                    continue  # removed without a delivery seen (a limit, or read past the leftovers' bound)
                subject = str(d.subject if d is not None and d.subject else x["subject"] if x else "?")
                data = (x or {}).get("data")
                saga = key = None
                for saga_name, saga_spec in saga_of.get(subject, ()):
                    value = saga_spec.key_of(data) if isinstance(data, dict) and hasattr(saga_spec, "key_of") else None
                    if value is not None:
                        saga, key = saga_name, str(value)
                        break
                self.stored[(stream, seq)] = _Stored(d.t if d is not None else float(q.get("t") or 0.0), subject,
                                                     None, saga, key, d.faults if d is not None else ())

    def ack_policy(self, service: str, stream: str, consumer: str) -> str:
        """The consumer's ack policy as the service created it (explicit when it was created elsewhere)."""
        cfg = self.consumers.get(service, {}).get((stream, consumer))
        return str((cfg or {}).get("ack_policy") or "explicit")


class _FaultTimeline:
    """The faults active at any time of a history (for observations recorded in batches)."""

    def __init__(self, records: Iterable[dict[str, Any]]) -> None:
        self.times: list[float] = []
        self.sets: list[tuple[str, ...]] = []
        active: dict[str, None] = {}
        changes = sorted(((float(r.get("t") or 0.0), r.get("seq") or 0, r) for r in records
                          if r.get("kind") in ("fault_start", "fault_end")), key=lambda x: (x[0], x[1]))
        for t, _, r in changes:
            if r["kind"] == "fault_start":
                active[str((r.get("fault") or {}).get("id"))] = None
            else:
                active.pop(str(r.get("fault_id")), None)
            self.times.append(t)
            self.sets.append(tuple(active))

    def at(self, t: float) -> tuple[str, ...]:
        from bisect import bisect_right

        i = bisect_right(self.times, t) - 1
        return self.sets[i] if i >= 0 else ()


def _used_faults(h: _History, snaps: Iterable[tuple[str, ...]]) -> dict[str, dict[str, Any]]:
    used: dict[str, dict[str, Any]] = {}
    for snap in snaps:
        for fid in snap:
            used.setdefault(fid, h.faults.get(fid, {"id": fid}))
    return used


def consumer_groups(h: _History, services: Iterable[str], groups: Mapping[str, str] | None = None
                    ) -> dict[str, list[str]]:
    """The consuming units of a run, label -> member services: the replicas of one service (``groups``: process ->
    service), and services that share one durable consumer (each message goes to one of them, so they consume it
    together, as replicas do). Every other service is a unit of its own."""
    parent: dict[str, str] = {s: s for s in services}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: str, b: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    first: dict[Any, str] = {}
    for proc, group in (groups or {}).items():
        union(first.setdefault(("group", group), proc), proc)
    for (svc, stream, _seq), ds in h.deliveries.items():
        for d in ds:
            union(first.setdefault(("consumer", stream, d["consumer"]), svc), svc)
    for svc, cons in h.consumers.items():
        for stream, consumer in cons:
            if (cons[(stream, consumer)] or {}).get("durable") or (cons[(stream, consumer)] or {}).get("durable_name"):
                union(first.setdefault(("consumer", stream, consumer), svc), svc)
    members: dict[str, list[str]] = defaultdict(list)
    for svc in list(parent):
        members[find(svc)].append(svc)
    out: dict[str, list[str]] = {}
    for svcs in members.values():
        svcs.sort()
        named = {(groups or {}).get(s) for s in svcs}
        label = next(iter(named)) if len(named) == 1 and None not in named else "+".join(svcs)
        out[str(label)] = svcs
    return out


def check_broker(records: Iterable[dict[str, Any]], *, receives: list[Receive], streams: Mapping[str, list[str]],
                 services: Iterable[str], sagas: Mapping[str, Any] | None = None, final: bool = True,
                 observing: Iterable[str] | None = None, nothing_sent: bool = False,
                 groups: Mapping[str, str] | None = None) -> BrokerReport:
    """Run the three broker checks and build the report's summaries.

    Args:
        records: the history (any order of kinds; time order within each kind).
        receives: what each service's contract says it receives (:func:`receives_from_contracts`).
        streams: stream name -> its subject patterns (what JetStream stores).
        services: the services that ran through observed links (others are not judged).
        sagas: the system's sagas, to name the saga and key of each message.
        final: the history ends with the system quiescent (every delivery answered). When it does not (the
            run gave up waiting), a message a consumer can still take or acknowledge is *pending*, not a
            violation; one no consumer of the service takes, or that was terminated or dead-lettered, still is.
        observing: the services whose NATS connection went through an observed link (None: all of
            ``services``). None of them: the checks do not apply (attach mode without links, TLS).
        nothing_sent: nobody sent traffic on purpose (a pytest session whose tests sent none): a check with
            nothing to judge is then not applicable rather than not judged.
        groups: process -> the service it is a replica of (a contract names the service; its replicas consume
            for it, and a message acknowledged by one of them is consumed).

    A check that judged nothing says so (:attr:`BrokerReport.unjudged`): not applicable when it cannot apply
    (no observed link, no stream, no contract says what anyone receives), not judged otherwise.
    """
    h = _History(records, sagas or {})
    services = list(services)
    if groups:
        by_group: dict[str, list[str]] = defaultdict(list)
        for proc, group in groups.items():
            by_group[group].append(proc)
        receives = [Receive(m, r.pattern, r.intent) for r in receives for m in by_group.get(r.service, [r.service])]
    report = BrokerReport()
    observed = {s for s in services if h.connects.get(s)}
    stream_patterns = [(name, p) for name, ps in streams.items() for p in ps]
    _delivery_guarantee(h, report, receives, stream_patterns, observed)
    _consumption(h, report, receives, observed, stream_patterns, final, consumer_groups(h, services, groups))
    _dead_letters(h, report)
    report.matrix = matrix(h, receives, observed)
    report.coverage = coverage(h, streams)
    report.services = _per_service(h, services)
    _unjudged(h, report, receives, stream_patterns, services if observing is None else list(observing), observed,
              nothing_sent)
    return report


def _unjudged(h: _History, report: BrokerReport, receives: list[Receive], stream_patterns: list[tuple[str, str]],
              observing: list[str], observed: set[str], nothing_sent: bool) -> None:
    """Which broker checks had nothing to judge, and why (see :func:`check_broker`)."""
    nothing = "not applicable" if nothing_sent else "not judged"
    if not observing:
        why = ("no service's NATS connection went through an observed link in this run (attach mode without "
               "links, or TLS), so no subscription, delivery or acknowledgement could be seen")
        report.unjudged = {name: ("not applicable", why) for name in BROKER_CHECKS}
        return
    if not observed:
        why = (f"none of the observed services ({', '.join(sorted(observing))}) was seen connecting to NATS "
               f"through its link, so no subscription, delivery or acknowledgement could be judged")
        report.unjudged = {name: (nothing, why) for name in BROKER_CHECKS}
        return
    if not stream_patterns:
        why = ("no JetStream stream stores any subject (core NATS only), so there is no stored message, "
               "acknowledgement or redelivery to judge")
        report.unjudged = {name: ("not applicable", why) for name in BROKER_CHECKS}
        return
    if not any(h.subs.get(s) or h.consumers.get(s) for s in observed):
        report.unjudged["delivery guarantee"] = (
            nothing, f"no observed service ({', '.join(sorted(observed))}) subscribed to anything or created a "
                     f"consumer, so how they read the stored subjects could not be judged")
    if report.summaries.get("consumption", "").startswith("no stored message"):
        if not any(r.service in observed and r.intent != AT_MOST_ONCE for r in receives):
            report.unjudged["consumption"] = (
                "not applicable", "no contract says an observed service receives a subject at least once (none "
                                  "declares a receive operation, or each is declared at-most-once), so no message "
                                  "is owed an acknowledgement")
        else:
            report.unjudged["consumption"] = (
                nothing, "no stored message was on a subject an observed service's contract receives, so no "
                         "message was owed to anyone")


def _intends_at_most_once(receives: list[Receive], service: str, pattern: str) -> bool:
    return any(r.service == service and r.intent == AT_MOST_ONCE and overlaps(r.pattern, pattern) for r in receives)


def _delivery_guarantee(h: _History, report: BrokerReport, receives: list[Receive],
                        stream_patterns: list[tuple[str, str]], observed: set[str]) -> None:
    found = report.findings["delivery guarantee"]
    for service in sorted(observed):
        deliver_subjects = {str(c.get("deliver_subject")) for c in h.consumers.get(service, {}).values()
                            if c.get("deliver_subject")}
        seen: set[str] = set()
        for sub in h.subs.get(service, []):
            subject = str(sub.get("subject") or "")
            if (not subject or subject.startswith(_SYSTEM_PREFIXES) or subject in seen
                    or subject in deliver_subjects
                    or (service, sub.get("conn", 0), str(sub.get("sid"))) in h.js_sids):
                continue
            captured = [(name, p) for name, p in stream_patterns if overlaps(p, subject)]
            if not captured:
                continue
            seen.add(subject)
            if _intends_at_most_once(receives, service, subject):
                continue
            stored = [k for k, m in h.stored.items() if matches(subject, str(m["subject"]))]
            got = sum(n for (svc, subj), n in h.core.items() if svc == service and matches(subject, subj))
            streams_txt = ", ".join(sorted({name for name, _ in captured}))
            lost = max(0, len(stored) - got)
            detail = (f"'{service}' reads {subject} through a core NATS subscription (SUB {subject}"
                      f"{' queue ' + str(sub['queue']) if sub.get('queue') else ''}): at most once. Stream "
                      f"{streams_txt} stores {len(stored)} message(s) on it; {got} reached the service that way"
                      + (f", {lost} never did" if lost else "")
                      + ". Nothing acknowledges these messages and nothing redelivers what is published while "
                        "the service is away (killed, paused, cut off, reconnecting).")
            away = [(fid, a, b) for fid, a, b in h.fault_windows if (h.faults.get(fid) or {}).get("target") == service]
            events = [{"t": sub.get("t", 0.0), "service": service, "what": f"SUB {subject} (core, sid {sub.get('sid')})"}]
            actives: list[list[str]] = [[]]
            for fid, a, b in away[:20]:
                f = h.faults.get(fid) or {}
                events.append({"t": a, "service": service,
                               "what": f"fault {fid} {f.get('kind', '?')} until "
                                       f"{'the end' if b is None else f't={b:.3f}s'}: messages published meanwhile are lost for it"})
                actives.append([fid])
            found.append(BrokerFinding(
                check="delivery guarantee", service=service, subject=subject,
                expected=f"a subject stored in a stream ({streams_txt}) is read through a JetStream consumer with "
                         f"acknowledgements (at least once), unless the contract states at-most-once intent",
                detail=detail, events=events, faults_active=actives,
                faults=_used_faults(h, [tuple(a) for a in actives]),
                fix=(f"consume {subject} through a durable JetStream consumer (pull, or push with explicit ack) "
                     f"whose filter includes it, and ack each message after its effect is committed; if losing "
                     f"messages while '{service}' is away is intended, say so in its contract with "
                     f"x-sagaproof-delivery: at-most-once on the receive operation")))
    n = len(found)
    report.summaries["delivery guarantee"] = (
        "every stored subject is read through a JetStream consumer with acks" if not n else
        f"{n} stored subject(s) read through core subscriptions (at most once): "
        + ", ".join(sorted({f'{f.service} {f.subject}' for f in found})))


def _consumption(h: _History, report: BrokerReport, receives: list[Receive], observed: set[str],
                 stream_patterns: list[tuple[str, str]], final: bool = True,
                 units: Mapping[str, list[str]] | None = None) -> None:
    found = report.findings["consumption"]
    judged = 0
    pending = 0
    per_pair: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])  # (unit, pattern) -> [messages, missed]
    # AckAll consumers: an ack of sequence n acks every earlier delivered one.
    ack_all_floor: dict[tuple[str, str, str], int] = {}
    for (svc, stream, seq), given in h.answers.items():
        for a in given:
            if a["how"] in ("ack", "next") and h.ack_policy(svc, stream, a["consumer"]) == "all":
                k = (svc, stream, a["consumer"])
                ack_all_floor[k] = max(ack_all_floor.get(k, 0), seq)
    # A unit consumes together: the replicas of a service, or services sharing one durable consumer.
    unit_of = {m: label for label, ms in (units or {}).items() for m in ms}
    members: dict[str, list[str]] = {label: list(ms) for label, ms in (units or {}).items()}
    by_receiver: dict[str, list[Receive]] = defaultdict(list)
    for r in receives:
        if r.service in observed and r.intent != AT_MOST_ONCE:
            unit = unit_of.get(r.service, r.service)
            members.setdefault(unit, [r.service])
            by_receiver[unit].append(r)
    owed: dict[str, list[tuple[str, str]]] = {}  # subject -> [(unit, pattern)], computed once per subject
    for (stream, seq), msg in sorted(h.stored.items(), key=lambda kv: (kv[1]["t"], kv[0])):
        subject = str(msg["subject"])
        pairs = owed.get(subject)
        if pairs is None:
            pairs = owed[subject] = [(unit, p) for unit, recs in by_receiver.items()
                                     for p in [next((r.pattern for r in recs if matches(r.pattern, subject)), None)]
                                     if p is not None]
        for unit, pattern in pairs:
            judged += 1
            per_pair[(unit, pattern)][0] += 1
            svcs = [m for m in members.get(unit, [unit]) if m in observed] or [unit]
            deliveries: list[_Delivery] = []
            answers: list[_Answer] = []
            taken = False
            for service in svcs:
                key = (service, stream, seq)
                ds = h.deliveries.get(key, [])
                ans = h.answers.get(key, [])
                deliveries += ds
                answers += ans
                if (any(a["how"] in ("ack", "next") for a in ans)
                        or any(h.ack_policy(service, stream, d["consumer"]) == "none" for d in ds)
                        or any(ack_all_floor.get((service, stream, d["consumer"]), 0) >= seq for d in ds)):
                    taken = True
                    break
            if taken:
                continue
            deliveries.sort(key=lambda d: d["t"])
            answers.sort(key=lambda a: a["t"])
            finding = _unconsumed(h, unit, pattern, stream, seq, msg, deliveries, answers, stream_patterns, svcs)
            if not final and finding.in_flight:
                pending += 1  # the run ended while the system still moved: it may yet be taken
                continue
            per_pair[(unit, pattern)][1] += 1
            found.append(finding)
    for (service, pattern), (total, missed) in per_pair.items():
        if missed:
            report.not_taken[(service, pattern)] = "none" if missed == total else "some"
    still = f"; {pending} still in flight when the run stopped waiting" if pending else ""
    shared = sorted(f"{label} ({', '.join(ms)})" for label, ms in members.items() if len(ms) > 1 and label in by_receiver)
    together = f"; consumed together: {'; '.join(shared)}" if shared else ""
    if not judged:
        report.summaries["consumption"] = "no stored message on a subject any observed service's contract receives"
    elif not found:
        report.summaries["consumption"] = (f"all {judged - pending} messages owed to their contract receivers "
                                           f"(message x receiver) were acknowledged{still}{together}")
    else:
        counts: dict[tuple[str, str], int] = defaultdict(int)
        for f in found:
            counts[(f.service, f.subject)] += 1
        report.summaries["consumption"] = (
            f"{len(found)} of {judged} messages owed to contract receivers were never acknowledged: "
            + ", ".join(f"{svc} {subj} x{n}" for (svc, subj), n in sorted(counts.items())) + still + together)


def _unconsumed(h: _History, service: str, pattern: str, stream: str, seq: int, msg: _Stored,
                deliveries: list[_Delivery], answers: list[_Answer],
                stream_patterns: list[tuple[str, str]], members: list[str] | None = None) -> BrokerFinding:
    """Why ``service`` (a service, or a unit of replicas ``members`` named so) never acknowledged a message."""
    members = members or [service]
    subject = str(msg["subject"])
    events = [{"t": msg["t"], "service": msg.get("producer") or "?",
               "what": f"published {subject} ({stream} sequence {seq})"}]
    actives = [list(msg["faults"])]
    timeline = [(d["t"], "d", d) for d in deliveries] + [(a["t"], "a", a) for a in answers]
    for t, what, rec in sorted(timeline, key=lambda x: (x[0], x[1])):
        who = str(rec.get("service") or service)  # the replica that took it, for a unit of several
        if what == "d":
            events.append({"t": t, "service": who, "what": f"delivered (delivery {rec['delivered']}) by consumer "
                                                           f"{rec['consumer']}"})
        else:
            reason = f" ({rec['reason']})" if rec.get("reason") else ""
            events.append({"t": t, "service": who, "what": f"answered {_ANSWER[rec['how']]}{reason}"})
        actives.append(list(rec["faults"]))
    consumers = {k: c for m in members for k, c in h.consumers.get(m, {}).items()}
    in_flight = False
    dead = [a for a in h.advisories if a.get("stream") == stream and a.get("stream_seq") == seq
            and a.get("type") in ("max_deliveries", "terminated")
            and h.consumer_service.get((stream, str(a.get("consumer")))) in members]
    if deliveries:
        n = max(int(d["delivered"]) for d in deliveries)
        last = answers[-1]["how"] if answers else None
        if last == "term" or any(a.get("type") == "terminated" for a in dead):
            why = f"'{service}' terminated it (+TERM) after {n} delivery(ies): it will never be delivered again"
        elif any(a.get("type") == "max_deliveries" for a in dead):
            why = f"it was dead-lettered: delivered {n} times (the consumer's max_deliver) and never acknowledged"
        else:
            in_flight = True
            why = (f"it was delivered {n} time(s) and never acknowledged"
                   + (f"; the last answer was {_ANSWER[last]}" if last else "; the service never answered"))
    else:
        core = [s for m in members for s in h.subs.get(m, []) if matches(str(s.get("subject")), subject)
                and (m, s.get("conn", 0), str(s.get("sid"))) not in h.js_sids]
        covering = [c for c in consumers.values() if c.get("stream") == stream and
                    (not c.get("filter_subjects") or any(matches(f, subject) for f in c["filter_subjects"]))]
        if covering:
            names = ", ".join(str(c["consumer"]) for c in covering)
            in_flight = True
            why = f"its consumer {names} takes {subject} but never delivered this message to '{service}'"
        elif core:
            why = (f"it was never delivered through a JetStream consumer: '{service}' reads {subject} through a "
                   f"core subscription, which acknowledges nothing (see delivery guarantee)")
        elif consumers:
            listing = "; ".join(f"{c['consumer']} on {c['stream']} filters {', '.join(c.get('filter_subjects') or ['>'])}"
                                for c in consumers.values())
            why = f"none of '{service}''s JetStream consumers takes {subject} ({listing})"
        else:
            why = f"'{service}' never received it: it created no JetStream consumer and holds no subscription to it"
    return BrokerFinding(
        check="consumption", service=service, subject=subject, stream=stream, stream_seq=seq,
        saga=msg.get("saga"), key=msg.get("key"),
        expected=f"'{service}' acknowledges every message on {pattern} at least once (its contract says it "
                 f"receives {pattern})",
        detail=why, events=events, faults_active=actives, faults=_used_faults(h, [tuple(a) for a in actives]),
        in_flight=in_flight)


_ANSWER = {"ack": "+ACK", "nak": "-NAK", "wpi": "+WPI (in progress)", "term": "+TERM", "next": "+NXT"}


def _dead_letters(h: _History, report: BrokerReport) -> None:
    found = report.findings["dead letters"]
    seen: set[tuple[str, str, int]] = set()
    items: list[tuple[float, str, str, str, int, str, list[str]]] = []
    for a in h.advisories:
        if a.get("type") not in ("max_deliveries", "terminated") or a.get("stream_seq") is None:
            continue
        consumer, stream, seq = str(a.get("consumer")), str(a.get("stream")), int(a["stream_seq"])
        what = (f"dead-lettered after {a.get('deliveries')} deliveries (max_deliver reached)"
                if a["type"] == "max_deliveries" else
                f"terminated by the consumer (+TERM){' reason: ' + str(a['reason']) if a.get('reason') else ''}")
        seen.add((consumer, stream, seq))
        items.append((float(a.get("t") or 0.0), h.consumer_service.get((stream, consumer), "?"), consumer, stream,
                      seq, what, list(a["faults"])))
    for (svc, stream, seq), answers in h.answers.items():  # +TERM seen on the wire (an advisory may be missing)
        for ans in answers:
            if ans.how == "term" and (ans.consumer, stream, seq) not in seen:
                seen.add((ans.consumer, stream, seq))
                reason = f" reason: {ans.reason}" if ans.reason else ""
                items.append((float(ans.t), svc, ans.consumer, stream, seq,
                              f"terminated by the consumer (+TERM){reason}", list(ans.faults)))
    for t, svc, consumer, stream, seq, what, faults in sorted(items):
        msg = h.stored.get((stream, seq))
        subject = str((msg.subject if msg is not None else None) or "?")
        events = []
        actives = []
        if msg is not None:
            events.append({"t": msg["t"], "service": msg.get("producer") or "?",
                           "what": f"published {subject} ({stream} sequence {seq})"})
            actives.append(list(msg["faults"]))
        events.append({"t": t, "service": svc, "what": f"consumer {consumer}: {what}"})
        actives.append(faults)
        found.append(BrokerFinding(
            check="dead letters", service=svc, subject=subject, stream=stream, stream_seq=seq,
            saga=msg.saga if msg is not None else None, key=msg.key if msg is not None else None,
            expected="no consumer gives up on a message (no +TERM, no max_deliver reached)",
            detail=f"consumer {consumer} of '{svc}' gave up on it: {what}", events=events, faults_active=actives,
            faults=_used_faults(h, [tuple(x) for x in actives])))
    report.summaries["dead letters"] = ("no message was terminated or dead-lettered" if not found else
                                        f"{len(found)} message(s) terminated or dead-lettered")


def matrix(h: _History, receives: list[Receive], services: set[str]) -> list[dict[str, Any]]:
    """Rows per (subject, consuming service): stored messages, delivered, acked, redelivered, duplicated on the
    wire, naked, terminated, core deliveries, and how many distinct faults were active around them."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}

    def row(subject: str, service: str) -> dict[str, Any]:
        r = rows.get((subject, service))
        if r is None:
            r = rows[(subject, service)] = {"subject": subject, "service": service, "messages": 0, "delivered": 0,
                                            "deliveries": 0, "acked": 0, "redelivered": 0, "duplicated": 0,
                                            "naked": 0, "terminated": 0, "core": 0, "faults": set(),
                                            "declared": False}
        return r

    receivers: dict[str, set[str]] = {}  # subject -> services whose contract receives it
    for (_stream, _seq), msg in h.stored.items():
        subject = str(msg["subject"])
        svcs = receivers.get(subject)
        if svcs is None:
            svcs = receivers[subject] = {r.service for r in receives
                                         if r.service in services and matches(r.pattern, subject)}
        for svc in svcs:
            x = row(subject, svc)
            x["messages"] += 1
            x["declared"] = True
            x["faults"].update(msg["faults"])
    for (svc, stream, seq), ds in h.deliveries.items():
        stored = h.stored.get((stream, seq))
        subject = str(ds[0].subject or (stored.subject if stored is not None else None) or "?")
        x = row(subject, svc)
        x["delivered"] += 1
        x["deliveries"] += len(ds)
        if any(int(d["delivered"]) > 1 for d in ds):
            x["redelivered"] += 1
        ids = [(d["consumer"], d["delivered"]) for d in ds]
        if len(ids) != len(set(ids)):
            x["duplicated"] += 1
        for d in ds:
            x["faults"].update(d["faults"])
        answers = h.answers.get((svc, stream, seq), [])
        if any(a["how"] in ("ack", "next") for a in answers):
            x["acked"] += 1
        if any(a["how"] == "nak" for a in answers):
            x["naked"] += 1
        if any(a["how"] == "term" for a in answers):
            x["terminated"] += 1
    for (svc, subject), n in h.core.items():
        row(subject, svc)["core"] += n
    out = []
    for key in sorted(rows):
        r = rows[key]
        r["faults"] = len(r["faults"])
        out.append(r)
    return out


def coverage(h: _History, streams: Mapping[str, list[str]]) -> dict[str, Any]:
    """Per stream and consumer: deliveries and redeliveries; which streams' consumers never saw a redelivery."""
    per: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(lambda: {"deliveries": 0,
                                                                                       "redeliveries": 0}))
    for (_svc, stream, _seq), ds in h.deliveries.items():
        for d in ds:
            c = per[stream][d["consumer"]]
            c["deliveries"] += 1
            if int(d["delivered"]) > 1:
                c["redeliveries"] += 1
    used = {stream for stream, _seq in h.stored} | set(per)
    never = sorted(s for s in used if not any(c["redeliveries"] for c in per.get(s, {}).values()))
    notes = [f"no consumer of stream {s} ever saw a redelivery in this run: a consumer that is not idempotent "
             f"could not have been caught by it (add kill, cut or duplicate faults, or a longer run)" for s in never]
    return {"streams": {s: dict(c) for s, c in per.items()}, "never_redelivered": never, "notes": notes}


def _per_service(h: _History, services: list[str]) -> dict[str, dict[str, Any]]:
    """Per service: the subscriptions and consumers it made, its connections and reconnects."""
    links = ((h.snapshot or {}).get("links") or {}) if h.snapshot else {}
    out = {}
    for svc in services:
        subs = []
        seen = set()
        for s in h.subs.get(svc, []):
            subject = str(s.get("subject"))
            kind = "jetstream" if (svc, s.get("conn", 0), str(s.get("sid"))) in h.js_sids else (
                "inbox" if subject.startswith(_SYSTEM_PREFIXES) else "core")
            k = (subject, s.get("queue"), kind)
            if k not in seen:
                seen.add(k)
                subs.append({"subject": subject, "queue": s.get("queue"), "kind": kind})
        consumers = [{"stream": c["stream"], "consumer": c["consumer"], "durable": c.get("durable"),
                      "filter_subjects": c.get("filter_subjects"), "ack_policy": c.get("ack_policy"),
                      "ack_wait": c.get("ack_wait"), "max_deliver": c.get("max_deliver"),
                      "deliver_subject": c.get("deliver_subject")} for c in h.consumers.get(svc, {}).values()]
        connects = h.connects.get(svc, 0)
        out[svc] = {"subscriptions": subs, "consumers": consumers, "connections": connects,
                    "reconnects": max(0, connects - 1), "link": links.get(svc)}
    return out
