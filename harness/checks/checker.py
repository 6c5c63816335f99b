"""The saga checker: judge a recorded event history, one saga instance at a time.

The run loop records every message on the wire to ``events.jsonl`` (plus fault, phase and operation
records). After the system has had time to converge, :func:`check_history` reads that history once, groups
the messages of each saga instance by (saga, correlation key), and checks every instance against the saga's
model in the system file (see docs/checks.md for the precise definitions and the shapes each accepts):

``no_contradiction``
    exactly one kind of outcome; no non-retriable step that both succeeds and fails; at most one of a set
    of alternative steps; no success outcome while a required step failed.
``no_double_effect``
    a step's success seen twice for one key with no compensation between (a retriable step included);
    two start events for one key.
``step_order``
    a step succeeds only after what it declares it comes ``after``; the saga succeeds only after every
    required step succeeded.
``compensation_completeness``
    when the saga aborts, every step that succeeded and declares a compensation is compensated, exactly
    once, including a parallel branch that succeeded after the abort. A step without a compensation owes none.
``compensation_order``
    a compensation only after its step's success; with ``compensation_order = "reverse"`` (a cascade), a step
    is undone only after every step that came after it was undone.
``no_lost_request``
    the client's view: a start request of the workload that the system accepted (an ``operation`` record
    with outcome ``ok``) starts its saga on the wire by the deadline. Failed and unknown requests owe nothing.
``termination``
    exactly one terminal event. A saga with no outcome is *stuck* once its deadline has passed or once the
    system is quiescent (``quiescent_at``: nothing pending, unacknowledged or moving anywhere, so nothing
    more can come). A saga that ended later than ``deadline`` after the faults healed (or after it started,
    if later) is *late*: counted and reported, a violation only when the saga sets a ``latency_objective``
    and it ended later than that.

Identity of events: a message is a *wire duplicate* of an earlier one when it has the same subject and the
same event id (the saga's ``event_id`` field, by default ``event_id``; else the ``Nats-Msg-Id`` header; else
the same stream sequence). Wire duplicates are one fact delivered twice, not a second effect, so they are
counted (``duplicates_ignored``) and otherwise skipped.

The pass is linear in the history's size: one dictionary lookup per record and constant work per message.
The judgement of an instance depends, apart from a few times, only on the sequence of roles its events
play, and real histories repeat a handful of such sequences; each distinct sequence is analysed once and
the analysis reused, so finishing an instance costs a tuple and a dictionary lookup.
"""

from __future__ import annotations

import gc
import math
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from sagaproof.harness.checks.spill import BUFFERED, Spill
from sagaproof.harness.config import SagaSpec

# Checks, most important first. The order is the order violations are reported in:
#  1. no_contradiction: the system told the world two incompatible things; nothing downstream can be right.
#  2. no_double_effect: an effect (a charge, a reservation) applied twice; real damage that no compensation
#     in the protocol will undo.
#  3. step_order: a step acted without what it depends on, or the saga declared success too early; a
#     wiring mistake, and specific about where.
#  4. compensation_completeness: an effect that should have been undone was left in place (or undone twice).
#  5. compensation_order: an undo without its do, or a cascade undone out of order; corrupts state, but is
#     often a symptom of a reordering the checks above already explain.
#  6. no_lost_request: the client was told its request was accepted and nothing ever happened.
#  7. termination: a stuck or late saga. Often the consequence of one of the above, and the least specific
#     about what went wrong, so it comes last.
CHECKS: tuple[str, ...] = (
    "no_contradiction",
    "no_double_effect",
    "step_order",
    "compensation_completeness",
    "compensation_order",
    "no_lost_request",
    "termination",
)
CHECK_TITLES: dict[str, str] = {
    "no_contradiction": "No contradiction",
    "no_double_effect": "No double effect",
    "step_order": "Step order",
    "compensation_completeness": "Compensation completeness",
    "compensation_order": "Compensation order",
    "no_lost_request": "No lost request",
    "termination": "Termination",
}
EXPECTED: dict[str, str] = {
    "no_contradiction": "exactly one kind of outcome; no step that both succeeds and fails unless it is retriable; "
                        "at most one of alternative steps; no success while a required step failed",
    "no_double_effect": "each step succeeds at most once per key unless compensated in between "
                        "(consumers must be idempotent under redelivery)",
    "step_order": "each step succeeds only after the steps it comes after, and the saga succeeds only after "
                  "every required step succeeded",
    "compensation_completeness": "when the saga aborts, every step that succeeded and declares a compensation is "
                                 "compensated exactly once",
    "compensation_order": "a compensation only after its step's success, never without it (and in a cascade, "
                          "in reverse order of the steps' success)",
    "no_lost_request": "a start request the system accepted starts its saga on the wire",
}
_RANK = {name: i for i, name in enumerate(CHECKS)}
OWED_CHECKS = ("termination", "compensation_completeness", "no_lost_request")

# Roles of a subject within a saga.
START, SUCCESS, ABORT, STEP_OK, STEP_FAIL, STEP_COMP = range(6)
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
    at: float = field(default=0.0, compare=False)  # the time violations are ordered by (its first event's, or the request's)

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
    over saga instances (``termination`` also has ``"pending"``: no outcome yet, but still within its deadline);
    for ``no_lost_request`` it counts accepted start requests instead. ``operations`` counts the workload's
    start requests by outcome (``ok``, ``fail``, ``unknown``) and those accepted without a key (``unkeyed``).
    """

    sagas_checked: int = 0
    violations: list[SagaViolation] = field(default_factory=list)
    convergence: dict[str, float] = field(default_factory=dict)
    convergence_after_heal: float | None = None
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    pending: list[tuple[str, str]] = field(default_factory=list)
    late: list[tuple[str, str, float]] = field(default_factory=list)  # (saga, key, seconds after its deadline)
    quiescent_at: float | None = None
    messages_seen: int = 0
    messages_in_sagas: int = 0
    duplicates_ignored: int = 0
    unattributed: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    healed_at: float = 0.0
    end_at: float = 0.0
    operations: dict[str, int] = field(default_factory=dict)

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
        if check == "no_lost_request":
            ops = self.operations
            if not ops:
                return "no start requests recorded"
            text = f"{passed} of {ops.get('ok', 0)} accepted start requests started their saga"
            if failed:
                text += f"; {failed} never did"
            if pending:
                text += f"; {pending} still within their deadline"
            extra = [f"{ops[k]} {label}" for k, label in (("fail", "failed"), ("unknown", "unknown"),
                                                           ("unkeyed", "accepted without a key to follow"))
                     if ops.get(k)]
            return text + (f" ({', '.join(extra)})" if extra else "")
        text = f"{passed} of {self.sagas_checked} sagas passed"
        if failed:
            text += f"; {failed} failed"
        if pending:
            text += f"; {pending} still within their deadline"
        late = c.get("late", 0)
        if late:
            text += f"; {late} ended late (after their deadline, no latency objective)"
        return text

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"ok": self.ok, "sagas_checked": self.sagas_checked, "counts": self.counts,
                "violations": [v.to_dict() for v in self.violations], "convergence": self.convergence,
                "convergence_stats": self.convergence_stats(), "convergence_after_heal": self.convergence_after_heal,
                "pending": [list(p) for p in self.pending], "late": [list(x) for x in self.late],
                "quiescent_at": self.quiescent_at, "messages_seen": self.messages_seen,
                "messages_in_sagas": self.messages_in_sagas, "duplicates_ignored": self.duplicates_ignored,
                "unattributed": self.unattributed, "outcomes": self.outcomes, "healed_at": self.healed_at,
                "end_at": self.end_at, "operations": self.operations}



# --------------------------------------------------------------------------- the compiled model


class _Model:
    """One saga's model, compiled for the checker: role tables, step relations and the analysis cache."""

    def __init__(self, index: int, spec: SagaSpec) -> None:
        self.index = index
        self.spec = spec
        self.name = spec.name
        steps = spec.steps
        self.n = len(steps)
        self.names = [st.name for st in steps]
        self.retriable = [st.retriable for st in steps]
        self.comp_subject = [st.compensation for st in steps]
        pos = {st.name: i for i, st in enumerate(steps)}
        groups: dict[str, list[int]] = {}
        for i, st in enumerate(steps):
            if st.one_of is not None:
                groups.setdefault(st.one_of, []).append(i)
        self.groups = groups
        self.group_of = [st.one_of for st in steps]
        outcome_subjects = set(spec.success) | set(spec.abort)
        # Predecessors of each step: ("step", j), ("group", name) or ("subject", subject).
        self.preds: list[list[tuple[str, Any]]] = []
        for st in steps:
            preds: list[tuple[str, Any]] = []
            for dep in st.after:
                if dep in pos:
                    preds.append(("step", pos[dep]))
                elif dep in groups:
                    preds.append(("group", dep))
                else:
                    preds.append(("subject", dep))
            self.preds.append(preds)
        # Steps that follow an outcome (directly or through other steps) are not needed for that outcome.
        follows_outcome = [False] * self.n
        changed = True
        while changed:
            changed = False
            for i, preds in enumerate(self.preds):
                if follows_outcome[i]:
                    continue
                for kind, ref in preds:
                    if (kind == "subject" and ref in outcome_subjects) or (kind == "step" and follows_outcome[ref]) \
                            or (kind == "group" and any(follows_outcome[j] for j in groups[ref])):
                        follows_outcome[i] = True
                        changed = True
                        break
        self.required = [i for i, st in enumerate(steps)
                         if not st.optional and st.one_of is None and not follows_outcome[i]]
        self.required_groups = [g for g, members in groups.items()
                                if not all(steps[j].optional for j in members)
                                and not any(follows_outcome[j] for j in members)]
        # Ancestor pairs (a, b): a comes before b; used by compensation_order = "reverse".
        self.before: set[tuple[int, int]] = set()
        if spec.compensation_order == "reverse":
            if any(st.after for st in steps):
                direct: list[set[int]] = []
                for preds in self.preds:
                    d: set[int] = set()
                    for kind, ref in preds:
                        if kind == "step":
                            d.add(ref)
                        elif kind == "group":
                            d.update(groups[ref])
                    direct.append(d)
                for b in range(self.n):
                    seen: set[int] = set()
                    stack = list(direct[b])
                    while stack:
                        a = stack.pop()
                        if a not in seen:
                            seen.add(a)
                            stack.extend(direct[a])
                    self.before.update((a, b) for a in seen)
            else:  # no declared graph: the listed order is the order
                self.before = {(a, b) for a in range(self.n) for b in range(a + 1, self.n)}
        # Role table: subject -> role-set id; role set = tuple of (role, step index).
        by_subject: dict[str, list[tuple[int, int]]] = {}

        def add(subject: str | None, role: int, step: int = -1) -> None:
            if subject:
                lst = by_subject.setdefault(subject, [])
                if (role, step) not in lst:
                    lst.append((role, step))

        add(spec.start, START)
        for s in spec.success:
            add(s, SUCCESS)
        for s in spec.abort:
            add(s, ABORT)
        for i, st in enumerate(steps):
            add(st.success, STEP_OK, i)
            add(st.failure, STEP_FAIL, i)
            add(st.compensation, STEP_COMP, i)
        self.role_sets: list[tuple[tuple[int, int], ...]] = []
        self.subject_rid: dict[str, int] = {}
        self.rid_subjects: list[set[str]] = []
        self.rid_subject: list[str] = []
        self.ok_rids: list[set[int]] = [set() for _ in range(self.n)]  # role sets holding step i's success
        for subject, roles in by_subject.items():
            rid = self.subject_rid[subject] = len(self.role_sets)
            self.role_sets.append(tuple(roles))
            self.rid_subjects.append({subject})
            self.rid_subject.append(subject)
            for role, step in roles:
                if role == STEP_OK:
                    self.ok_rids[step].add(rid)
        self.key_field, self.key_path = _accessor(spec.key)
        self.eid_field, self.eid_path = _accessor(spec.event_id)
        self.cache: dict[tuple[int, ...], _Analysis] = {}
        # What the events of the violations share (a verdict of thousands of violations holds one copy each):
        self.labels = [self.role_label(rid) for rid in range(len(self.role_sets))]
        self.services: dict[str, str] = {}  # producer -> the one string kept for it
        self.snapshots: dict[tuple[str, ...], list[str]] = {}  # active faults -> the one list kept for them

    def analysis(self, sig: tuple[int, ...]) -> _Analysis:
        a = self.cache.get(sig)
        if a is None:
            a = self.cache[sig] = _analyse(self, sig)
        return a

    def role_label(self, rid: int) -> str:
        labels = []
        for role, step in self.role_sets[rid]:
            if role == START:
                labels.append("start")
            elif role == SUCCESS:
                labels.append("outcome: success")
            elif role == ABORT:
                labels.append("outcome: abort")
            else:
                labels.append(f"{self.names[step]}: {('success', 'failure', 'compensation')[role - STEP_OK]}")
        return " + ".join(labels)


def _accessor(path: str) -> tuple[str, tuple[str, ...] | None]:
    return path, (tuple(path.split(".")) if "." in path else None)


def _dig(data: Any, parts: tuple[str, ...]) -> Any:
    for part in parts:
        if data.__class__ is not dict:
            return None
        data = data.get(part)
    return data


# A finding: (check, indexes of the events it is about, text builder). The text builder gets T(i) (the time
# of event i as text) and S(i) (its subject), so one analysis serves every instance with the same roles.
Finding = tuple[str, tuple[int, ...], Callable[..., str]]


class _Analysis:
    """What a sequence of roles implies, independent of the times of its events."""

    __slots__ = ("findings", "owed", "start", "first_terminal", "outcome", "clean", "repeats")

    def __init__(self, findings: list[Finding], owed: list[tuple[int, tuple[int, ...]]], start: int,
                 first_terminal: int, outcome: str, repeats: bool) -> None:
        self.findings = findings
        self.owed = owed  # (step, its uncompensated successes) of an aborted saga
        self.start = start
        self.first_terminal = first_terminal
        self.outcome = outcome
        self.clean = not findings and not owed
        self.repeats = repeats  # some subject occurs twice: wire duplicates are possible


def _analyse(m: _Model, sig: tuple[int, ...]) -> _Analysis:
    """Walk the roles of one instance's events in order and collect every timing-independent finding."""
    n = m.n
    names = m.names
    oks: list[list[int]] = [[] for _ in range(n)]
    fails: list[list[int]] = [[] for _ in range(n)]
    open_ok: list[deque[int]] = [deque() for _ in range(n)]
    undone: list[list[tuple[int, int]]] = [[] for _ in range(n)]  # (success, its compensation)
    starts: list[int] = []
    succ: list[int] = []
    aborts: list[int] = []
    F: list[Finding] = []
    spec = m.spec

    for i, rid in enumerate(sig):
        for role, s in m.role_sets[rid]:
            if role == START:
                if starts:
                    F.append(("no_double_effect", (i,), lambda T, S, a=starts[0], b=i: (
                        f"the saga was started twice ({S(b)} at t={T(a)}s and t={T(b)}s)")))
                starts.append(i)
            elif role == SUCCESS:
                if aborts and not succ:
                    F.append(("no_contradiction", (i,), lambda T, S, a=aborts[0], b=i: (
                        f"it ended with success ({S(b)}) after it had aborted ({S(a)})")))
                succ.append(i)
            elif role == ABORT:
                if succ and not aborts:
                    F.append(("no_contradiction", (i,), lambda T, S, a=succ[0], b=i: (
                        f"it ended with abort ({S(b)}) after it had succeeded ({S(a)})")))
                aborts.append(i)
            elif role == STEP_OK:
                name = names[s]
                if fails[s] and not m.retriable[s]:
                    F.append(("no_contradiction", (i,), lambda T, S, f=fails[s][0], b=i, name=name: (
                        f"step '{name}' succeeded ({S(b)}) after it had failed ({S(f)}); if it may fail and then "
                        f"succeed, mark it retriable = true")))
                if open_ok[s]:
                    F.append(("no_double_effect", (i,), lambda T, S, a=open_ok[s][-1], b=i, name=name, c=m.comp_subject[s]: (
                        f"step '{name}' succeeded twice ({S(b)} at t={T(a)}s and t={T(b)}s) with no "
                        f"{c or 'compensation'} between")))
                g = m.group_of[s]
                if g is not None:
                    for j in m.groups[g]:
                        if j != s and open_ok[j]:
                            F.append(("no_contradiction", (open_ok[j][0], i), lambda T, S, a=open_ok[j][0], b=i, g=g: (
                                f"two alternatives of '{g}' both succeeded ({S(a)} and {S(b)})")))
                            break
                oks[s].append(i)
                open_ok[s].append(i)
            elif role == STEP_FAIL:
                if open_ok[s] and not m.retriable[s]:
                    F.append(("no_contradiction", (i,), lambda T, S, a=open_ok[s][0], b=i, name=names[s]: (
                        f"step '{name}' failed ({S(b)}) after it had succeeded ({S(a)})")))
                fails[s].append(i)
            else:  # STEP_COMP
                name = names[s]
                if open_ok[s]:
                    undone[s].append((open_ok[s].popleft(), i))
                elif oks[s]:
                    F.append(("compensation_completeness", (i,), lambda T, S, b=i, name=name: (
                        f"step '{name}' was compensated more than once ({S(b)} at t={T(b)}s undoes nothing)")))
                elif any(sig[k] in m.ok_rids[s] for k in range(i + 1, len(sig))):
                    F.append(("compensation_order", (i,), lambda T, S, b=i, name=name, fw=spec.steps[s].success: (
                        f"step '{name}' was compensated ({S(b)} at t={T(b)}s) before its forward step {fw} "
                        f"happened")))
                else:
                    F.append(("compensation_order", (i,), lambda T, S, b=i, name=name, fw=spec.steps[s].success: (
                        f"step '{name}' was compensated ({S(b)} at t={T(b)}s) but its forward step {fw} never "
                        f"happened")))

    # The success outcome needs every required step (and one of every required group of alternatives). When a
    # required step failed, or the saga also aborted, that contradiction is the finding; what did not happen
    # after it is its consequence.
    if succ and not aborts:
        t_s = succ[0]
        failed = [s for s in m.required if fails[s] and not oks[s]]
        for s in failed:
            F.append(("no_contradiction", (t_s, fails[s][0]), lambda T, S, a=t_s, f=fails[s][0], name=names[s]: (
                f"it ended with success ({S(a)}) although step '{name}' failed ({S(f)})")))
        for s in ([] if failed else m.required):
            name = names[s]
            if not oks[s]:
                F.append(("step_order", (t_s,), lambda T, S, a=t_s, name=name: (
                    f"it ended with success ({S(a)}) but step '{name}' never succeeded; if that step is skipped on "
                    f"some paths, mark it optional = true")))
            elif oks[s][0] > t_s:
                F.append(("step_order", (t_s, oks[s][0]), lambda T, S, a=t_s, b=oks[s][0], name=name: (
                    f"it ended with success ({S(a)} at t={T(a)}s) before step '{name}' succeeded ({S(b)} at "
                    f"t={T(b)}s); if that step follows the outcome, say so with after = [\"{S(a)}\"]")))
        for g in ([] if failed else m.required_groups):
            firsts = [oks[j][0] for j in m.groups[g] if oks[j]]
            if not firsts:
                F.append(("step_order", (t_s,), lambda T, S, a=t_s, g=g: (
                    f"it ended with success ({S(a)}) but none of the alternatives '{g}' succeeded")))
            elif min(firsts) > t_s:
                F.append(("step_order", (t_s, min(firsts)), lambda T, S, a=t_s, b=min(firsts), g=g: (
                    f"it ended with success ({S(a)} at t={T(a)}s) before any of the alternatives '{g}' succeeded "
                    f"({S(b)} at t={T(b)}s)")))

    # Declared order: a step succeeds only after what it comes after.
    for b, preds in enumerate(m.preds):
        if not preds or not oks[b]:
            continue
        ib = oks[b][0]
        for kind, ref in preds:
            if kind == "step":
                first = oks[ref][0] if oks[ref] else -1
                optional = spec.steps[ref].optional
                what = f"step '{names[ref]}'"
            elif kind == "group":
                firsts = [oks[j][0] for j in m.groups[ref] if oks[j]]
                first = min(firsts) if firsts else -1
                optional = all(spec.steps[j].optional for j in m.groups[ref])
                what = f"any of the alternatives '{ref}'"
            else:
                first = next((k for k, r in enumerate(sig) if ref in m.rid_subjects[r]), -1)
                optional = False
                what = ref
            if first < 0:
                if not optional:
                    F.append(("step_order", (ib,), lambda T, S, b=ib, name=names[b], what=what: (
                        f"step '{name}' succeeded ({S(b)} at t={T(b)}s) but {what}, which it comes after, never "
                        f"happened")))
            elif first > ib:
                F.append(("step_order", (ib, first), lambda T, S, b=ib, a=first, name=names[b], what=what: (
                    f"step '{name}' succeeded ({S(b)} at t={T(b)}s) before {what}, which it comes after "
                    f"({S(a)} at t={T(a)}s)")))

    # A cascade undoes in reverse order: if a came before b, b's undo comes before a's.
    if m.before:
        for a, b in m.before:
            if undone[a] and undone[b] and undone[a][0][1] < undone[b][0][1]:
                ua, ub = undone[a][0][1], undone[b][0][1]
                F.append(("compensation_order", (ua, ub), lambda T, S, ua=ua, ub=ub, na=names[a], nb=names[b]: (
                    f"step '{na}' was undone ({S(ua)} at t={T(ua)}s) before step '{nb}', which comes after it "
                    f"({S(ub)} at t={T(ub)}s); a cascade undoes in reverse order")))

    terminals = sorted(succ + aborts)
    if succ and aborts:
        outcome = "both"
    elif succ:
        outcome = "success"
    elif aborts:
        outcome = "abort"
    else:
        outcome = "none"
    if len(terminals) > 1 and outcome != "both":
        F.append(("termination", tuple(terminals[1:]), lambda T, S, k=len(terminals): (
            f"{k} distinct terminal events instead of one")))
    owed: list[tuple[int, tuple[int, ...]]] = []
    if aborts:
        for s in range(n):
            if open_ok[s] and m.comp_subject[s]:
                owed.append((s, tuple(open_ok[s])))
    return _Analysis(F, owed, starts[0] if starts else -1, terminals[0] if terminals else -1, outcome,
                     len(set(sig)) != len(sig))


# --------------------------------------------------------------------------- the pass


def check_history(records: Iterable[dict[str, Any]], sagas: Mapping[str, SagaSpec], *, healed_at: float,
                  end_at: float, quiescent_at: float | None = None) -> CheckResult:
    """Check every saga instance (and every accepted start request) in a recorded history.

    Args:
        records: the history (``events.jsonl`` records, in time order): messages, fault_start/fault_end,
            operation and phase records; other kinds are ignored.
        sagas: the system's sagas (``SystemSpec.sagas``).
        healed_at: seconds since run start when the last fault healed; the termination deadline counts from
            here (or from a saga's start, if later).
        end_at: seconds since run start when the history ends; a saga with no outcome is a termination
            violation only if its deadline is at or before ``end_at``, else it is *pending*.
        quiescent_at: when the system became quiescent (the broker's view: nothing left to deliver, to
            acknowledge or to publish), if it did; from then on a missing outcome or compensation is final.

    Returns:
        A :class:`CheckResult`; ``violations`` are ordered by check importance (see ``CHECKS``), then by the
        time of the instance's first event.

    Example:
        >>> from sagaproof.harness.config import SagaSpec, StepSpec
        >>> spec = SagaSpec("checkout", "order_id", "orders.created", ("orders.completed",), (),
        ...                 (StepSpec("charge", "payment", "payments.completed"),))
        >>> msg = lambda t, s: {"kind": "message", "t": t, "subject": s, "data": {"order_id": "o1"}}
        >>> r = check_history([msg(0.1, "orders.created"), msg(0.2, "payments.completed"),
        ...                    msg(0.3, "orders.completed")], {"checkout": spec}, healed_at=0.0, end_at=60.0)
        >>> (r.sagas_checked, r.ok, r.convergence)
        (1, True, {'o1': 0.2})
    """
    # The pass allocates small objects and creates no reference cycles; pausing the cyclic collector keeps it
    # from rescanning an ever larger heap.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _check(records, sagas, healed_at, end_at, quiescent_at)
    finally:
        if gc_was_enabled:
            gc.enable()


def judge_as_if_due(records: Iterable[dict[str, Any]], sagas: Mapping[str, SagaSpec], *,
                    healed_at: float) -> tuple[CheckResult, list[SagaViolation]]:
    """Check the history as if every deadline had already passed; also return what is still *owed*.

    The owed violations (a missing outcome, compensation or saga start) may yet be mended by messages still
    on their way; the others cannot. A caller that waits for convergence stops waiting once nothing is owed,
    and otherwise keeps waiting until the deadlines really pass.
    """
    records = list(records)
    last = max((float(r.get("completed") or r.get("t") or 0.0) for r in records), default=healed_at)
    due = max(last, healed_at) + max((s.deadline for s in sagas.values()), default=0.0)  # every deadline passed
    result = check_history(records, sagas, healed_at=healed_at, end_at=due)
    # A saga that ended after its latency objective is final (nothing more can change it): not owed.
    return result, [v for v in result.violations if v.check in OWED_CHECKS and not v.detail.startswith("late:")]


# A message as the checker keeps it, one per saga it belongs to: a flat tuple, cheap to build, to write to a shard
# file (marshal) and to read back. Its subject is the role set's (one subject per role set id); its identity
# for telling wire duplicates apart is ("e", str(event id)) when it has an event id, else _ALT: ("m", its
# Nats-Msg-Id header), ("s", stream, stream sequence) or None.
_SI: Final = 0
_KEY: Final = 1
_RID: Final = 2
_T: Final = 3
_SEQ: Final = 4
_PROD: Final = 5
_EID: Final = 6
_ALT: Final = 7
Row = tuple[int, str, int, Any, Any, Any, Any, Any]
Target = tuple[int, str, Any, int, str, Any]  # saga index, key field, key path, role set id, event id field, path


def _compile(sagas: Mapping[str, SagaSpec]) -> tuple[list[_Model], dict[str, tuple[Target, ...]]]:
    models = [_Model(i, spec) for i, spec in enumerate(sagas.values())]
    index: dict[str, list[Target]] = {}
    for m in models:
        for subject, rid in m.subject_rid.items():
            index.setdefault(subject, []).append((m.index, m.key_field, m.key_path, rid, m.eid_field, m.eid_path))
    return models, {s: tuple(v) for s, v in index.items()}


def _alt_identity(rec: dict[str, Any]) -> Any:
    """A message's identity when it has no event id: its Nats-Msg-Id header, else its stream position."""
    headers = rec.get("headers")
    mid = headers.get("Nats-Msg-Id") if headers.__class__ is dict else None
    if mid:
        return ("m", mid)
    sseq = rec.get("stream_seq")
    return ("s", rec.get("stream"), sseq) if sseq is not None else None


def _check(records: Iterable[dict[str, Any]], sagas: Mapping[str, SagaSpec], healed_at: float,
           end_at: float, quiescent_at: float | None = None) -> CheckResult:
    return _Pass(sagas, healed_at, end_at, quiescent_at).run(records)


class _Pass:
    """One pass over a history: each message of a saga becomes a :data:`Row` (one per saga it belongs to),
    grouped by instance (saga, key), or first written to the shard of its key when the history is split; the
    fault records build the fault timeline; the start requests (``operation`` records) go with their key.
    Then each instance is judged (:class:`_Verdict`), shard after shard."""

    def __init__(self, sagas: Mapping[str, SagaSpec], healed_at: float, end_at: float,
                 quiescent_at: float | None) -> None:
        self.models, self.index = _compile(sagas)
        self.faults: dict[str, dict[str, Any]] = {}
        self.timeline = _FaultTimeline()
        self.verdict = _Verdict(self.models, healed_at, end_at, quiescent_at)

    def run(self, records: Iterable[dict[str, Any]], *, keep: Keep | None = None,
            spill: Any = None) -> CheckResult:
        """Judge `records`. `keep(saga, key)` (saga None for a message) picks the instances to judge, and
        messages it leaves out are not counted; with `spill` (a :class:`~harness.checks.spill.Spill`), rows and
        start requests go to the shard of their key and each shard is judged on its own."""
        models = self.models
        index_get = self.index.get
        instances: list[dict[str, list[Any]]] = [{} for _ in models]
        faults = self.faults
        active: dict[str, None] = {}  # insertion-ordered set of active fault ids
        timeline = self.timeline
        operations: list[dict[str, Any]] = []
        spilled = spill.buffers if spill is not None else None  # rows go to the shard of their key
        shards = spill.shards if spill is not None else 1
        buffered = 0
        if keep is not None:
            paths = {m.spec.key for m in models}
            if len(paths) != 1:
                raise ValueError("keep= needs sagas that share one correlation key")
            kfield, kpath = _accessor(paths.pop())
        seen = in_sagas = unattributed = 0
        alt_identity = _alt_identity
        for rec in records:
            kind = rec.get("kind")
            if kind == "message":
                data = rec.get("data")
                if keep is not None:  # a window: the messages of the instances in it
                    k = data.get(kfield) if data.__class__ is dict else None
                    if k is None and kpath is not None:
                        k = _dig(data, kpath)
                    if not keep(None, None if k is None or k.__class__ in (dict, list) else str(k)):
                        continue
                seen += 1
                targets = index_get(rec.get("subject"))  # type: ignore[arg-type]
                if targets is None:
                    continue
                if data.__class__ is not dict:
                    unattributed += len(targets)
                    continue
                for si, kf, kp, rid, ef, ep in targets:
                    key = data.get(kf)
                    if key is None and kp is not None:  # the dotted path (_dig, inlined: once per message)
                        key = data
                        for part in kp:
                            if key.__class__ is not dict:
                                key = None
                                break
                            key = key.get(part)
                    if key is None:
                        unattributed += 1
                        continue
                    if key.__class__ is not str:
                        key = str(key)
                    eid = data.get(ef)
                    if eid is None and ep is not None:
                        eid = data
                        for part in ep:
                            if eid.__class__ is not dict:
                                eid = None
                                break
                            eid = eid.get(part)
                    row = (si, key, rid, rec.get("t"), rec.get("seq"), rec.get("producer"), eid,
                           None if eid is not None else alt_identity(rec))
                    in_sagas += 1
                    if spilled is not None:
                        spilled[hash(key) % shards].append(row)
                        buffered += 1
                        if buffered >= BUFFERED:
                            spill.flush()
                            buffered = 0
                        continue
                    group = instances[si]
                    inst = group.get(key)
                    if inst is None:
                        group[key] = [rid, row]
                    else:
                        inst.append(rid)
                        inst.append(row)
            elif kind == "fault_start":
                f = rec.get("fault") or {}
                fid = str(f.get("id"))
                faults[fid] = f
                active[fid] = None
                timeline.add(rec.get("t"), tuple(active))
            elif kind == "fault_end":
                active.pop(str(rec.get("fault_id")), None)
                timeline.add(rec.get("t"), tuple(active))
            elif kind == "operation":
                if keep is not None or spilled is not None:
                    k = rec.get("key")
                    k = None if k is None else str(k)
                    if keep is not None and not keep(rec.get("saga"), k):
                        continue
                    if spilled is not None:
                        spilled[0 if k is None else hash(k) % shards].append(rec)
                        buffered += 1
                        continue
                operations.append(rec)
        verdict = self.verdict
        if spill is None:
            verdict.judge(instances, operations, faults, timeline)
        else:
            for i in range(shards):
                instances = [{} for _ in models]
                operations = []
                for row in spill.shard(i):
                    if row.__class__ is dict:
                        operations.append(row)
                        continue
                    group = instances[row[0]]
                    key = row[1]
                    inst = group.get(key)
                    if inst is None:
                        group[key] = [row[2], row]
                    else:
                        inst.append(row[2])
                        inst.append(row)
                verdict.judge(instances, operations, faults, timeline)
        return verdict.close(seen, in_sagas, unattributed)


Keep = Callable[[str | None, str | None], bool]  # (saga of an operation or None for a message, key) -> judge it?


def check_stream(records: Iterable[dict[str, Any]], sagas: Mapping[str, SagaSpec], *, healed_at: float,
                 end_at: float, quiescent_at: float | None = None, keep: Keep | None = None, shards: int = 1,
                 scratch: str | Path | None = None) -> CheckResult:
    """:func:`check_history` on the engine's path: `records` streamed once (a :class:`~harness.history.
    HistoryReader`: each line parsed once), with at most about 1/`shards` of the history's messages held at
    once.

    Of each message the checker keeps a small tuple (:data:`Row`: key, role, time, sequence, producer,
    identity). With ``shards > 1`` and a `scratch` directory, those tuples (and the start requests) go to the
    shard of their key in one scratch file (:class:`~harness.checks.spill.Spill`, marshal); then each shard is
    grouped and judged on its own, with the whole fault timeline. An instance's messages all land in one shard,
    in their order, so the verdict is the one a single pass over the whole history gives (the same
    :class:`CheckResult`, instance for instance). `keep` (saga None for a message, key) picks the instances to
    judge (a window); the sagas must then share their correlation key.
    """
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        p = _Pass(sagas, healed_at, end_at, quiescent_at)
        if shards <= 1 or scratch is None:
            return p.run(records, keep=keep)
        with Spill(shards, scratch) as spill:
            return p.run(records, keep=keep, spill=spill)
    finally:
        if gc_was_enabled:
            gc.enable()


class _Verdict:
    """The verdict, built instance by instance (over one pass, or shard after shard)."""

    def __init__(self, models: list[_Model], healed_at: float, end_at: float, quiescent_at: float | None) -> None:
        self.models = models
        self.by_name = {m.name: m for m in models}
        self.healed_at = healed_at
        self.end_at = end_at
        self.quiescent_at = quiescent_at
        self.result = CheckResult(healed_at=healed_at, end_at=end_at, quiescent_at=quiescent_at)
        counts = {c: {"passed": 0, "failed": 0} for c in CHECKS}
        counts["termination"]["pending"] = 0
        counts["termination"]["late"] = 0
        counts["no_lost_request"]["pending"] = 0
        self.counts = counts
        self.outcomes = {"success": 0, "abort": 0, "none": 0, "both": 0}
        self.ops = {"ok": 0, "fail": 0, "unknown": 0, "unkeyed": 0}
        self.found: list[tuple[int, float, str, SagaViolation]] = []
        self.last_terminal: float | None = None
        self.clean = self.clean_pending = self.checked = self.dups = 0

    def judge(self, instances: list[dict[str, list[Any]]], operations: list[dict[str, Any]],
              faults: dict[str, dict[str, Any]], timeline: _FaultTimeline) -> None:
        """Judge these instances (``instances[saga index][key]``: role set ids and rows, interleaved) and these
        start requests (whose instances, if any, are among them)."""
        healed_at, end_at, quiescent_at = self.healed_at, self.end_at, self.quiescent_at
        result = self.result
        counts = self.counts
        outcomes = self.outcomes
        found = self.found
        final = quiescent_at is not None  # quiescent: what is still owed never comes
        multi = len(self.models) > 1
        last_terminal = self.last_terminal
        convergence = result.convergence
        clean = clean_pending = checked = dups = 0
        pending = result.pending
        for m in self.models:
            deadline = m.spec.deadline
            cache = m.cache
            group = instances[m.index]
            for key, inst in group.items():
                checked += 1
                sig = tuple(inst[0::2])
                a = cache.get(sig)
                if a is None:
                    a = m.analysis(sig)
                if a.repeats:  # the same subject twice: drop wire duplicates before judging
                    inst, dropped = _drop_duplicates(m, inst)
                    if dropped:
                        dups += dropped
                        group[key] = inst
                        sig = tuple(inst[0::2])
                        a = m.analysis(sig)
                outcomes[a.outcome] += 1
                t_first = inst[1][_T] or 0.0
                start_t = (inst[2 * a.start + 1][_T] or 0.0) if a.start >= 0 else t_first
                deadline_at = (healed_at if healed_at > start_t else start_t) + deadline
                ft = -1.0
                if a.first_terminal >= 0:
                    ft = inst[2 * a.first_terminal + 1][_T] or 0.0
                    convergence[f"{m.name}/{key}" if multi else key] = round(ft - start_t, 6)
                    if last_terminal is None or ft > last_terminal:
                        last_terminal = ft
                    if ft > deadline_at:  # late: reported; a violation only under a latency objective (see _judge)
                        counts["termination"]["late"] += 1
                        result.late.append((m.name, key, round(ft - deadline_at, 6)))
                        if a.clean and (m.spec.latency_objective is None or
                                        ft <= deadline_at - deadline + m.spec.latency_objective):
                            clean += 1
                            continue
                    elif a.clean:
                        clean += 1
                        continue
                elif a.clean and end_at < deadline_at and not final:  # no outcome yet, but still within its deadline
                    clean_pending += 1
                    pending.append((m.name, key))
                    continue
                # The slow path: something to report, or a deadline to judge.
                vs = _judge(m, key, inst, a, deadline, deadline_at, ft, end_at, faults, timeline, quiescent_at)
                failed = {v.check for v in vs}
                for c in CHECKS:
                    if c == "no_lost_request":
                        continue
                    if c in failed:
                        counts[c]["failed"] += 1
                    elif c == "termination" and a.first_terminal < 0:
                        counts[c]["pending"] += 1
                        pending.append((m.name, key))
                    else:
                        counts[c]["passed"] += 1
                for v in vs:
                    found.append((_RANK[v.check], float(t_first), key, v))
        self.last_terminal = last_terminal
        self.clean += clean
        self.clean_pending += clean_pending
        self.checked += checked
        self.dups += dups

        # The client's view: every accepted start request started its saga.
        ops = self.ops
        models = self.models
        for op in operations:
            outcome = op.get("outcome")
            if outcome in ops:
                ops[outcome] += 1
            if outcome != "ok":
                continue
            name = op.get("saga")
            model = self.by_name.get(name) if name else (models[0] if len(models) == 1 else None)
            raw_key = op.get("key")
            if model is None or raw_key is None:
                ops["unkeyed"] += 1
                continue
            op_key = str(raw_key)
            op_inst = instances[model.index].get(op_key)
            if op_inst is not None and model.analysis(tuple(op_inst[0::2])).start >= 0:
                counts["no_lost_request"]["passed"] += 1
                continue
            done = float(op.get("completed") or op.get("t") or 0.0)
            due = max(healed_at, done) + model.spec.deadline
            if end_at < due and not final:
                counts["no_lost_request"]["pending"] += 1
                continue
            counts["no_lost_request"]["failed"] += 1
            found.append((_RANK["no_lost_request"], done, op_key,
                          _lost_request(model, op_key, op, op_inst, due, faults, timeline)))

    def close(self, seen: int, in_sagas: int, unattributed: int) -> CheckResult:
        """The result, once every instance has been judged."""
        result = self.result
        counts = self.counts
        for c in CHECKS:
            if c != "no_lost_request":
                counts[c]["passed"] += self.clean + (self.clean_pending if c != "termination" else 0)
        counts["termination"]["pending"] += self.clean_pending
        result.messages_seen = seen
        result.unattributed = unattributed
        result.duplicates_ignored = self.dups
        result.messages_in_sagas = in_sagas - self.dups
        found = self.found
        found.sort(key=lambda x: (x[0], x[1], x[2]))
        for _, at, _, v in found:
            v.at = at  # so that merged parts are ordered as one pass orders them (harness.checks.merge_results)
        result.violations = [v for *_, v in found]
        result.sagas_checked = self.checked
        result.counts = counts
        result.outcomes = self.outcomes
        result.operations = self.ops
        if self.last_terminal is not None:
            result.convergence_after_heal = round(max(0.0, self.last_terminal - self.healed_at), 6)
        return result


class _FaultTimeline:
    """The set of active faults over time, to name the faults active at each event of a violation."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.sets: list[tuple[str, ...]] = []

    def add(self, t: Any, active: tuple[str, ...]) -> None:
        self.times.append(float(t or 0.0))
        self.sets.append(active)

    def at(self, t: float) -> tuple[str, ...]:
        i = bisect_right(self.times, t) - 1
        return self.sets[i] if i >= 0 else ()


def _identity(row: Row) -> Any:
    eid = row[_EID]
    return ("e", str(eid)) if eid is not None else row[_ALT]


def _drop_duplicates(m: _Model, inst: list[Any]) -> tuple[list[Any], int]:
    """Remove wire duplicates: a later event on the same subject with the same identity as an earlier one."""
    counts: dict[int, int] = {}
    for rid in inst[0::2]:
        counts[rid] = counts.get(rid, 0) + 1
    out: list[Any] = []
    seen: set[tuple[int, Any]] = set()
    dropped = 0
    for i in range(0, len(inst), 2):
        rid, rec = inst[i], inst[i + 1]
        if counts[rid] > 1:
            ident = _identity(rec)
            if ident is not None:
                if (rid, ident) in seen:
                    dropped += 1
                    continue
                seen.add((rid, ident))
        out.append(rid)
        out.append(rec)
    return out, dropped


def _judge(m: _Model, key: str, inst: list[Any], a: _Analysis, deadline: float, deadline_at: float, ft: float,
           end_at: float, faults: dict[str, dict[str, Any]], timeline: _FaultTimeline,
           quiescent_at: float | None = None) -> list[SagaViolation]:
    """Every violation of one instance: the analysis' findings, rendered, plus what its deadline (or the system's
    quiescence) decides: a missing outcome or compensation is final once either has come; a late outcome is a
    violation only under the saga's latency objective."""
    evs: list[Row] = inst[1::2]
    subject = m.rid_subject

    def T(i: int) -> str:
        return f"{float(evs[i][_T] or 0.0):.3f}"

    def S(i: int) -> str:
        return subject[evs[i][_RID]]

    by_check: dict[str, tuple[list[str], list[int]]] = {}

    def note(check: str, text: str, marks: Iterable[int]) -> None:
        texts, mk = by_check.setdefault(check, ([], []))
        if text not in texts:
            texts.append(text)
        mk.extend(marks)

    for check, about, text in a.findings:
        note(check, text(T, S), about)
    final = quiescent_at is not None
    if a.owed and (end_at >= deadline_at or final):  # before either, a compensation may still arrive
        why = f"; the system was quiescent from t={quiescent_at:.3f}s, so it will not come" if final else ""
        for s, marks in a.owed:
            st = m.spec.steps[s]
            note("compensation_completeness", f"step '{st.name}' succeeded ({st.success}) but was never compensated "
                                              f"({st.compensation} not seen{why})", marks)
    spec = m.spec
    terminals = " or ".join((*spec.success, *spec.abort))
    expected_by = f"by t={deadline_at:.3f}s"
    if a.first_terminal < 0:
        last_subject, last_t = subject[evs[-1][_RID]], float(evs[-1][_T] or 0.0)
        if final:
            expected_by = "by the time the system is quiescent"
            note("termination", f"stuck: no terminal event ({', '.join((*spec.success, *spec.abort))}) and the "
                                f"system was quiescent from t={quiescent_at:.3f}s (nothing left to deliver, to "
                                f"acknowledge or to publish), so none will come; the last event was "
                                f"{last_subject} at t={last_t:.3f}s", ())
        elif end_at >= deadline_at:
            note("termination", f"no terminal event ({', '.join((*spec.success, *spec.abort))}) by "
                                f"t={deadline_at:.3f}s (deadline {deadline:g}s after t={deadline_at - deadline:.3f}s); "
                                f"the last event was {last_subject} at t={last_t:.3f}s", ())
    elif ft > deadline_at and spec.latency_objective is not None:
        base = deadline_at - deadline
        due = base + spec.latency_objective
        if ft > due:
            expected_by = f"within the latency objective {spec.latency_objective:g}s (by t={due:.3f}s)"
            note("termination", f"late: the terminal event came at t={ft:.3f}s, {ft - base:.3f}s after "
                                f"t={base:.3f}s; the latency objective is {spec.latency_objective:g}s",
                 (a.first_terminal,))
    out = []
    for check in CHECKS:
        if check in by_check:
            texts, marked = by_check[check]
            expected = EXPECTED.get(check) or f"exactly one terminal event ({terminals}) {expected_by}"
            out.append(_violation(m, key, check, expected, "; ".join(texts), inst, marked, faults, timeline))
    return out


def _lost_request(m: _Model, key: str, op: dict[str, Any], inst: list[Any] | None, due: float,
                  faults: dict[str, dict[str, Any]], timeline: _FaultTimeline) -> SagaViolation:
    done = float(op.get("completed") or op.get("t") or 0.0)
    detail = (f"start request {op.get('op', '?')} ({op.get('request') or 'the workload'}) was accepted at "
              f"t={done:.3f}s ({op.get('detail') or 'ok'}) but {m.spec.start} for {m.spec.key} {key} never "
              f"appeared by t={due:.3f}s")
    return _violation(m, key, "no_lost_request", EXPECTED["no_lost_request"], detail, inst or [], [], faults,
                      timeline)


def _violation(m: _Model, key: str, check: str, expected: str, detail: str, inst: list[Any],
               marks: Iterable[int], faults: dict[str, dict[str, Any]], timeline: _FaultTimeline) -> SagaViolation:
    events: list[dict[str, Any]] = []
    active: list[list[str]] = []
    used: dict[str, dict[str, Any]] = {}
    steps = m.spec.steps
    services, snapshots = m.services, m.snapshots
    for rid, row in zip(inst[0::2], inst[1::2], strict=True):
        t = float(row[_T] or 0.0)
        snap = timeline.at(t)
        service = row[_PROD]
        if not service:
            step = next((s for role, s in m.role_sets[rid] if role >= STEP_OK), -1)
            service = steps[step].service if step >= 0 else None
        service = "?" if not service else services.setdefault(service, service) if service.__class__ is str else service
        events.append({"t": t, "service": service, "subject": m.rid_subject[rid],
                       "role": m.labels[rid], "seq": row[_SEQ], "event_id": row[_EID]})
        shared = snapshots.get(snap)
        if shared is None:
            shared = snapshots[snap] = list(snap)
        active.append(shared)  # never changed once made (findings, reports and JSON only read it)
        for fid in snap:
            used.setdefault(fid, faults.get(fid, {"id": fid}))
    return SagaViolation(saga=m.name, key=key, check=check, expected=expected, events=events, faults_active=active,
                         detail=detail, faults=used, marks=sorted(set(marks)))
