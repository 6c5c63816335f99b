"""The saga checks' vocabulary and verdict: the checks in order of importance, what each expects, one violation
(:class:`SagaViolation`) and the whole verdict (:class:`CheckResult`). :mod:`harness.checks.checker` judges a
history into these; the reports, the merge of shards and the public API read them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

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
