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

Memory: what concerns the system as a whole (subscriptions, consumers, connections, advisories, faults, counts
per consumer) is kept while the history streams by; what concerns one stored message (the message, each
delivery of it, each answer to it) goes to the shard of its stream and sequence. Given a scratch directory (the
engine gives the report directory), a history of more than :data:`SHARD_MESSAGES` messages is judged one shard
at a time from a scratch file, so the checks' memory does not grow with the run; the report is the same.

The rooms: :mod:`harness.checks.broker_findings` (what is reported), :mod:`harness.checks.broker_history` (the one
pass over the history and its shards), :mod:`harness.checks.broker_summaries` (the
report's matrix, coverage and per-service summaries), this module (the checks).
"""

from __future__ import annotations

import gc
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from sagaproof.harness.checks.broker_findings import (
    AT_MOST_ONCE,
    BROKER_CHECKS,
    MAX_DETAILS,
    BrokerFinding,
    BrokerReport,
    Receive,
    receives_from_contracts,
)
from sagaproof.harness.checks.broker_history import (
    _SYSTEM_PREFIXES,
    _Answer,
    _Delivery,
    _History,
    _Shard,
    _Stored,
    _used_faults,
    consumer_groups,
)
from sagaproof.harness.checks.broker_summaries import _Matrix, _per_service, coverage

from sagaproof.subjects import matches, overlaps

__all__ = ["AT_MOST_ONCE", "BROKER_CHECKS", "MAX_DETAILS", "SHARD_MESSAGES", "BrokerFinding", "BrokerReport", "Receive",
           "check_broker", "consumer_groups", "coverage", "receives_from_contracts"]

SHARD_MESSAGES = 5_000  # stored messages per shard of the broker checks on a long history (about 5 MB indexed)


def check_broker(records: Iterable[dict[str, Any]], *, receives: list[Receive], streams: Mapping[str, list[str]],
                 services: Iterable[str], sagas: Mapping[str, Any] | None = None, final: bool = True,
                 observing: Iterable[str] | None = None, nothing_sent: bool = False,
                 groups: Mapping[str, str] | None = None, scratch: str | Path | None = None,
                 messages: int = 0) -> BrokerReport:
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
        scratch: a directory for the shards of a long history (the engine gives the report directory); with
            it, a history of more than :data:`SHARD_MESSAGES` ``messages`` is judged a shard of stored
            messages at a time, and memory does not grow with the run. The report is the same either way.
        messages: how many messages the history holds (the recorder's count), to size the shards.

    A check that judged nothing says so (:attr:`BrokerReport.unjudged`): not applicable when it cannot apply
    (no observed link, no stream, no contract says what anyone receives), not judged otherwise.
    """
    # The pass allocates many small objects and creates no reference cycles; pausing the cyclic collector keeps
    # it from rescanning an ever larger heap (as the saga checker does).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _check_broker(records, receives, streams, services, sagas, final, scratch, messages, observing,
                             nothing_sent, groups)
    finally:
        if gc_was_enabled:
            gc.enable()


def _check_broker(records: Iterable[dict[str, Any]], receives: list[Receive], streams: Mapping[str, list[str]],
                  services: Iterable[str], sagas: Mapping[str, Any] | None, final: bool,
                  scratch: str | Path | None, messages: int, observing: Iterable[str] | None,
                  nothing_sent: bool, groups: Mapping[str, str] | None) -> BrokerReport:
    shards = max(1, -(-messages // SHARD_MESSAGES)) if scratch is not None else 1
    h = _History(records, sagas or {}, shards=shards, scratch=scratch)
    try:
        services = list(services)
        if groups:
            by_group: dict[str, list[str]] = defaultdict(list)
            for proc, group in groups.items():
                by_group[group].append(proc)
            receives = [Receive(m, r.pattern, r.intent) for r in receives for m in by_group.get(r.service, [r.service])]
        report = BrokerReport()
        observed = {s for s in services if h.connects.get(s)}
        stream_patterns = [(name, p) for name, ps in streams.items() for p in ps]
        consumption = _Consumption(h, receives, observed, stream_patterns, final, consumer_groups(h, services, groups))
        dead = _DeadLetters(h)
        rows = _Matrix(receives, observed)
        stored_on: dict[str, int] = defaultdict(int)  # subject -> stored messages
        for shard in h.shards():
            for msg in shard.stored.values():
                stored_on[str(msg.subject)] += 1
            consumption.judge(shard)
            dead.collect(shard)
            rows.count(shard)
        _delivery_guarantee(h, report, receives, stream_patterns, observed, stored_on)
        consumption.report(report)
        dead.report(report)
        report.matrix = rows.rows(h)
        report.coverage = coverage(h, streams)
        report.services = _per_service(h, services)
        _unjudged(h, report, receives, stream_patterns, services if observing is None else list(observing),
                  observed, nothing_sent)
        return report
    finally:
        h.close()


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
                        stream_patterns: list[tuple[str, str]], observed: set[str],
                        stored_on: Mapping[str, int]) -> None:
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
            stored = sum(n for subj, n in stored_on.items() if matches(subject, subj))
            got = sum(n for (svc, subj), n in h.core.items() if svc == service and matches(subject, subj))
            streams_txt = ", ".join(sorted({name for name, _ in captured}))
            lost = max(0, stored - got)
            detail = (f"'{service}' reads {subject} through a core NATS subscription (SUB {subject}"
                      f"{' queue ' + str(sub['queue']) if sub.get('queue') else ''}): at most once. Stream "
                      f"{streams_txt} stores {stored} message(s) on it; {got} reached the service that way"
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


class _Consumption:
    """The consumption check, a shard of stored messages at a time (:meth:`judge`), then its summary
    (:meth:`report`): findings in the order of the messages' times, whichever shard they came from."""

    def __init__(self, h: _History, receives: list[Receive], observed: set[str],
                 stream_patterns: list[tuple[str, str]], final: bool,
                 units: Mapping[str, list[str]] | None = None) -> None:
        self.h = h
        self.observed = observed
        self.stream_patterns = stream_patterns
        self.final = final
        self.judged = 0
        self.pending = 0
        # (unit, pattern) -> [messages, missed, (t, stream, seq) of its first message]
        self.per_pair: dict[tuple[str, str], list[Any]] = {}
        self.found: list[tuple[tuple[float, str, int, int], BrokerFinding]] = []
        # A unit consumes together: the replicas of a service, or services sharing one durable consumer.
        unit_of = {m: label for label, ms in (units or {}).items() for m in ms}
        self.members: dict[str, list[str]] = {label: list(ms) for label, ms in (units or {}).items()}
        self.by_receiver: dict[str, list[Receive]] = defaultdict(list)
        for r in receives:
            if r.service in observed and r.intent != AT_MOST_ONCE:
                unit = unit_of.get(r.service, r.service)
                self.members.setdefault(unit, [r.service])
                self.by_receiver[unit].append(r)
        self.owed: dict[str, list[tuple[str, str]]] = {}  # subject -> [(unit, pattern)], computed once per subject

    def judge(self, shard: _Shard) -> None:
        h = self.h
        by_receiver = self.by_receiver
        per_pair = self.per_pair
        for (stream, seq), msg in shard.stored.items():
            subject = str(msg["subject"])
            pairs = self.owed.get(subject)
            if pairs is None:
                pairs = self.owed[subject] = [(unit, p) for unit, recs in by_receiver.items()
                                              for p in [next((r.pattern for r in recs if matches(r.pattern, subject)),
                                                             None)]
                                              if p is not None]
            at = (msg["t"], stream, seq)
            for j, (unit, pattern) in enumerate(pairs):
                self.judged += 1
                pair = per_pair.get((unit, pattern))
                if pair is None:
                    pair = per_pair[(unit, pattern)] = [0, 0, at]
                elif at < pair[2]:
                    pair[2] = at
                pair[0] += 1
                svcs = [m for m in self.members.get(unit, [unit]) if m in self.observed] or [unit]
                deliveries: list[_Delivery] = []
                answers: list[_Answer] = []
                taken = False
                for service in svcs:
                    key = (service, stream, seq)
                    ds = shard.deliveries.get(key, [])
                    ans = shard.answers.get(key, [])
                    deliveries += ds
                    answers += ans
                    # AckAll consumers: an ack of sequence n acks every earlier delivered one.
                    if (any(a["how"] in ("ack", "next") for a in ans)
                            or any(h.ack_policy(service, stream, d["consumer"]) == "none" for d in ds)
                            or any(h.ack_policy(service, stream, d["consumer"]) == "all"
                                   and h.acked_up_to.get((service, stream, d["consumer"]), 0) >= seq for d in ds)):
                        taken = True
                        break
                if taken:
                    continue
                deliveries.sort(key=lambda d: d["t"])
                answers.sort(key=lambda a: a["t"])
                finding = _unconsumed(h, unit, pattern, stream, seq, msg, deliveries, answers, self.stream_patterns,
                                      svcs)
                if not self.final and finding.in_flight:
                    self.pending += 1  # the run ended while the system still moved: it may yet be taken
                    continue
                pair[1] += 1
                self.found.append(((msg["t"], stream, seq, j), finding))

    def report(self, report: BrokerReport) -> None:
        found = report.findings["consumption"]
        self.found.sort(key=lambda x: x[0])
        found.extend(f for _, f in self.found)
        found.extend(_stopped_consuming(self.h, self.observed))
        judged, pending = self.judged, self.pending
        for (service, pattern), (total, missed, _) in sorted(self.per_pair.items(), key=lambda kv: kv[1][2]):
            if missed:
                report.not_taken[(service, pattern)] = "none" if missed == total else "some"
        still = f"; {pending} still in flight when the run stopped waiting" if pending else ""
        shared = sorted(f"{label} ({', '.join(ms)})" for label, ms in self.members.items()
                        if len(ms) > 1 and label in self.by_receiver)
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


def _why_not_back(rec: dict[str, Any]) -> str:
    """The start of a stopped-consuming finding's detail: what the service was cut off by, and for how long."""
    if rec.get("cause") == "broker_restart":
        return (f"the broker was restarted at t={float(rec.get('cut_at') or 0):.3f}s (fault {rec.get('fault_id')}); "
                f"in the {float(rec.get('grace') or 0):g}s after it was back the service")
    return (f"its link was cut for {float(rec.get('outage') or 0):g}s at t={float(rec.get('cut_at') or 0):.3f}s "
            f"(fault {rec.get('fault_id')}); in the {float(rec.get('grace') or 0):g}s after the link was back it")


def _stopped_consuming(h: _History, observed: set[str]) -> list[BrokerFinding]:
    """A service the targeted phase cut off that opened no new connection once its link was back
    (``reconnect_missed`` records): it stopped consuming."""
    out = []
    for rec in h.reconnects_missed:
        service = str(rec.get("service"))
        if service not in observed:
            continue
        last = rec.get("last_read")
        out.append(BrokerFinding(
            check="consumption", service=service, subject=", ".join(rec.get("subjects") or []) or "(its input)",
            expected=f"after its link to NATS was back (t={float(rec.get('healed_at') or 0):.3f}s), the service "
                     f"connects again and goes on consuming",
            detail=_why_not_back(rec) + " opened no new connection, so it stopped consuming"
                   + (f"; it was last seen reading at t={float(last):.3f}s" if isinstance(last, int | float) else ""),
            fix="let the NATS client reconnect for as long as the service runs (nats-py: max_reconnect_attempts=-1) "
                "and make sure it subscribes again after a reconnect",
            faults={str(rec.get("fault_id")): {"kind": "nats_restart", "target": "nats"} if rec.get("cause") ==
                    "broker_restart" else {"kind": "partition", "target": service}}))
    return out


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


class _DeadLetters:
    """Messages a consumer gave up on: the advisories (kept whole), and each +TERM seen on the wire without one
    (:meth:`collect`, a shard at a time), with the stored message of each (:meth:`report`)."""

    def __init__(self, h: _History) -> None:
        self.h = h
        self.seen: set[tuple[str, str, int]] = set()
        self.items: list[tuple[float, str, str, str, int, str, list[str]]] = []
        for a in h.advisories:
            if a.get("type") not in ("max_deliveries", "terminated") or a.get("stream_seq") is None:
                continue
            consumer, stream, seq = str(a.get("consumer")), str(a.get("stream")), int(a["stream_seq"])
            what = (f"dead-lettered after {a.get('deliveries')} deliveries (max_deliver reached)"
                    if a["type"] == "max_deliveries" else
                    f"terminated by the consumer (+TERM){' reason: ' + str(a['reason']) if a.get('reason') else ''}")
            self.seen.add((consumer, stream, seq))
            self.items.append((float(a.get("t") or 0.0), h.consumer_service.get((stream, consumer), "?"), consumer,
                               stream, seq, what, list(a["faults"])))
        self.wanted = {(stream, seq) for _, _, _, stream, seq, _, _ in self.items}
        self.stored: dict[tuple[str, int], _Stored] = {}

    def collect(self, shard: _Shard) -> None:
        for (svc, stream, seq), answers in shard.answers.items():  # +TERM seen on the wire (an advisory may be missing)
            for ans in answers:
                if ans.how == "term" and (ans.consumer, stream, seq) not in self.seen:
                    self.seen.add((ans.consumer, stream, seq))
                    self.wanted.add((stream, seq))
                    reason = f" reason: {ans.reason}" if ans.reason else ""
                    self.items.append((float(ans.t), svc, ans.consumer, stream, seq,
                                       f"terminated by the consumer (+TERM){reason}", list(ans.faults)))
        for k in self.wanted:
            msg = shard.stored.get(k)
            if msg is not None:
                self.stored[k] = msg

    def report(self, report: BrokerReport) -> None:
        h = self.h
        found = report.findings["dead letters"]
        for t, svc, consumer, stream, seq, what, faults in sorted(self.items):
            msg = self.stored.get((stream, seq))
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
