"""``contracts check``: who sends and who receives on every channel, and whether each producer's messages
are accepted by each of its consumers. No services are started.

Each producer/consumer pair is decided by :func:`~sagaproof.contracts.compat.is_compatible` (the engine
``diff`` and ``can-i-deploy`` use too): incompatible (with a counterexample) and undecided are both errors,
so the check fails closed; an undecided pair on a channel the system file accepts explicitly
(``[contracts] accept_undecided``) is a warning, marked accepted in the report."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from sagaproof.contracts.compat import Verdict, is_compatible
from sagaproof.contracts.model import ContractSet, Message
from sagaproof.contracts.subjects import overlaps

__all__ = ["ChannelRow", "CheckReport", "Problem", "check", "relevant_messages"]

Severity = Literal["error", "warning"]


@dataclass
class Problem:
    """One finding of ``contracts check``."""

    severity: Severity
    subject: str
    message: str
    producer: str | None = None
    consumer: str | None = None
    verdict: Verdict | None = None
    accepted: bool = False  # an undecided pair on a channel listed in [contracts] accept_undecided

    @property
    def undecided(self) -> bool:
        return self.verdict is not None and self.verdict.status == "unknown"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"severity": self.severity, "subject": self.subject, "message": self.message,
                             "producer": self.producer, "consumer": self.consumer, "accepted": self.accepted}
        if self.verdict is not None:
            d["verdict"] = self.verdict.to_dict()
            d.update(finding_fields(self.verdict))
        return d


def finding_fields(v: Verdict) -> dict[str, Any]:
    """The fields ``check --json`` and ``diff --json`` both give for a decided pair."""
    d: dict[str, Any] = {"compat": v.label, "keyword": v.keyword, "location": v.consumer_path,
                         "instance_path": v.instance_path, "reason": v.reason}
    if v.has_counterexample:
        d["counterexample"] = v.counterexample
    return d


@dataclass
class ChannelRow:
    """One line of the channels table."""

    subject: str
    producers: list[str]
    consumers: list[str]
    verdict: str  # ok | incompatible | undecided | undecided (accepted) | no producer | no consumer | unused
    problems: list[Problem] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"subject": self.subject, "producers": self.producers, "consumers": self.consumers,
                "verdict": self.verdict, "problems": [p.to_dict() for p in self.problems]}


@dataclass
class CheckReport:
    """The result of :func:`check`: ``ok`` is true when there is no error (warnings allowed)."""

    rows: list[ChannelRow]

    @property
    def accepted_undecided(self) -> list[str]:
        """The channels whose undecided pairs the system file accepts."""
        return sorted({p.subject for p in self.problems if p.accepted})

    @property
    def problems(self) -> list[Problem]:
        seen: dict[int, Problem] = {}
        for row in self.rows:
            for p in row.problems:
                seen.setdefault(id(p), p)
        return list(seen.values())

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok,
                "breaking": any(p.verdict is not None and p.verdict.status == "incompatible" for p in self.errors),
                "undecided": any(p.undecided and not p.accepted for p in self.problems),
                "accepted_undecided": self.accepted_undecided,
                "channels": [r.to_dict() for r in self.rows],
                "errors": len(self.errors), "warnings": len(self.warnings)}


def _union(messages: list[Message], attr: str) -> Any:
    schemas = [getattr(m, attr) for m in messages]
    schemas = [True if s is None else s for s in schemas]
    if len(schemas) == 1:
        return schemas[0]
    return {"anyOf": schemas}


def _describe(v: Verdict, producer: str, pmsg: Message, consumer: str, cmsgs: list[Message]) -> str:
    import json

    cloc = cmsgs[0].location if len(cmsgs) == 1 else ", ".join(m.location for m in cmsgs)
    text = f"{producer} sends {pmsg.name} that {consumer} may reject: {v.reason}"
    if v.has_counterexample:
        text += f"; e.g. {json.dumps(v.counterexample, default=str)}"
    if v.consumer_path:
        text += f" (rejected by {cloc}/payload{v.consumer_path})" if len(cmsgs) == 1 else \
                f" (rejected at {v.consumer_path} of {cloc})"
    return text


def check(cs: ContractSet, *, max_examples: int = 100, confirm_examples: int = 0,
          accept_undecided: Iterable[str] = ()) -> CheckReport:
    """Check every channel of *cs*.

    A consumed subject that nobody produces is an error; a produced subject that nobody consumes is a
    warning; a producer message some consumer rejects is an error (with a counterexample); a pair that
    cannot be decided is an error too, unless one of its channels is in *accept_undecided* (then a warning,
    marked accepted).

    Example::

        report = check(load_dir("contracts/"))
        sys.exit(report.exit_code)
    """
    accepted = set(accept_undecided)
    patterns = sorted(cs.channels)
    cache: dict[tuple[str, str, str, str, str, str], Problem | None] = {}
    rows: list[ChannelRow] = []
    for pat in patterns:
        ch = cs.channels[pat]
        related = [cs.channels[q] for q in patterns if overlaps(pat, q)]
        producers = sorted({s for r in related for s in r.producers})
        consumers = sorted({s for r in related for s in r.consumers})
        row = ChannelRow(pat, producers, consumers, "ok")
        rows.append(row)
        if not ch.producers and not ch.consumers:
            row.verdict = "unused"
            continue
        if ch.consumers and not any(r.producers for r in related):
            row.verdict = "no producer"
            row.problems.append(Problem("error", pat, f"{', '.join(sorted(ch.consumers))} consume(s) {pat}, "
                                        "but no service declares sending on it"))
        if ch.producers and not any(r.consumers for r in related):
            row.verdict = "no consumer" if row.verdict == "ok" else row.verdict
            row.problems.append(Problem("warning", pat, f"{', '.join(sorted(ch.producers))} send(s) on {pat}, "
                                        "but no service declares receiving it"))
        # Producer -> consumer pairs in which this channel takes part (as either side).
        pairs = []
        for other in related:
            for prod_ch, cons_ch in ((ch, other), (other, ch)):
                for psvc, pmsgs in prod_ch.producers.items():
                    for csvc, cmsgs in cons_ch.consumers.items():
                        pairs.append((prod_ch.subject, psvc, pmsgs, cons_ch.subject, csvc, cmsgs))
        worst = None
        for psub, psvc, pmsgs, csub, csvc, cmsgs in pairs:
            for pm in relevant_messages(pmsgs, cmsgs, psub != csub):
                key = (psub, psvc, pm.name, csub, csvc, pm.location)
                if key not in cache:
                    cache[key] = _pair(pat if psub == csub else f"{psub} -> {csub}", psvc, pm, csvc, cmsgs,
                                       max_examples, confirm_examples, bool(accepted & {psub, csub}))
                prob = cache[key]
                if prob is not None:
                    if all(prob is not p for p in row.problems):
                        row.problems.append(prob)
                    if prob.verdict is not None and prob.verdict.status == "incompatible":
                        worst = "incompatible"
                    elif worst is None:
                        worst = "undecided (accepted)" if prob.accepted else "undecided"
        if worst and row.verdict in ("ok", "no consumer"):
            row.verdict = worst
    return CheckReport(rows)


def relevant_messages(pmsgs: list[Message], cmsgs: list[Message], different_patterns: bool) -> list[Message]:
    """The producer messages to compare with a consumer's.

    When producer and consumer use different (overlapping) patterns, e.g. ``payments.*`` and
    ``payments.completed``, and message names overlap, only the messages the consumer names are compared:
    a producer sending PaymentFailed on ``payments.*`` does not send it to ``payments.completed``.
    """
    if different_patterns:
        names = {m.name for m in cmsgs}
        same = [m for m in pmsgs if m.name in names]
        if same:
            return same
    return pmsgs


def _pair(subject: str, psvc: str, pm: Message, csvc: str, cmsgs: list[Message], max_examples: int,
          confirm_examples: int, accepted: bool = False) -> Problem | None:
    v = is_compatible(pm.payload, _union(cmsgs, "payload"), max_examples=max_examples,
                      confirm_examples=confirm_examples)
    if v.status == "incompatible":
        return Problem("error", subject, _describe(v, psvc, pm, csvc, cmsgs), psvc, csvc, v)
    if v.status == "unknown":
        what = "accepted as undecided by the system file" if accepted else \
            "fails closed (accept it with [contracts] accept_undecided only after reading the schemas)"
        return Problem("warning" if accepted else "error", subject,
                       f"{psvc} -> {csvc}, {pm.name}: undecided, {what}: {v.reason}", psvc, csvc, v, accepted=accepted)
    cheads = [m for m in cmsgs if m.headers is not None]
    if cheads:
        hv = is_compatible(pm.headers if pm.headers is not None else {"type": "object"},
                           _union(cheads, "headers"), max_examples=max_examples, confirm_examples=0)
        if hv.status == "incompatible":
            hv.reason = "headers: " + hv.reason
            return Problem("error", subject, _describe(hv, psvc, pm, csvc, cheads).replace("/payload", "/headers"),
                           psvc, csvc, hv)
        if hv.status == "unknown":
            return Problem("warning" if accepted else "error", subject,
                           f"{psvc} -> {csvc}, {pm.name}: headers undecided: {hv.reason}", psvc, csvc, hv,
                           accepted=accepted)
    return None
