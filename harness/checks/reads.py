"""The status-read checks: what clients read must agree with the saga on the wire.

A saga that declares ``[sagas.NAME.status]`` is read during the run and once after it (``read`` records,
:mod:`harness.session.reads`). Four checks hold those reads against the saga's events:

* ``read_final_agrees``: the read made once the system was quiescent shows the saga's outcome on the wire (a
  success value for a saga that ended in success, an abort value for one that aborted);
* ``read_terminal_stable``: once a read showed a terminal value (success or abort), no later read shows another;
* ``read_not_contradicted``: no read shows an outcome the wire contradicts at that moment (success after the
  saga's abort event was recorded, or abort after its success event);
* ``read_resolves_unknown``: a start request whose outcome was ``unknown`` is resolved by the reads: its saga
  started on the wire (and is judged by the saga checks), or the system answers that it has no such saga, and
  then no event of it appears afterwards.

Each is not applicable when no saga declares a status read, and not judged when one does but there was
nothing to read (no read answered), so a run without reads never passes them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sagaproof.harness.checks.findings import Finding
from sagaproof.harness.checks.results import CheckOutcome
from sagaproof.harness.config import SagaSpec, field_at

FINAL, STABLE, CONTRADICTED, UNKNOWN = ("read_final_agrees", "read_terminal_stable", "read_not_contradicted",
                                        "read_resolves_unknown")
READ_CHECKS = (FINAL, STABLE, CONTRADICTED, UNKNOWN)
READ_CHECK_TITLES = {
    FINAL: "the final status read agrees with the saga's outcome on the wire",
    STABLE: "a terminal status never changes in a later read",
    CONTRADICTED: "no read shows an outcome the wire contradicts at that moment",
    UNKNOWN: "every start request with an unknown outcome is resolved by the reads",
}
MAX_FINDINGS = 200
MAX_SHOWN = 80  # events of one saga kept for its sequence diagram in the report
OPPOSITE = {"success": "abort", "abort": "success"}


@dataclass
class Wire:
    """What the wire showed of one saga instance: its start, its outcome events and every event's time."""

    start: float | None = None
    outcomes: list[tuple[float, str, str]] = field(default_factory=list)  # (t, subject, "success"|"abort")
    last_t: float | None = None
    events: int = 0
    shown: list[dict[str, Any]] = field(default_factory=list)  # the first MAX_SHOWN events, for the report


    def outcome(self) -> tuple[float, str, str] | None:
        """The first outcome event, or None when it has none or both kinds (a contradiction on the wire)."""
        kinds = {k for _, _, k in self.outcomes}
        return min(self.outcomes) if len(kinds) == 1 else None

    def describe(self) -> str:
        if not self.outcomes:
            return "no outcome on the wire" if self.start is not None else "no event on the wire"
        return ", ".join(f"{s} ({k}) at t={t:.3f}s" for t, s, k in sorted(self.outcomes)[:3])


def _read_text(r: dict[str, Any]) -> str:
    value = r.get("value")
    shown = "not found" if r.get("outcome") == "ok" and not r.get("found") else (
        f"{value!r} ({r.get('status') or 'an undeclared value'})" if r.get("outcome") == "ok"
        else f"{r.get('outcome')}: {r.get('detail')}")
    return f"{r.get('request')} at t={float(r.get('invoked') or 0):.3f}s ({r.get('phase')}) -> {shown}"


def _wire(history: Any, sagas: dict[str, SagaSpec], wanted: set[tuple[str, str]]) -> dict[tuple[str, str], Wire]:
    """The wire's view of the wanted saga instances, in one pass over the messages."""
    roles: dict[str, list[tuple[str, str]]] = {}
    for name, s in sagas.items():
        roles.setdefault(s.start, []).append((name, "start"))
        for sub in s.success:
            roles.setdefault(sub, []).append((name, "success"))
        for sub in s.abort:
            roles.setdefault(sub, []).append((name, "abort"))
        for st in s.steps:
            for step_subject in (st.success, st.failure, st.compensation):
                if step_subject:
                    roles.setdefault(step_subject, []).append((name, "step"))
    out: dict[tuple[str, str], Wire] = {}
    for rec in history.of("message"):
        done: set[str] = set()  # one role per message and saga (a start or outcome before a step's role)
        for name, role in roles.get(str(rec.get("subject")), ()):
            if name in done:
                continue
            done.add(name)
            value = field_at(rec.get("data"), sagas[name].key)
            if value is None or isinstance(value, dict | list) or (name, str(value)) not in wanted:
                continue
            w = out.setdefault((name, str(value)), Wire())
            t = float(rec.get("t") or 0.0)
            w.events += 1
            if len(w.shown) < MAX_SHOWN:
                w.shown.append({"t": t, "service": rec.get("producer"), "subject": rec.get("subject"),
                                "role": role, "event_id": field_at(rec.get("data"), sagas[name].event_id)})
            w.last_t = t if w.last_t is None else max(w.last_t, t)
            if role == "start":
                w.start = t if w.start is None else min(w.start, t)
            elif role in ("success", "abort"):
                w.outcomes.append((t, str(rec.get("subject")), role))
    return out


def read_checks(ctx: Any) -> Iterator[CheckOutcome]:
    """The four status-read checks over the window (see the module docstring)."""
    declared = {n: s for n, s in ctx.spec.sagas.items() if s.status is not None}
    if not declared:
        for name in READ_CHECKS:
            yield CheckOutcome.not_applicable(name, "no saga declares a status read ([sagas.NAME.status]), so "
                                                    "there is nothing a client reads to hold against the wire")
        return
    if not ctx.spec.reads.enabled:
        for name in READ_CHECKS:
            yield CheckOutcome.not_applicable(name, "[reads] enabled = false: the run made no status reads")
        return
    keys = None
    if not ctx.window.everything:
        from sagaproof.harness.checks import _window_keys

        keys = {(n, k) for n, ks in _window_keys(ctx.history, declared, ctx.window).items() for k in ks}
    reads: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for rec in ctx.history.of("read"):
        pair = (str(rec.get("saga")), str(rec.get("key")))
        if pair[0] in declared and (keys is None or pair in keys):
            reads.setdefault(pair, []).append(rec)
    ops = list(ctx.history.of("operation"))
    by_request_id = keyed_by_request_id(ops)
    unknown_ops = [{**rec, "key": op_key(rec, by_request_id)} for rec in ops
                   if rec.get("outcome") == "unknown" and ctx.window.holds(rec)]
    only = next(iter(ctx.spec.sagas)) if len(ctx.spec.sagas) == 1 else None
    answered = {p: [r for r in rs if r.get("outcome") == "ok"] for p, rs in reads.items()}
    if not any(answered.values()):
        why = ("no status read was made" if not reads else
               f"none of the {sum(map(len, reads.values()))} status reads was answered")
        for name in READ_CHECKS[:3]:
            yield CheckOutcome.not_judged(name, f"{why}, so no client's view could be held against the wire; "
                                                f"check that [sagas.NAME.status] names a reachable endpoint and "
                                                f"that [reads] is not disabled")
        yield from _unknown(ctx, declared, unknown_ops, only, reads, {})
        return
    wanted = set(reads) | {((rec.get("saga") or only), str(rec.get("key"))) for rec in unknown_ops
                           if rec.get("key") is not None}
    wire = _wire(ctx.history, declared, {(str(s), k) for s, k in wanted})
    yield _final(reads, wire, bool(ctx.facts.get("reads_quiescent", True)))
    yield _stable(answered, wire, ctx.window.everything)
    yield _contradicted(answered, wire)
    yield from _unknown(ctx, declared, unknown_ops, only, reads, wire)


def keyed_by_request_id(ops: list[dict[str, Any]]) -> bool:
    """Whether the system keys its sagas by the workload's request id (``[workload] idempotency_key`` or
    ``{request_id}`` sent with each start request): every answered start request that names a key names its
    request id, and at least one does. Then the request id of a request that got no answer is its saga's key."""
    answered = [r for r in ops if r.get("outcome") == "ok" and r.get("key") is not None]
    return bool(answered) and all(r.get("request_id") is not None and str(r.get("key")) == str(r.get("request_id"))
                                  for r in answered)


def op_key(rec: dict[str, Any], by_request_id: bool) -> Any:
    """A start request's saga key: the one its answer or body named, else (when the system keys its sagas by
    request id, :func:`keyed_by_request_id`) its request id, else None."""
    if rec.get("key") is not None:
        return rec.get("key")
    return rec.get("request_id") if by_request_id else None


def _finding(check: str, saga: str, key: str, title: str, reads: list[dict[str, Any]], w: Wire | None,
             t: float | None) -> Finding:
    lines = [f"saga {saga} {key}: {title}", f"  wire: {(w or Wire()).describe()}", "  reads:"]
    lines += [f"    {_read_text(r)}" for r in reads[:12]]
    return Finding(check, f"saga {saga} {key}: {title}", "\n".join(lines), saga=saga, key=key, t=t,
                   data={"reads": [{k: r.get(k) for k in ("invoked", "completed", "outcome", "value", "status",
                                                          "found", "phase", "request")} for r in reads[:12]],
                         "wire_outcomes": [list(o) for o in (w.outcomes if w else [])],
                         "events": sorted((w.shown if w else []), key=lambda e: float(e["t"]))})


def _final(reads: dict[tuple[str, str], list[dict[str, Any]]], wire: dict[tuple[str, str], Wire],
           quiescent: bool = True) -> CheckOutcome:
    """``quiescent``: the final reads were made once the system was quiescent (every delivery answered), so a
    pending value then is final; otherwise (a run that ended by its time-out) the status's owner may not have
    taken the outcome event yet, and a pending value is not held against it."""
    findings: list[Finding] = []
    judged = unread = open_ = unsettled = 0
    for (saga, key), rs in sorted(reads.items()):
        finals = [r for r in rs if r.get("phase") == "final"]
        if not finals:
            continue
        w = wire.get((saga, key))
        outcome = w.outcome() if w is not None else None
        if outcome is None:
            open_ += 1  # no single outcome on the wire: termination or no_contradiction judges the saga
            continue
        last = next((r for r in reversed(finals) if r.get("outcome") == "ok"), None)
        if last is None:
            unread += 1
            continue
        judged += 1
        t, subject, kind = outcome
        if not last.get("found"):
            title = f"the system has no such saga, but it ended in {kind} on the wire ({subject})"
        elif last.get("status") == "pending" and not quiescent:
            unsettled += 1
            continue
        elif last.get("status") != kind:
            shown = last.get("status") or "a value declared nowhere"
            title = f"the final read shows {last.get('value')!r} ({shown}), but the saga ended in {kind} ({subject})"
        else:
            continue
        if len(findings) < MAX_FINDINGS:
            findings.append(_finding(FINAL, saga, key, title, finals, w, last.get("invoked")))
    if judged == 0:
        why = (f"{unread} saga(s) had a final read but none was answered" if unread else
               "no saga with an outcome on the wire had a final read")
        return CheckOutcome.not_judged(FINAL, why)
    extra = "".join([f"; {unread} could not be read" if unread else "",
                     f"; {unsettled} still pending, read before the system was quiescent" if unsettled else "",
                     f"; {open_} without one outcome on the wire left to the saga checks" if open_ else ""])
    summary = (f"{READ_CHECK_TITLES[FINAL]}: {judged} sagas judged" + extra if not findings else
               f"{len(findings)} of {judged} sagas read a final status that disagrees with the wire" + extra)
    return CheckOutcome(FINAL, not findings, summary, [f.message for f in findings[:20]], findings)


def _stable(answered: dict[tuple[str, str], list[dict[str, Any]]], wire: dict[tuple[str, str], Wire],
            window_everything: bool = True) -> CheckOutcome:
    findings: list[Finding] = []
    judged = 0
    for (saga, key), rs in sorted(answered.items()):
        rs = sorted((r for r in rs if r.get("found")), key=lambda r: float(r.get("invoked") or 0))
        if len(rs) < 2:
            continue
        judged += 1
        for i, first in enumerate(rs):
            if first.get("status") not in ("success", "abort"):
                continue
            done = float(first.get("completed") or 0)
            later = next((r for r in rs[i + 1:] if float(r.get("invoked") or 0) > done
                          and r.get("value") != first.get("value")), None)
            if later is None:
                continue
            title = (f"the status was {first.get('value')!r} ({first.get('status')}, terminal) and a later read "
                     f"shows {later.get('value')!r} ({later.get('status') or 'undeclared'})")
            if len(findings) < MAX_FINDINGS:
                findings.append(_finding(STABLE, saga, key, title, rs, wire.get((saga, key)), later.get("invoked")))
            break
    if judged == 0:
        if not window_everything:  # a test's window: its sagas are read once, by check_sagas
            return CheckOutcome.not_applicable(STABLE, "no saga of this window was read more than once (a test's "
                                                       "sagas are read while they run only when [reads] sample "
                                                       "picks them), so no change could be seen")
        return CheckOutcome.not_judged(STABLE, "no saga was read twice with an answer, so no change could be seen")
    summary = (f"{READ_CHECK_TITLES[STABLE]}: {judged} sagas read more than once" if not findings else
               f"{len(findings)} of {judged} sagas read more than once changed a terminal status")
    return CheckOutcome(STABLE, not findings, summary, [f.message for f in findings[:20]], findings)


def _contradicted(answered: dict[tuple[str, str], list[dict[str, Any]]],
                  wire: dict[tuple[str, str], Wire]) -> CheckOutcome:
    findings: list[Finding] = []
    judged = 0
    for (saga, key), rs in sorted(answered.items()):
        w = wire.get((saga, key))
        outcome = w.outcome() if w is not None else None
        if outcome is None:
            continue
        t, subject, kind = outcome
        after = [r for r in rs if r.get("found") and float(r.get("invoked") or 0) > t]
        if not after:
            continue
        judged += 1
        bad = next((r for r in after if r.get("status") == OPPOSITE[kind]), None)
        if bad is None:
            continue
        title = (f"a read at t={float(bad.get('invoked') or 0):.3f}s shows {bad.get('value')!r} "
                 f"({bad.get('status')}) after the saga's {kind} event {subject} at t={t:.3f}s")
        if len(findings) < MAX_FINDINGS:
            findings.append(_finding(CONTRADICTED, saga, key, title, rs, w, bad.get("invoked")))
    if judged == 0:
        return CheckOutcome.not_judged(CONTRADICTED, "no answered read was made after a saga's outcome was on the "
                                                     "wire, so none could contradict it")
    summary = (f"{READ_CHECK_TITLES[CONTRADICTED]}: {judged} sagas read after their outcome" if not findings else
               f"{len(findings)} of {judged} sagas were read showing the outcome the wire contradicts")
    return CheckOutcome(CONTRADICTED, not findings, summary, [f.message for f in findings[:20]], findings)


def _unknown(ctx: Any, declared: dict[str, SagaSpec], ops: list[dict[str, Any]], only: str | None,
             reads: dict[tuple[str, str], list[dict[str, Any]]], wire: dict[tuple[str, str], Wire]
             ) -> Iterator[CheckOutcome]:
    if not ops:
        yield CheckOutcome.not_applicable(UNKNOWN, "no start request had an unknown outcome, so there was "
                                                   "nothing for the reads to resolve")
        return
    keyed = [r for r in ops if r.get("key") is not None and (r.get("saga") or only) in declared]
    if not keyed:
        yield CheckOutcome.not_applicable(
            UNKNOWN, f"{len(ops)} start request(s) had an unknown outcome, but none named its saga's key (the key "
                     f"comes from an answer that never came), so no read can find what became of them; put the key "
                     f"in the request body, or key the sagas by the request's idempotency key ([workload] "
                     f"idempotency_key), to have them resolved")
        return
    findings: list[Finding] = []
    resolved = unresolved = 0
    for op in keyed:
        saga, key = str(op.get("saga") or only), str(op.get("key"))
        w = wire.get((saga, key))
        rs = [r for r in reads.get((saga, key), []) if r.get("outcome") == "ok"]
        # "no such saga" once the system was quiescent (a read while it ran may race the request itself)
        gone = next((r for r in rs if not r.get("found") and r.get("phase") != "during"), None)
        title = None
        if gone is not None and w is not None and w.last_t is not None and w.last_t > float(gone.get("invoked") or 0):
            title = (f"start request #{op.get('op')} got no answer and the system said it has no such saga, but "
                     f"{w.events} event(s) of it appeared afterwards (last at t={w.last_t:.3f}s)")
        elif w is not None and w.start is not None:
            resolved += 1  # it got in: the saga checks judge it
            continue
        elif not rs:
            unresolved += 1
            continue
        elif rs[-1].get("found"):
            title = (f"start request #{op.get('op')} got no answer; the system has the saga "
                     f"({rs[-1].get('value')!r}) but its start event never appeared on the wire")
        resolved += 1
        if title and len(findings) < MAX_FINDINGS:
            findings.append(_finding(UNKNOWN, saga, key, title, rs, w, op.get("invoked")))
    if resolved == 0:
        yield CheckOutcome.not_judged(UNKNOWN, f"{unresolved} start request(s) with an unknown outcome were never "
                                               f"read with an answer, so what became of them is not known")
        return
    extra = f"; {unresolved} never read with an answer" if unresolved else ""
    summary = (f"{READ_CHECK_TITLES[UNKNOWN]}: {resolved} resolved" + extra if not findings else
               f"{len(findings)} of {resolved} unknown start requests resolved wrongly" + extra)
    yield CheckOutcome(UNKNOWN, not findings, summary, [f.message for f in findings[:20]], findings)
