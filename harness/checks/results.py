"""The result of one run, as data: what the run loop fills in and every reporter reads.

:class:`RunResult` is the single record of a run (seed, command to reproduce it, verdict, checks, the saga
checker's findings, contract violations, faults, services, invariants, shrinking). The reporters
(:mod:`harness.report`) and the CLI read it; nothing in it depends on how the run was driven.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sagaproof.harness.checks.checker import CHECK_TITLES, CHECKS, CheckResult
from sagaproof.harness.checks.findings import Finding

VERDICTS = ("pass", "fail", "error")
REPORT_SCHEMA_VERSION = 2  # report.json's "schema_version"; docs/report.schema.json describes it


PASSED, FAILED, NOT_JUDGED, NOT_APPLICABLE = "passed", "failed", "not judged", "not applicable"
STATUSES = (PASSED, FAILED, NOT_JUDGED, NOT_APPLICABLE)


@dataclass
class CheckOutcome:
    """One named check (a saga property, an invariant, the contracts...) and what it concluded.

    ``status`` is one of three outcomes, the third in two kinds:

    * ``"passed"``: it judged something and found nothing wrong;
    * ``"failed"``: it found something wrong (``findings``; ``details`` are their texts, kept for readers of
      earlier reports);
    * ``"not judged"``: it applies to this run but had nothing to judge (no saga started, no message recorded,
      no consumer observed...). ``summary`` says why. It fails the run: a check with nothing to judge does not
      pass;
    * ``"not applicable"``: it cannot apply in this mode (no contracts declared, attach mode without links, a
      run without chaos...). ``summary`` says why. It does not fail the run and is never shown as passed.

    ``ok`` is True for passed and not applicable, ``skipped`` for both kinds of not judged. Built with only
    ``ok``, the status is passed or failed; ``skipped=True`` with ``ok=True`` means not applicable.
    """

    name: str
    ok: bool = True
    summary: str = ""
    details: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    skipped: bool = False
    status: str = ""

    def __post_init__(self) -> None:
        if not self.status:
            self.status = FAILED if not self.ok else NOT_APPLICABLE if self.skipped else PASSED
        if self.status not in STATUSES:
            raise ValueError(f"check {self.name!r}: status {self.status!r} is not one of {', '.join(STATUSES)}")
        self.ok = self.status in (PASSED, NOT_APPLICABLE)
        self.skipped = self.status in (NOT_JUDGED, NOT_APPLICABLE)

    @classmethod
    def not_judged(cls, name: str, why: str) -> CheckOutcome:
        """A check that applies but had nothing to judge; ``why`` is one sentence. It fails the run."""
        return cls(name, False, f"not judged: {why}", [why], [Finding(name, f"not judged: {why}", why)],
                   status=NOT_JUDGED)

    @classmethod
    def not_applicable(cls, name: str, why: str) -> CheckOutcome:
        """A check that cannot apply in this mode; ``why`` is one sentence. It does not fail the run."""
        return cls(name, True, f"not applicable: {why}", status=NOT_APPLICABLE)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["findings"] = [f.to_dict() for f in self.findings]
        return d


def verdict_of(outcomes: list[CheckOutcome]) -> tuple[str, int]:
    """The verdict and exit code of everything judged: ``("pass", 0)`` when every check passed or does not
    apply, else ``("fail", 1)`` (a failed check, or one that applies and had nothing to judge). The CLI's
    runs, the pytest session and merged reports all decide through this."""
    ok = all(o.ok for o in outcomes)
    return ("pass", 0) if ok else ("fail", 1)


def combine_outcomes(groups: list[list[CheckOutcome]]) -> list[CheckOutcome]:
    """One outcome per check name over several judgements of it (the pytest session's ``check_sagas`` calls):
    failed if any failed (every finding kept), else not judged if any was, else passed if any passed, else
    not applicable. Names keep the order in which they first appear."""
    by_name: dict[str, list[CheckOutcome]] = {}
    for group in groups:
        for o in group:
            by_name.setdefault(o.name, []).append(o)
    out = []
    rank = {FAILED: 0, NOT_JUDGED: 1, PASSED: 2, NOT_APPLICABLE: 3}
    for name, seen in by_name.items():
        worst = min(seen, key=lambda o: rank[o.status])
        if len(seen) == 1:
            out.append(worst)
            continue
        same = [o for o in seen if o.status == worst.status]
        findings = [f for o in same for f in o.findings]
        details = [d for o in same for d in o.details]
        summary = worst.summary if len(same) == 1 else f"{worst.summary} ({worst.status} in {len(same)} judgements)"
        out.append(CheckOutcome(name, worst.ok, summary, details, findings, status=worst.status))
    return out


@dataclass
class RunResult:
    """Everything a run found. The run loop fills it in; :func:`harness.report.write_reports` renders it.

    ``faults`` are fault dicts (``id``, ``kind``, ``target``, ``start``, ``duration``, ``params``) with an
    added ``ended_at``; ``contract_violations`` are dicts with ``subject``, ``producer``, ``pointer``,
    ``message``, ``payload``; ``declared_flows`` are dicts ``{"service", "action": "send"|"receive",
    "subject"}`` from the contracts, used to draw the choreography map; ``shrink`` is ``None`` or a dict with
    at least ``command`` and the minimal fault list as ``minimal`` (or ``schedule``); ``workload`` is ``None`` or
    ``{"requested", "started", "failed", "retries", "seconds"}``.
    """

    seed: int
    system_path: str
    command: str
    started_at: str = ""
    duration_s: float = 0.0
    verdict: str = "pass"
    exit_code: int = 0
    checks: list[CheckOutcome] = field(default_factory=list)
    check_result: CheckResult | None = None
    contract_violations: list[dict[str, Any]] = field(default_factory=list)
    faults: list[dict[str, Any]] = field(default_factory=list)
    services: list[dict[str, Any]] = field(default_factory=list)
    history_path: str | None = None
    messages_recorded: int = 0
    invariants: list[CheckOutcome] = field(default_factory=list)
    shrink: dict[str, Any] | None = None
    declared_flows: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    workload: dict[str, Any] | None = None
    broker: dict[str, Any] | None = None  # harness.checks.consumption.BrokerReport.to_dict(): matrix, coverage, per service
    convergence: dict[str, Any] | None = None  # how the wait for the end went (harness.session.quiescence.Convergence)
    options: dict[str, Any] = field(default_factory=dict)
    run_command: str = ""
    event_counts: dict[str, int] = field(default_factory=dict)
    notable_events: list[dict[str, Any]] = field(default_factory=list)
    # where the run's time went, in seconds: start_up, contracts ({seconds, cached, waited}), workload, chaos,
    # convergence, checks, total
    timings: dict[str, Any] = field(default_factory=dict)
    coverage: dict[str, Any] | None = None  # the targeted phase's matrix (harness.session.targeted.coverage)

    def all_checks(self) -> list[CheckOutcome]:
        """The checks to report: ``checks`` minus any that are also in ``invariants``; plus one outcome per saga
        check (:func:`saga_check_outcomes`) unless ``checks`` already has saga outcomes (a name in ``CHECKS`` or
        starting with "saga "); plus a failing ``contracts`` outcome when there are contract violations and no
        check mentions contracts."""
        own = [c for c in self.checks if c not in self.invariants]  # invariants are reported on their own
        names = {c.name for c in own}
        # A run loop that lists its own saga outcomes (named like a check, or "saga ...") is taken as is.
        has_saga = any(n in CHECKS or n.startswith("saga ") for n in names)
        extra = saga_check_outcomes(self.check_result) if self.check_result is not None and not has_saga else []
        if self.contract_violations and not any("contract" in n for n in names):
            cv = self.contract_violations
            extra.insert(0, CheckOutcome(
                "contracts", False, f"{len(cv)} recorded message(s) broke their contract",
                [f"{c.get('subject')} from {c.get('producer') or '?'}: {c.get('pointer') or ''} {c.get('message')}"
                 for c in cv[:100]]))
        return own + extra

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``report.json``)."""
        cr = self.check_result
        if cr is not None and self.command:
            cr.with_repro(self.command)
        return {
            "schema_version": REPORT_SCHEMA_VERSION,
            "seed": self.seed, "system_path": self.system_path, "command": self.command,
            "started_at": self.started_at, "duration_s": self.duration_s, "verdict": self.verdict,
            "exit_code": self.exit_code, "checks": [c.to_dict() for c in self.all_checks()],
            "check_result": cr.to_dict() if cr is not None else None,
            "contract_violations": self.contract_violations, "faults": self.faults, "services": self.services,
            "history_path": self.history_path, "messages_recorded": self.messages_recorded,
            "invariants": [c.to_dict() for c in self.invariants], "shrink": self.shrink,
            "declared_flows": self.declared_flows, "notes": self.notes, "workload": self.workload,
            "broker": self.broker, "convergence": self.convergence,
            "first_failure": next((c.name for c in self.checks if not c.ok), None),
            "options": self.options, "run_command": self.run_command, "event_counts": self.event_counts,
            "notable_events": self.notable_events, "timings": self.timings,
            "coverage": self.coverage,
            "findings": [f.to_dict() for c in self.all_checks() for f in c.findings],
        }


def saga_check_outcomes(result: CheckResult) -> list[CheckOutcome]:
    """One :class:`CheckOutcome` per saga check (``CHECKS`` order), with each violation's message as detail."""
    outcomes = []
    for name in CHECKS:
        vs = result.by_check(name)
        outcomes.append(CheckOutcome(name=name, ok=not vs, summary=f"{CHECK_TITLES[name]}: {result.summary(name)}",
                                     details=[v.message() for v in vs]))
    return outcomes
