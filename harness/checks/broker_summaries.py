"""The broker checks' summaries for the report (see :mod:`harness.checks.consumption`): per subject and consuming
service the messages, acks, redeliveries, terminations and faults seen (:class:`_Matrix`), per stream whether
any consumer ever saw a redelivery (:func:`coverage`), and per service how it consumed (:func:`_per_service`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sagaproof.harness.checks.broker_findings import Receive
from sagaproof.harness.checks.broker_history import _SYSTEM_PREFIXES, _History, _Shard

from sagaproof.subjects import matches


class _Matrix:
    """Rows per (subject, consuming service): stored messages, delivered, acked, redelivered, duplicated on the
    wire, naked, terminated, core deliveries, and how many distinct faults were active around them; counted a
    shard at a time (:meth:`count`)."""

    def __init__(self, receives: list[Receive], services: set[str]) -> None:
        self.receives = receives
        self.services = services
        self.table: dict[tuple[str, str], dict[str, Any]] = {}
        self.receivers: dict[str, set[str]] = {}  # subject -> services whose contract receives it

    def row(self, subject: str, service: str) -> dict[str, Any]:
        r = self.table.get((subject, service))
        if r is None:
            r = self.table[(subject, service)] = {"subject": subject, "service": service, "messages": 0,
                                                  "delivered": 0, "deliveries": 0, "acked": 0, "redelivered": 0,
                                                  "duplicated": 0, "naked": 0, "terminated": 0, "core": 0,
                                                  "faults": set(), "declared": False}
        return r

    def count(self, shard: _Shard) -> None:
        row = self.row
        receivers = self.receivers
        for msg in shard.stored.values():
            subject = str(msg.subject)
            svcs = receivers.get(subject)
            if svcs is None:
                svcs = receivers[subject] = {r.service for r in self.receives
                                             if r.service in self.services and matches(r.pattern, subject)}
            for svc in svcs:
                x = row(subject, svc)
                x["messages"] += 1
                x["declared"] = True
                x["faults"].update(msg.faults)
        answers_of = shard.answers
        for (svc, stream, seq), ds in shard.deliveries.items():
            stored = shard.stored.get((stream, seq))
            subject = str(ds[0].subject or (stored.subject if stored is not None else None) or "?")
            x = row(subject, svc)
            x["delivered"] += 1
            x["deliveries"] += len(ds)
            if len(ds) == 1:  # the bulk: one delivery
                d = ds[0]
                if int(d.delivered) > 1:
                    x["redelivered"] += 1
                x["faults"].update(d.faults)
            else:
                if any(int(d.delivered) > 1 for d in ds):
                    x["redelivered"] += 1
                ids = [(d.consumer, d.delivered) for d in ds]
                if len(ids) != len(set(ids)):
                    x["duplicated"] += 1
                for d in ds:
                    x["faults"].update(d.faults)
            answers = answers_of.get((svc, stream, seq))
            if answers:
                hows = {a.how for a in answers}
                if "ack" in hows or "next" in hows:
                    x["acked"] += 1
                if "nak" in hows:
                    x["naked"] += 1
                if "term" in hows:
                    x["terminated"] += 1

    def rows(self, h: _History) -> list[dict[str, Any]]:
        for (svc, subject), n in h.core.items():
            self.row(subject, svc)["core"] += n
        out = []
        for key in sorted(self.table):
            r = self.table[key]
            r["faults"] = len(r["faults"])
            out.append(r)
        return out


def coverage(h: _History, streams: Mapping[str, list[str]]) -> dict[str, Any]:
    """Per stream and consumer: deliveries and redeliveries; which streams' consumers never saw a redelivery."""
    per = h.per_consumer
    used = h.streams_stored | set(per)
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
