"""Findings: every failure any check reports, as one family.

A :class:`Finding` is one thing that is wrong, readable on its own: the check that found it, a one-line title,
the full text (for a saga: what was expected, the events seen, the faults active, the reproduce line), and
where it happened (saga and key, subject, time, faults). The saga checks, live contract conformance,
recorder completeness, the fault schedule, the invariants and any check registered later
(:func:`harness.checks.register_check`) all report findings; reports, JUnit and pytest failures render
them the same way. In the history each is a ``finding`` record.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Finding"]


@dataclass
class Finding:
    """One failure found by a check.

    Attributes:
        check: the check's name (``termination``, ``live contract conformance``, ``fault schedule carried out``…).
        title: one line.
        message: the full text (defaults to the title).
        saga, key: the saga instance, when the finding is about one.
        subject: the NATS subject, when it is about a message.
        t: seconds since the run started, when it happened at one moment.
        faults: ids of the faults involved (active at the time, or the fault itself).
        data: anything else a tool may want (JSON-ready).
    """

    check: str
    title: str
    message: str = ""
    saga: str | None = None
    key: str | None = None
    subject: str | None = None
    t: float | None = None
    faults: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def text(self, repro: str | None = None) -> str:
        """The full text, ending with the reproduce line when one is given and not already there."""
        body = self.message or self.title
        if repro and repro not in body:
            body += f"\n  reproduce: {repro}"
        return body

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_violation(cls, v: Any, repro: str | None = None) -> Finding:
        """A saga checker violation (:class:`harness.checks.checker.SagaViolation`)."""
        first = v.events[0]["t"] if v.events else None
        fids = list(dict.fromkeys([f for fa in v.faults_active for f in fa] + list(v.faults)))
        return cls(check=v.check, title=v.title, message=v.message(repro), saga=v.saga, key=str(v.key),
                   t=first, faults=fids, data={"expected": v.expected, "detail": v.detail})

    @classmethod
    def from_contract(cls, v: dict[str, Any], t: float | None = None) -> Finding:
        """A live contract violation (``contracts.Violation.to_dict()``)."""
        title = (f"{v.get('subject')} from {v.get('producer') or '?'} at {v.get('pointer') or '/'}: "
                 f"{v.get('message')}")
        return cls(check="live contract conformance", title=title, message=title, subject=v.get("subject"),
                   t=t, data={"violation": v})
