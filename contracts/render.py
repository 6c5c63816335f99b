"""Terminal rendering (rich) of check reports, diffs and can-i-deploy matrices; JSON forms come from each
result's ``to_dict``."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text
from sagaproof.contracts.can_i_deploy import Matrix
from sagaproof.contracts.check import CheckReport
from sagaproof.contracts.diff import Change

__all__ = ["check_table", "diff_table", "diff_to_dict", "matrix_table"]

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
    order = {"breaking": 0, "undecided": 1, "safe": 2}
    for c in sorted(changes, key=lambda c: (order[c.verdict], c.subject)):
        if c.breaking_for:
            bf = Text(c.breaking_for, style="bold red")
        else:
            bf = Text("undecided", style="yellow") if c.undecided else Text("safe", style="green")
        table.add_row(c.subject, c.kind, c.path or "-", bf, c.description)
    console.print(table)
    n = sum(1 for c in changes if c.breaking)
    u = sum(1 for c in changes if c.undecided and not c.breaking)
    if n:
        console.print(Text(f"{n} breaking change(s)", style="bold red")
                      + (Text(f", {u} undecided", style="yellow") if u else Text("")))
    elif u:
        console.print(Text(f"{u} undecided change(s), not shown safe", style="bold yellow"))
    else:
        console.print(Text("no breaking change", style="bold green"))


def diff_to_dict(changes: list[Change]) -> dict[str, Any]:
    """The JSON form of a diff (for ``--json``)."""
    return {"breaking": any(c.breaking for c in changes), "undecided": any(c.undecided for c in changes),
            "changes": [c.to_dict() for c in changes]}


_VERDICT_STYLE = {"safe": "green", "unsafe": "bold red", "undecided": "yellow"}


def matrix_table(matrix: Matrix, console: Console) -> None:
    """Print the can-i-deploy matrix (consumer, its ref, producer, its ref, channel, check, verdict), then why
    each row that is not safe is not (with its counterexample), the notes, and one summary line."""
    table = Table(title=f"Can I deploy to {matrix.environment}?")
    for col in ("consumer", "ref", "producer", "ref", "channel", "check", "verdict"):
        table.add_column(col, overflow="fold")
    for r in matrix.rows:
        table.add_row(r.consumer.service, r.consumer.label, r.producer.service, r.producer.label, r.channel, r.kind,
                      Text(r.verdict, style=_VERDICT_STYLE[r.verdict]))
    if matrix.rows:
        console.print(table)
    else:
        console.print(f"no channel connects {', '.join(v.service for v in matrix.candidates)} with anything that runs "
                      f"in {matrix.environment}")
    for r in matrix.rows:
        if r.verdict != "safe":
            console.print(Text(f"{r.verdict}: ", style=_VERDICT_STYLE[r.verdict])
                          + Text(f"[{r.channel}] {r.consumer.service} {r.consumer.label} <- {r.producer.service} "
                                 f"{r.producer.label} ({r.kind}): {r.detail()}"), soft_wrap=True)
    for note in matrix.notes:
        console.print(Text("note: ", style="dim") + Text(note), soft_wrap=True)
    console.print(Text(matrix.summary(), style="bold green" if matrix.ok else "bold red"))


def to_json(obj: Any) -> str:
    """Serialise a ``to_dict`` result (counterexamples may hold any JSON value)."""
    return json.dumps(obj, indent=2, default=str)
