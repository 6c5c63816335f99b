"""The saga checker: judge a recorded event history, one correlation key at a time.

The run loop records every message on the wire to ``events.jsonl`` (plus fault and phase records). After the
system has had time to converge, :func:`check_history` reads that history once, groups the messages of each
saga instance by (saga, correlation key), and checks five properties of every instance:

``no_contradiction``
    never both a success and an abort outcome, never a forward success (step or outcome) after an abort,
    never a step's success after that step's own failure.
``no_double_effect``
    a step's success event seen twice for one key with no compensation between (what a non-idempotent
    consumer does under redelivery); likewise two start events for one key.
``compensation_completeness``
    when a saga aborts, every step that had succeeded is compensated, exactly once.
``compensation_order``
    a compensation only after its forward step, never without it.
``termination``
    exactly one terminal event, no later than ``deadline`` after the faults healed (or after the saga
    started, if it started after the heal).

Identity of events: a message is a *wire duplicate* of an earlier one when it has the same subject and the
same ``data.event_id`` (or ``Nats-Msg-Id`` header, or the same stream sequence). Wire duplicates are one fact
delivered twice, not a second effect, so they are counted (``duplicates_ignored``) and otherwise skipped.

The pass is linear in the history's size: one dictionary lookup per record, constant work per message, then
a finalisation that touches each stored message a constant number of times.
"""

from __future__ import annotations

import gc
import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sagaproof.harness.config import SagaSpec

# Checks, most important first. The order is the order violations are reported in:
#  1. no_contradiction: the system told the world two incompatible outcomes; nothing downstream can be right.
#  2. no_double_effect: an effect (a charge, a reservation) applied twice; real damage that no compensation
#     in the protocol will undo.
#  3. compensation_completeness: an effect that should have been undone was left in place (or undone twice).
#  4. compensation_order: an undo without its do (a refund of money never taken); corrupts state, but is
#     often a symptom of a reordering the three above already explain.
#  5. termination: a stuck or late saga. Often the consequence of one of the above, and the least specific
#     about what went wrong, so it comes last.
CHECKS: tuple[str, ...] = (
    "no_contradiction",
    "no_double_effect",
    "compensation_completeness",
    "compensation_order",
    "termination",
)
CHECK_TITLES: dict[str, str] = {
    "no_contradiction": "No contradiction",
    "no_double_effect": "No double effect",
    "compensation_completeness": "Compensation completeness",
    "compensation_order": "Compensation order",
    "termination": "Termination",
}
_RANK = {name: i for i, name in enumerate(CHECKS)}

# Roles of a subject within a saga.
START, SUCCESS, ABORT, STEP_OK, STEP_FAIL, STEP_COMP = range(6)
_ROLE_LABEL = {START: "start", SUCCESS: "outcome: success", ABORT: "outcome: abort"}


@dataclass
class SagaViolation:
    """One saga instance (saga, key) that broke one check, with everything needed to read it on its own.

    ``events`` are the instance's messages in order, each ``{"t", "service", "subject", "role", "seq",
    "event_id"}``; ``faults_active[i]`` lists the ids of the faults active when ``events[i]`` was recorded;
    ``faults`` describes those ids; ``marks`` holds the indexes of the events the violation is about.
    """

    saga: str
    key: str
    check: str
    expected: str
    events: list[dict[str, Any]]
    faults_active: list[list[str]]
    detail: str = ""
    faults: dict[str, dict[str, Any]] = field(default_factory=dict)
    marks: list[int] = field(default_factory=list)
    repro: str | None = None

    @property
    def title(self) -> str:
        """One line: which check failed for which saga instance."""
        return f"{CHECK_TITLES.get(self.check, self.check)} violated: saga '{self.saga}' key {self.key}"

    def _fault_label(self, fid: str) -> str:
        f = self.faults.get(fid)
        if not f:
            return fid
        target = f.get("target")
        return f"{fid} {f.get('kind', '?')}" + (f" {target}" if target else "")

    def message(self, repro: str | None = None) -> str:
        """The human text: saga and key, what was expected, what was seen, faults, and how to reproduce it."""
        lines = [self.title, f"  expected: {self.expected}"]
        if self.detail:
            lines.append(f"  but:      {self.detail}")
        lines.append(f"  events seen ({len(self.events)}):" if self.events else "  events seen: none")
        width_s = max((len(str(e.get("service") or "?")) for e in self.events), default=1)
        width_j = max((len(str(e.get("subject"))) for e in self.events), default=1)
        for i, e in enumerate(self.events):
            fa = self.faults_active[i] if i < len(self.faults_active) else []
            mark = ">>" if i in self.marks else "  "
            faults = ("  faults: " + ", ".join(self._fault_label(f) for f in fa)) if fa else ""
            lines.append(f"  {mark} t={e['t']:.3f}s  {str(e.get('service') or '?'):<{width_s}}  "
                         f"{str(e.get('subject')):<{width_j}}{faults}")
        cmd = repro or self.repro
        if cmd:
            lines.append(f"  reproduce: {cmd}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, with the rendered message."""
        return {"saga": self.saga, "key": self.key, "check": self.check, "title": self.title,
                "expected": self.expected, "detail": self.detail, "events": self.events,
                "faults_active": self.faults_active, "faults": self.faults, "marks": self.marks,
                "repro": self.repro, "message": self.message()}


@dataclass
class CheckResult:
    """What :func:`check_history` found.

    ``convergence`` maps the correlation key (``saga/key`` when the system has more than one saga) to the
    seconds from its start event to its first terminal event. ``counts[check]`` is ``{"passed", "failed"}``
    over saga instances (``termination`` also has ``"pending"``: no outcome yet, but still within its deadline).
    """

    sagas_checked: int = 0
    violations: list[SagaViolation] = field(default_factory=list)
    convergence: dict[str, float] = field(default_factory=dict)
    convergence_after_heal: float | None = None
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    pending: list[tuple[str, str]] = field(default_factory=list)
    messages_seen: int = 0
    messages_in_sagas: int = 0
    duplicates_ignored: int = 0
    unattributed: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    healed_at: float = 0.0
    end_at: float = 0.0

    @property
    def ok(self) -> bool:
        """True when no saga instance violated any check."""
        return not self.violations

    @property
    def violated_sagas(self) -> list[tuple[str, str]]:
        """(saga, key) of every instance with a violation, most important first, without repeats."""
        seen: dict[tuple[str, str], None] = {}
        for v in self.violations:
            seen.setdefault((v.saga, v.key), None)
        return list(seen)

    def by_check(self, check: str) -> list[SagaViolation]:
        """The violations of one check."""
        return [v for v in self.violations if v.check == check]

    def with_repro(self, command: str) -> CheckResult:
        """Fill the reproduce command into every violation that has none; returns self."""
        for v in self.violations:
            if not v.repro:
                v.repro = command
        return self

    def convergence_stats(self) -> dict[str, float | int | None]:
        """count, mean, p50, p95, p99 and max of the per-saga convergence times (seconds)."""
        values = sorted(self.convergence.values())
        if not values:
            return {"count": 0, "mean": None, "p50": None, "p95": None, "p99": None, "max": None}

        def pct(p: float) -> float:
            return values[min(len(values) - 1, max(0, math.ceil(p * len(values)) - 1))]

        return {"count": len(values), "mean": sum(values) / len(values), "p50": pct(0.50), "p95": pct(0.95),
                "p99": pct(0.99), "max": values[-1]}

    def summary(self, check: str) -> str:
        """One line for one check, e.g. '198 of 200 sagas passed; 2 failed'."""
        c = self.counts.get(check, {})
        passed, failed, pending = c.get("passed", 0), c.get("failed", 0), c.get("pending", 0)
        text = f"{passed} of {self.sagas_checked} sagas passed"
        if failed:
            text += f"; {failed} failed"
        if pending:
            text += f"; {pending} still within their deadline"
        return text

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"ok": self.ok, "sagas_checked": self.sagas_checked, "counts": self.counts,
                "violations": [v.to_dict() for v in self.violations], "convergence": self.convergence,
                "convergence_stats": self.convergence_stats(), "convergence_after_heal": self.convergence_after_heal,
                "pending": [list(p) for p in self.pending], "messages_seen": self.messages_seen,
                "messages_in_sagas": self.messages_in_sagas, "duplicates_ignored": self.duplicates_ignored,
                "unattributed": self.unattributed, "outcomes": self.outcomes, "healed_at": self.healed_at,
                "end_at": self.end_at}


class _Instance:
    """The messages of one (saga, key), in order; each is (slim record, role, step index, active faults)."""

    __slots__ = ("events", "ids")

    def __init__(self) -> None:
        self.events: list[tuple[dict[str, Any], int, int, tuple[str, ...]]] = []
        self.ids: set[Any] | None = None


def _subject_index(sagas: Mapping[str, SagaSpec]) -> dict[str, list[tuple[str, int, int]]]:
    index: dict[str, list[tuple[str, int, int]]] = {}

    def add(subject: str | None, saga: str, role: int, step: int = -1) -> None:
        if subject:
            entries = index.setdefault(subject, [])
            if (saga, role, step) not in entries:
                entries.append((saga, role, step))

    for name, spec in sagas.items():
        add(spec.start, name, START)
        for s in spec.success:
            add(s, name, SUCCESS)
        for s in spec.abort:
            add(s, name, ABORT)
        for i, step in enumerate(spec.steps):
            add(step.success, name, STEP_OK, i)
            add(step.failure, name, STEP_FAIL, i)
            add(step.compensation, name, STEP_COMP, i)
    return index


def _identity(rec: dict[str, Any], data: dict[str, Any]) -> Any:
    eid = data.get("event_id")
    if eid is not None:
        return ("e", rec.get("subject"), str(eid))
    headers = rec.get("headers")
    if headers:
        mid = headers.get("Nats-Msg-Id")
        if mid:
            return ("m", rec.get("subject"), str(mid))
    sseq = rec.get("stream_seq")
    if sseq is not None:
        return ("s", rec.get("stream"), sseq)
    return None


def check_history(records: Iterable[dict[str, Any]], sagas: Mapping[str, SagaSpec], *, healed_at: float,
                  end_at: float) -> CheckResult:
    """Check every saga instance in a recorded history.

    Args:
        records: the history (``events.jsonl`` records, in time order): messages, fault_start/fault_end
            and phase records; other kinds are ignored.
        sagas: the system's sagas (``SystemSpec.sagas``).
        healed_at: seconds since run start when the last fault healed; the termination deadline counts from
            here (or from a saga's start, if later).
        end_at: seconds since run start when the history ends; a saga with no outcome is a termination
            violation only if its deadline is at or before ``end_at``, else it is *pending*.

    Returns:
        A :class:`CheckResult`; ``violations`` are ordered by check importance (see ``CHECKS``), then by the
        time of the instance's first event.

    Example:
        >>> from harness.config import SagaSpec, StepSpec
        >>> spec = SagaSpec("checkout", "order_id", "orders.created", ("orders.completed",), (),
        ...                 (StepSpec("charge", "payment", "payments.completed"),))
        >>> msg = lambda t, s: {"kind": "message", "t": t, "subject": s, "data": {"order_id": "o1"}}
        >>> r = check_history([msg(0.1, "orders.created"), msg(0.2, "payments.completed"),
        ...                    msg(0.3, "orders.completed")], {"checkout": spec}, healed_at=0.0, end_at=60.0)
        >>> (r.sagas_checked, r.ok, r.convergence)
        (1, True, {'o1': 0.2})
    """
    # The pass allocates one small object per message and creates no reference cycles; pausing the cyclic
    # collector keeps it from rescanning an ever larger heap (a 30% saving at a million messages).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _check(records, sagas, healed_at, end_at)
    finally:
        if gc_was_enabled:
            gc.enable()


OWED_CHECKS = ("termination", "compensation_completeness")


def judge_as_if_due(records: Iterable[dict[str, Any]], sagas: Mapping[str, SagaSpec], *,
                    healed_at: float) -> tuple[CheckResult, list[SagaViolation]]:
    """Check the history as if every deadline had already passed; also return what is still *owed*.

    The owed violations (a missing outcome or compensation) may yet be mended by messages still on their way;
    the others cannot. A caller that waits for convergence stops waiting once nothing is owed, and otherwise
    keeps waiting until the deadlines really pass.
    """
    records = list(records)
    last = max((float(r.get("t") or 0.0) for r in records), default=healed_at)
    due = max(last, healed_at) + max((s.deadline for s in sagas.values()), default=0.0)  # every deadline passed
    result = check_history(records, sagas, healed_at=healed_at, end_at=due)
    return result, [v for v in result.violations if v.check in OWED_CHECKS]


def _check(records: Iterable[dict[str, Any]], sagas: Mapping[str, SagaSpec], healed_at: float,
           end_at: float) -> CheckResult:
    index = _subject_index(sagas)
    keyname = {name: spec.key for name, spec in sagas.items()}
    instances: dict[tuple[str, str], _Instance] = {}
    faults: dict[str, dict[str, Any]] = {}
    active: dict[str, None] = {}  # insertion-ordered set of active fault ids
    snapshot: tuple[str, ...] = ()
    result = CheckResult(healed_at=healed_at, end_at=end_at)

    for rec in records:
        kind = rec.get("kind")
        if kind == "message":
            result.messages_seen += 1
            entries = index.get(rec.get("subject"))  # type: ignore[arg-type]
            if entries is None:
                continue
            data = rec.get("data")
            for saga, role, step in entries:
                key = data.get(keyname[saga]) if isinstance(data, dict) else None
                if key is None:
                    result.unattributed += 1
                    continue
                ident = (saga, str(key))
                inst = instances.get(ident)
                if inst is None:
                    inst = instances[ident] = _Instance()
                eid = _identity(rec, data)
                if eid is not None:
                    if inst.ids is None:
                        inst.ids = set()
                    elif eid in inst.ids:
                        result.duplicates_ignored += 1
                        continue
                    inst.ids.add(eid)
                # Keep a slim copy, not the record, so a streamed history need not stay in memory.
                slim = {"t": float(rec.get("t") or 0.0), "subject": rec.get("subject"),
                        "producer": rec.get("producer"), "seq": rec.get("seq"), "event_id": data.get("event_id")}
                inst.events.append((slim, role, step, snapshot))
                result.messages_in_sagas += 1
        elif kind == "fault_start":
            f = rec.get("fault") or {}
            fid = str(f.get("id"))
            faults[fid] = f
            active[fid] = None
            snapshot = tuple(active)
        elif kind == "fault_end":
            active.pop(str(rec.get("fault_id")), None)
            snapshot = tuple(active)

    counts = {c: {"passed": 0, "failed": 0} for c in CHECKS}
    counts["termination"]["pending"] = 0
    outcomes = {"success": 0, "abort": 0, "none": 0, "both": 0}
    multi = len(sagas) > 1
    last_terminal: float | None = None
    found: list[tuple[int, float, str, SagaViolation]] = []

    for (saga, key), inst in instances.items():
        spec = sagas[saga]
        v_list, first_terminal, outcome = _finalise(saga, key, spec, inst, healed_at, end_at, faults)
        outcomes[outcome] += 1
        failed = {v.check for v in v_list}
        for c in CHECKS:
            if c in failed:
                counts[c]["failed"] += 1
            elif c == "termination" and first_terminal is None and outcome == "none":
                counts[c]["pending"] += 1
                result.pending.append((saga, key))
            else:
                counts[c]["passed"] += 1
        t0 = float(inst.events[0][0].get("t", 0.0))
        for v in v_list:
            found.append((_RANK[v.check], t0, key, v))
        if first_terminal is not None:
            start_t = next((float(r.get("t", 0.0)) for r, role, _, _ in inst.events if role == START), t0)
            result.convergence[f"{saga}/{key}" if multi else key] = round(first_terminal - start_t, 6)
            last_terminal = first_terminal if last_terminal is None else max(last_terminal, first_terminal)

    found.sort(key=lambda x: (x[0], x[1], x[2]))
    result.violations = [v for *_, v in found]
    result.sagas_checked = len(instances)
    result.counts = counts
    result.outcomes = outcomes
    if last_terminal is not None:
        result.convergence_after_heal = round(max(0.0, last_terminal - healed_at), 6)
    return result


def _finalise(saga: str, key: str, spec: SagaSpec, inst: _Instance, healed_at: float, end_at: float,
              faults: dict[str, dict[str, Any]]) -> tuple[list[SagaViolation], float | None, str]:
    """Run the five checks over one instance's events; returns (violations, first terminal time, outcome)."""
    events = inst.events
    n_steps = len(spec.steps)
    outstanding = [0] * n_steps  # successes not yet compensated, per step
    succeeded = [0] * n_steps  # successes so far, per step
    open_success: list[deque[int]] = [deque() for _ in range(n_steps)]  # indexes of uncompensated successes
    failed_at = [-1] * n_steps  # index of the step's failure event
    starts: list[int] = []
    terminals: list[int] = []
    success_terms: list[int] = []
    abort_at = -1
    # marks per check
    contra: list[int] = []
    contra_why: list[str] = []
    double: list[int] = []
    double_why: list[str] = []
    order: list[int] = []
    order_why: list[str] = []
    extra_comp: list[int] = []
    extra_why: list[str] = []
    last_ok = [-1] * n_steps  # index of each step's last success, to tell "before" from "without"
    for i, (_, role, step, _) in enumerate(events):
        if role == STEP_OK:
            last_ok[step] = i

    for i, (rec, role, step, _) in enumerate(events):
        subject = rec.get("subject")
        if role == START:
            if starts:
                double.append(i)
                double_why.append(f"the saga was started twice ({subject} at t={_t(events, starts[0])}s and "
                                  f"t={_t(events, i)}s)")
            starts.append(i)
        elif role in (SUCCESS, ABORT):
            terminals.append(i)
            if role == SUCCESS:
                success_terms.append(i)
                if abort_at >= 0:
                    contra.append(i)
                    contra_why.append(f"it ended with success ({subject}) after it had aborted "
                                      f"({events[abort_at][0].get('subject')})")
            else:
                if success_terms and abort_at < 0:
                    contra.append(i)
                    contra_why.append(f"it ended with abort ({subject}) after it had succeeded "
                                      f"({events[success_terms[0]][0].get('subject')})")
                if abort_at < 0:
                    abort_at = i
        elif role == STEP_OK:
            name = spec.steps[step].name
            if abort_at >= 0 and succeeded[step] == 0:  # a repeated success is a double effect, below
                contra.append(i)
                contra_why.append(f"step '{name}' succeeded ({subject}) after the saga had aborted "
                                  f"({events[abort_at][0].get('subject')})")
            elif failed_at[step] >= 0:
                contra.append(i)
                contra_why.append(f"step '{name}' succeeded ({subject}) after it had failed "
                                  f"({events[failed_at[step]][0].get('subject')})")
            if outstanding[step] > 0:
                double.append(i)
                double_why.append(f"step '{name}' succeeded twice ({subject} at t={_t(events, open_success[step][-1])}s "
                                  f"and t={_t(events, i)}s) with no {spec.steps[step].compensation or 'compensation'} between")
            outstanding[step] += 1
            succeeded[step] += 1
            open_success[step].append(i)
        elif role == STEP_FAIL:
            if failed_at[step] < 0:
                failed_at[step] = i
        elif role == STEP_COMP:
            name = spec.steps[step].name
            if outstanding[step] > 0:
                outstanding[step] -= 1
                open_success[step].popleft()
            elif succeeded[step] > 0:
                extra_comp.append(i)
                extra_why.append(f"step '{name}' was compensated more than once ({subject} at t={_t(events, i)}s "
                                 f"undoes nothing)")
            else:
                order.append(i)
                if last_ok[step] > i:
                    order_why.append(f"step '{name}' was compensated ({subject} at t={_t(events, i)}s) before its "
                                     f"forward step {spec.steps[step].success} happened")
                else:
                    order_why.append(f"step '{name}' was compensated ({subject} at t={_t(events, i)}s) but its "
                                     f"forward step {spec.steps[step].success} never happened")

    violations: list[SagaViolation] = []

    def add(check: str, expected: str, why: list[str], marks: list[int]) -> None:
        violations.append(_violation(saga, key, spec, check, expected, "; ".join(_dedupe(why)), inst, marks, faults))

    if contra:
        add("no_contradiction", "exactly one outcome, and no forward success after an abort or after the "
                                "step's own failure", contra_why, contra)
    if double:
        add("no_double_effect", "each step succeeds at most once per key unless compensated in between "
                                "(consumers must be idempotent under redelivery)", double_why, double)

    # Compensation completeness: only for aborted instances (for extra compensations, always).
    deadline_at = max(healed_at, _t_raw(events, starts[0]) if starts else _t_raw(events, 0)) + spec.deadline
    missing: list[str] = []
    missing_marks: list[int] = []
    if abort_at >= 0:
        for s, st in enumerate(spec.steps):
            if outstanding[s] <= 0:
                continue
            if not st.compensation:
                missing.append(f"step '{st.name}' succeeded ({st.success}) and declares no compensation event, "
                               f"so the abort leaves its effect in place")
            elif end_at >= deadline_at:  # before the deadline, the compensation may still arrive
                missing.append(f"step '{st.name}' succeeded ({st.success}) but was never compensated "
                               f"({st.compensation} not seen)")
            else:
                continue
            missing_marks.extend(open_success[s])
    if missing or extra_comp:
        add("compensation_completeness", "when the saga aborts, every step that had succeeded is compensated "
                                          "exactly once", missing + extra_why, missing_marks + extra_comp)
    if order:
        add("compensation_order", "a compensation only after its step's forward success, never without it",
            order_why, order)

    # Termination.
    first_terminal = _t_raw(events, terminals[0]) if terminals else None
    outcome = "none"
    if success_terms and abort_at >= 0:
        outcome = "both"
    elif success_terms:
        outcome = "success"
    elif abort_at >= 0:
        outcome = "abort"
    term_why: list[str] = []
    term_marks: list[int] = []
    if not terminals:
        if end_at >= deadline_at:
            last = events[-1][0]
            term_why.append(f"no terminal event ({', '.join(spec.success + spec.abort)}) by t={deadline_at:.3f}s "
                            f"(deadline {spec.deadline:g}s after t={deadline_at - spec.deadline:.3f}s); the last "
                            f"event was {last.get('subject')} at t={float(last.get('t', 0.0)):.3f}s")
    else:
        if first_terminal is not None and first_terminal > deadline_at:
            term_why.append(f"the terminal event came at t={first_terminal:.3f}s, after the deadline "
                            f"t={deadline_at:.3f}s")
            term_marks.append(terminals[0])
        if len(terminals) > 1 and outcome != "both":
            term_why.append(f"{len(terminals)} distinct terminal events instead of one")
            term_marks.extend(terminals[1:])
    if term_why:
        add("termination", f"exactly one terminal event ({' or '.join(spec.success + spec.abort)}) by "
                           f"t={deadline_at:.3f}s", term_why, term_marks)
    return violations, first_terminal, outcome


def _dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _t_raw(events: list[tuple[dict[str, Any], int, int, tuple[str, ...]]], i: int) -> float:
    return float(events[i][0].get("t", 0.0))


def _t(events: list[tuple[dict[str, Any], int, int, tuple[str, ...]]], i: int) -> str:
    return f"{_t_raw(events, i):.3f}"


def _role_label(spec: SagaSpec, role: int, step: int) -> str:
    if role in _ROLE_LABEL:
        return _ROLE_LABEL[role]
    name = spec.steps[step].name
    return {STEP_OK: f"{name}: success", STEP_FAIL: f"{name}: failure", STEP_COMP: f"{name}: compensation"}[role]


def _violation(saga: str, key: str, spec: SagaSpec, check: str, expected: str, detail: str, inst: _Instance,
               marks: list[int], faults: dict[str, dict[str, Any]]) -> SagaViolation:
    events: list[dict[str, Any]] = []
    active: list[list[str]] = []
    used: dict[str, dict[str, Any]] = {}
    for rec, role, step, snap in inst.events:
        service = rec.get("producer")
        if not service and role in (STEP_OK, STEP_FAIL, STEP_COMP):
            service = spec.steps[step].service
        events.append({"t": rec["t"], "service": service or "?", "subject": rec["subject"],
                       "role": _role_label(spec, role, step), "seq": rec["seq"], "event_id": rec["event_id"]})
        active.append(list(snap))
        for fid in snap:
            used.setdefault(fid, faults.get(fid, {"id": fid}))
    return SagaViolation(saga=saga, key=key, check=check, expected=expected, events=events, faults_active=active,
                         detail=detail, faults=used, marks=sorted(set(marks)))
