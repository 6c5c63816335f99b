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

__all__ = ["add_columns", "check_table", "diff_table", "diff_to_dict", "identifier_column", "matrix_table"]

_STYLE = {"ok": "green", "incompatible": "bold red", "no producer": "bold red", "undecided": "bold red",
          "undecided (accepted)": "yellow",
          "no consumer": "yellow", "unused": "dim"}


def add_columns(table: Table, console: Console, columns: list[tuple[str, list[str], bool]]) -> None:
    """Add the columns ``(header, values, is_identifier)`` with widths that fit the terminal: identifiers
    (subjects, keys, paths) whole when the others can give them room, else folded over lines, never cut with an
    ellipsis; the other columns wrap their words into what is left. Every width is set here, so the table never
    runs past the terminal's edge."""
    n = len(columns)
    avail = max(n * 4, console.width - (3 * n + 1))
    natural = [max([len(header), *(len(v) for v in values)]) for header, values, _ in columns]
    floor = [nat if ident else min(nat, max(len(header), 16))
             for nat, (header, _, ident) in zip(natural, columns, strict=True)]
    widths = list(floor)
    if sum(floor) > avail:  # the identifiers do not fit whole: they share what the others leave, folded
        others = sum(f for f, (_, _, ident) in zip(floor, columns, strict=True) if not ident)
        idents = [i for i, c in enumerate(columns) if c[2]]
        room = max(4 * len(idents), avail - others)
        total = sum(natural[i] for i in idents) or 1
        for i in idents:  # in proportion to their lengths
            widths[i] = max(4, min(natural[i], room * natural[i] // total))
    spare = avail - sum(widths)
    for i in range(n):  # what is left goes to the other columns, in order, up to their natural width
        if spare <= 0:
            break
        grow = min(spare, natural[i] - widths[i])
        widths[i] += grow
        spare -= grow
    for (header, _, _), width in zip(columns, widths, strict=True):
        table.add_column(header, overflow="fold", width=width)


def identifier_column(table: Table, name: str, values: list[str], console: Console, *,
                      others: list[list[str]] | None = None) -> None:
    """Add an identifier column and then the ``others`` (each its header and values) with :func:`add_columns`."""
    add_columns(table, console, [(name, values, True), *((col[0], col[1:], False) for col in others or [])])


def check_table(report: CheckReport, console: Console) -> None:
    """Print the channels table (subject, producers, consumers, verdict) and then every problem. Subjects and
    service names wrap, never cut, at any terminal width."""
    table = Table(title="Channels", show_lines=False)
    others = [["producers", *(", ".join(r.producers) or "-" for r in report.rows)],
              ["consumers", *(", ".join(r.consumers) or "-" for r in report.rows)],
              ["verdict", *(r.verdict for r in report.rows)]]
    identifier_column(table, "subject", [r.subject for r in report.rows], console, others=others)
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
    if report.accepted_undecided:
        console.print(Text("accepted as undecided (system file [contracts] accept_undecided): ", style="yellow")
                      + Text(", ".join(report.accepted_undecided)))


def diff_table(changes: list[Change], console: Console) -> None:
    """Print the classified changes, breaking ones first."""
    if not changes:
        console.print(Text("no contract changes", style="green"))
        return
    table = Table(title="Contract changes")
    add_columns(table, console, [("subject", [c.subject for c in changes], True),
                                 ("change", [c.kind for c in changes], False),
                                 ("path", [c.path or "-" for c in changes], True),
                                 ("breaking for", [c.breaking_for or "undecided" for c in changes], False),
                                 ("description", [c.description for c in changes], False)])
    order = {"breaking": 0, "undecided": 1, "safe": 2}
    for c in sorted(changes, key=lambda c: (order[c.verdict], c.subject)):
        if c.breaking_for:
            bf = Text(c.breaking_for, style="bold red")
        else:
            bf = (Text("undecided (accepted)", style="yellow") if c.accepted else Text("undecided", style="bold red")) \
                if c.undecided else Text("safe", style="green")
        table.add_row(c.subject, c.kind, c.path or "-", bf, c.description)
    console.print(table)
    n = sum(1 for c in changes if c.breaking)
    u = sum(1 for c in changes if c.undecided and not c.breaking and not c.accepted)
    if n:
        console.print(Text(f"{n} breaking change(s)", style="bold red")
                      + (Text(f", {u} undecided", style="yellow") if u else Text("")))
    elif u:
        console.print(Text(f"{u} undecided change(s), not shown safe", style="bold yellow"))
    else:
        console.print(Text("no breaking change", style="bold green"))
    acc = sorted({c.subject for c in changes if c.undecided and c.accepted})
    if acc:
        console.print(Text("accepted as undecided (system file [contracts] accept_undecided): ", style="yellow")
                      + Text(", ".join(acc)))


def diff_to_dict(changes: list[Change]) -> dict[str, Any]:
    """The JSON form of a diff (for ``--json``): the same top-level fields as ``check --json`` (``ok``,
    ``breaking``, ``undecided``, ``accepted_undecided``), and each change decided by the engine carries the
    same finding fields (``compat``, ``keyword``, ``location``, ``counterexample``)."""
    breaking = any(c.breaking for c in changes)
    undecided = any(c.undecided and not c.accepted for c in changes)
    return {"ok": not breaking and not undecided, "breaking": breaking, "undecided": undecided,
            "accepted_undecided": sorted({c.subject for c in changes if c.undecided and c.accepted}),
            "changes": [c.to_dict() for c in changes]}


_VERDICT_STYLE = {"safe": "green", "unsafe": "bold red", "undecided": "yellow"}


def matrix_table(matrix: Matrix, console: Console) -> None:
    """Print the can-i-deploy matrix (consumer, its ref, producer, its ref, channel, check, verdict), then why
    each row that is not safe is not (with its counterexample), the notes, and one summary line."""
    table = Table(title=f"Can I deploy to {matrix.environment}?")
    rows = matrix.rows
    add_columns(table, console, [("consumer", [r.consumer.service for r in rows], False),
                                 ("ref", [r.consumer.label for r in rows], False),
                                 ("producer", [r.producer.service for r in rows], False),
                                 ("ref", [r.producer.label for r in rows], False),
                                 ("channel", [r.channel for r in rows], True),
                                 ("check", [r.kind for r in rows], False), ("verdict", [r.verdict for r in rows], False)])
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
            console.print(Text(f"{r.verdict}{' (accepted)' if r.accepted else ''}: ", style=_VERDICT_STYLE[r.verdict])
                          + Text(f"[{r.channel}] {r.consumer.service} {r.consumer.label} <- {r.producer.service} "
                                 f"{r.producer.label} ({r.kind}): {r.detail()}"), soft_wrap=True)
    for note in matrix.notes:
        console.print(Text("note: ", style="dim") + Text(note), soft_wrap=True)
    console.print(Text(matrix.summary(), style="bold green" if matrix.ok else "bold red"))


def to_json(obj: Any) -> str:
    """Serialise a ``to_dict`` result (counterexamples may hold any JSON value)."""
    return json.dumps(obj, indent=2, default=str)
