"""What the broker checks (:mod:`harness.checks.consumption`) report: the contracts' receives (:class:`Receive`), one
finding readable on its own (:class:`BrokerFinding`, the saga checks' failure format) and the whole report with
its summaries (:class:`BrokerReport`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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
