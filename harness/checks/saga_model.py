"""The compiled saga model and the analysis of a sequence of roles (see :mod:`harness.checks.checker`).

A saga's model (:class:`_Model`) maps each subject to the roles it plays (start, outcome, a step's success,
failure or compensation) and holds the relations between steps; :func:`_analyse` walks the roles of one
instance's events in order and collects every finding that does not depend on the events' times, so one
analysis serves every instance with the same sequence of roles (the model caches it).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, Final

from sagaproof.harness.config import SagaSpec

# Roles of a subject within a saga.
START, SUCCESS, ABORT, STEP_OK, STEP_FAIL, STEP_COMP = range(6)

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
        groups: dict[str, list[int]] = {}
        for i, st in enumerate(steps):
            if st.one_of is not None:
                groups.setdefault(st.one_of, []).append(i)
        self.groups = groups
        self.group_of = [st.one_of for st in steps]
        # Predecessors of each step: ("step", j), ("group", name) or ("subject", subject).
        self.preds: list[list[tuple[str, Any]]] = _predecessors(spec, groups)
        # Steps that follow an outcome (directly or through other steps) are not needed for that outcome.
        follows_outcome = _follows_outcome(spec, self.preds, groups)
        self.required = [i for i, st in enumerate(steps)
                         if not st.optional and st.one_of is None and not follows_outcome[i]]
        self.required_groups = [g for g, members in groups.items()
                                if not all(steps[j].optional for j in members)
                                and not any(follows_outcome[j] for j in members)]
        # Ancestor pairs (a, b): a comes before b; used by compensation_order = "reverse".
        self.before: set[tuple[int, int]] = _ancestors(spec, self.preds, groups) \
            if spec.compensation_order == "reverse" else set()
        # Role table: subject -> role-set id; role set = tuple of (role, step index).
        self.role_sets: list[tuple[tuple[int, int], ...]] = []
        self.subject_rid: dict[str, int] = {}
        self.rid_subjects: list[set[str]] = []
        self.rid_subject: list[str] = []
        self.ok_rids: list[set[int]] = [set() for _ in range(self.n)]  # role sets holding step i's success
        for subject, roles in _roles_by_subject(spec).items():
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


def _predecessors(spec: SagaSpec, groups: dict[str, list[int]]) -> list[list[tuple[str, Any]]]:
    """What each step comes after: ("step", j), ("group", name) or ("subject", subject)."""
    pos = {st.name: i for i, st in enumerate(spec.steps)}
    out: list[list[tuple[str, Any]]] = []
    for st in spec.steps:
        preds: list[tuple[str, Any]] = []
        for dep in st.after:
            if dep in pos:
                preds.append(("step", pos[dep]))
            elif dep in groups:
                preds.append(("group", dep))
            else:
                preds.append(("subject", dep))
        out.append(preds)
    return out


def _follows_outcome(spec: SagaSpec, all_preds: list[list[tuple[str, Any]]],
                     groups: dict[str, list[int]]) -> list[bool]:
    """For each step: does it follow an outcome (directly or through other steps)?"""
    outcome_subjects = set(spec.success) | set(spec.abort)
    follows_outcome = [False] * len(spec.steps)
    changed = True
    while changed:
        changed = False
        for i, preds in enumerate(all_preds):
            if follows_outcome[i]:
                continue
            for kind, ref in preds:
                if (kind == "subject" and ref in outcome_subjects) or (kind == "step" and follows_outcome[ref]) \
                        or (kind == "group" and any(follows_outcome[j] for j in groups[ref])):
                    follows_outcome[i] = True
                    changed = True
                    break
    return follows_outcome


def _ancestors(spec: SagaSpec, all_preds: list[list[tuple[str, Any]]],
               groups: dict[str, list[int]]) -> set[tuple[int, int]]:
    """Ancestor pairs (a, b) of a cascade: a comes before b (with no declared graph, the listed order)."""
    steps = spec.steps
    n = len(steps)
    if not any(st.after for st in steps):  # no declared graph: the listed order is the order
        return {(a, b) for a in range(n) for b in range(a + 1, n)}
    before: set[tuple[int, int]] = set()
    direct: list[set[int]] = []
    for preds in all_preds:
        d: set[int] = set()
        for kind, ref in preds:
            if kind == "step":
                d.add(ref)
            elif kind == "group":
                d.update(groups[ref])
        direct.append(d)
    for b in range(n):
        seen: set[int] = set()
        stack = list(direct[b])
        while stack:
            a = stack.pop()
            if a not in seen:
                seen.add(a)
                stack.extend(direct[a])
        before.update((a, b) for a in seen)
    return before


def _roles_by_subject(spec: SagaSpec) -> dict[str, list[tuple[int, int]]]:
    """Subject -> the (role, step index) pairs it plays, in the order of the saga's declaration."""
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
    for i, st in enumerate(spec.steps):
        add(st.success, STEP_OK, i)
        add(st.failure, STEP_FAIL, i)
        add(st.compensation, STEP_COMP, i)
    return by_subject


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
    w = _Walk(m, sig)
    on_role = (w.start, w.success, w.abort, w.step_ok, w.step_fail, w.step_comp)  # by role, START .. STEP_COMP
    for i, rid in enumerate(sig):
        for role, s in m.role_sets[rid]:
            on_role[role](i, s)
    F = w.F
    # The success outcome needs every required step (and one of every required group of alternatives). When a
    # required step failed, or the saga also aborted, that contradiction is the finding; what did not happen
    # after it is its consequence.
    if w.succ and not w.aborts:
        _success_findings(m, w)
    # Declared order: a step succeeds only after what it comes after.
    _order_findings(m, sig, w)
    # A cascade undoes in reverse order: if a came before b, b's undo comes before a's.
    if m.before:
        names, undone = m.names, w.undone
        for a, b in m.before:
            if undone[a] and undone[b] and undone[a][0][1] < undone[b][0][1]:
                ua, ub = undone[a][0][1], undone[b][0][1]
                F.append(("compensation_order", (ua, ub), lambda T, S, ua=ua, ub=ub, na=names[a], nb=names[b]: (
                    f"step '{na}' was undone ({S(ua)} at t={T(ua)}s) before step '{nb}', which comes after it "
                    f"({S(ub)} at t={T(ub)}s); a cascade undoes in reverse order")))

    succ, aborts, starts, open_ok = w.succ, w.aborts, w.starts, w.open_ok
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
        for s in range(m.n):
            if open_ok[s] and m.comp_subject[s]:
                owed.append((s, tuple(open_ok[s])))
    return _Analysis(F, owed, starts[0] if starts else -1, terminals[0] if terminals else -1, outcome,
                     len(set(sig)) != len(sig))


class _Walk:
    """The state of :func:`_analyse`'s walk over one sequence of roles, one method per role: each event's
    findings go to ``F`` in the order of the events."""

    def __init__(self, m: _Model, sig: tuple[int, ...]) -> None:
        n = m.n
        self.m = m
        self.sig = sig
        self.oks: list[list[int]] = [[] for _ in range(n)]
        self.fails: list[list[int]] = [[] for _ in range(n)]
        self.open_ok: list[deque[int]] = [deque() for _ in range(n)]
        self.undone: list[list[tuple[int, int]]] = [[] for _ in range(n)]  # (success, its compensation)
        self.starts: list[int] = []
        self.succ: list[int] = []
        self.aborts: list[int] = []
        self.F: list[Finding] = []

    def start(self, i: int, s: int) -> None:
        starts = self.starts
        if starts:
            self.F.append(("no_double_effect", (i,), lambda T, S, a=starts[0], b=i: (
                f"the saga was started twice ({S(b)} at t={T(a)}s and t={T(b)}s)")))
        starts.append(i)

    def success(self, i: int, s: int) -> None:
        aborts, succ = self.aborts, self.succ
        if aborts and not succ:
            self.F.append(("no_contradiction", (i,), lambda T, S, a=aborts[0], b=i: (
                f"it ended with success ({S(b)}) after it had aborted ({S(a)})")))
        succ.append(i)

    def abort(self, i: int, s: int) -> None:
        aborts, succ = self.aborts, self.succ
        if succ and not aborts:
            self.F.append(("no_contradiction", (i,), lambda T, S, a=succ[0], b=i: (
                f"it ended with abort ({S(b)}) after it had succeeded ({S(a)})")))
        aborts.append(i)

    def step_ok(self, i: int, s: int) -> None:
        m, F, fails, open_ok = self.m, self.F, self.fails, self.open_ok
        name = m.names[s]
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
        self.oks[s].append(i)
        open_ok[s].append(i)

    def step_fail(self, i: int, s: int) -> None:
        m, open_ok = self.m, self.open_ok
        if open_ok[s] and not m.retriable[s]:
            self.F.append(("no_contradiction", (i,), lambda T, S, a=open_ok[s][0], b=i, name=m.names[s]: (
                f"step '{name}' failed ({S(b)}) after it had succeeded ({S(a)})")))
        self.fails[s].append(i)

    def step_comp(self, i: int, s: int) -> None:
        m, F, open_ok, sig = self.m, self.F, self.open_ok, self.sig
        name = m.names[s]
        if open_ok[s]:
            self.undone[s].append((open_ok[s].popleft(), i))
        elif self.oks[s]:
            F.append(("compensation_completeness", (i,), lambda T, S, b=i, name=name: (
                f"step '{name}' was compensated more than once ({S(b)} at t={T(b)}s undoes nothing)")))
        elif any(sig[k] in m.ok_rids[s] for k in range(i + 1, len(sig))):
            F.append(("compensation_order", (i,), lambda T, S, b=i, name=name, fw=m.spec.steps[s].success: (
                f"step '{name}' was compensated ({S(b)} at t={T(b)}s) before its forward step {fw} "
                f"happened")))
        else:
            F.append(("compensation_order", (i,), lambda T, S, b=i, name=name, fw=m.spec.steps[s].success: (
                f"step '{name}' was compensated ({S(b)} at t={T(b)}s) but its forward step {fw} never "
                f"happened")))


def _success_findings(m: _Model, w: _Walk) -> None:
    """A success outcome: the required steps (and groups of alternatives) that failed, never succeeded, or
    succeeded after it."""
    F, names, oks, fails = w.F, m.names, w.oks, w.fails
    t_s = w.succ[0]
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


def _order_findings(m: _Model, sig: tuple[int, ...], w: _Walk) -> None:
    """Declared order: a step succeeds only after what it comes after."""
    F, names, oks, spec = w.F, m.names, w.oks, m.spec
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
