"""Terminal rendering (rich) of check reports and diffs; JSON forms come from each result's ``to_dict``."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text
from sagaproof.contracts.check import CheckReport
from sagaproof.contracts.diff import Change

__all__ = ["check_table", "diff_table", "diff_to_dict"]

_STYLE = {"ok": "green", "incompatible": "bold red", "no producer": "bold red", "unknown": "yellow",
          "no consumer": "yellow", "unused": "dim"}


def check_table(report: CheckReport, console: Console) -> None:
    """Print the channels table (subject, producers, consumers, verdict) and then every problem."""
    table = Table(title="Channels", show_lines=False)
    for col in ("subject", "producers", "consumers", "verdict"):
        table.add_column(col)
    for row in report.rows:
        table.add_row(row.subject, ", ".join(row.producers) or "-", ", ".join(row.consumers) or "-",
                      Text(row.verdict, style=_STYLE.get(row.verdict, "")))
    console.print(table)
    for p in report.problems:
        style = "bold red" if p.severity == "error" else "yellow"
        console.print(Text(f"{p.severity}: ", style=style) + Text(f"[{p.subject}] {p.message}"))
    n_err, n_warn = len(report.errors), len(report.warnings)
    verdict = Text("contracts OK", style="bold green") if report.ok else Text("contracts FAILED", style="bold red")
    console.print(verdict + Text(f" ({len(report.rows)} channels, {n_err} errors, {n_warn} warnings)"))


def diff_table(changes: list[Change], console: Console) -> None:
    """Print the classified changes, breaking ones first."""
    if not changes:
        console.print(Text("no contract changes", style="green"))
        return
    table = Table(title="Contract changes")
    for col in ("subject", "change", "path", "breaking for", "description"):
        table.add_column(col, overflow="fold")
    for c in sorted(changes, key=lambda c: (c.breaking_for is None, c.subject)):
        bf = Text(c.breaking_for, style="bold red") if c.breaking_for else Text("safe", style="green")
        table.add_row(c.subject, c.kind, c.path or "-", bf, c.description)
    console.print(table)
    n = sum(1 for c in changes if c.breaking)
    console.print(Text(f"{n} breaking change(s)", style="bold red") if n else Text("no breaking change", style="bold green"))


def diff_to_dict(changes: list[Change]) -> dict[str, Any]:
    """The JSON form of a diff (for ``--json``)."""
    return {"breaking": any(c.breaking for c in changes), "changes": [c.to_dict() for c in changes]}


def to_json(obj: Any) -> str:
    """Serialise a ``to_dict`` result (counterexamples may hold any JSON value)."""
    return json.dumps(obj, indent=2, default=str)
