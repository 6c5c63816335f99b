"""Terminal tables wrap rather than cut identifiers (subjects, keys, paths), whatever the terminal's width."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from rich.console import Console
from rich.table import Table
from sagaproof.contracts.render import identifier_column

from tests.conftest import ROOT, SAGAPROOF

LONG = {"jobs.requested": "acme.payouts.v1.cmd.payout.send.requested.by.compliance",
        "results.done": "acme.payouts.v1.evt.compliance.screening.completed"}


def _long_subjects(tmp_path: Path) -> Path:
    system = tmp_path / "jobs"
    shutil.copytree(ROOT / "tests" / "fixtures" / "jobs", system, ignore=shutil.ignore_patterns(".sagaproof"))
    for f in [system / "sagaproof.toml", *(system / "contracts").glob("*.yaml")]:
        text = f.read_text()
        for short, long in LONG.items():
            text = text.replace(short, long)
        f.write_text(text)
    return system


def test_contracts_check_at_80_columns_shows_every_subject_whole(tmp_path: Path):
    env = {**os.environ, "COLUMNS": "80", "LINES": "50"}
    proc = subprocess.run([*SAGAPROOF, "contracts", "check", str(_long_subjects(tmp_path))], capture_output=True,
                          text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "…" not in proc.stdout
    lines = proc.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    rows = [line for line in lines if line.startswith("│")]
    assert rows and all(line.rstrip().endswith("│") for line in rows), proc.stdout  # no column cropped
    column = "".join(line.split("│")[1].strip() for line in rows)  # the subject column, read down
    for subject in LONG.values():
        assert subject in column, proc.stdout  # folded over lines where it must be, never cut


@pytest.mark.parametrize("width", [40, 60, 80, 120])
def test_an_identifier_longer_than_the_terminal_is_folded_never_cut(width: int):
    console = Console(width=width, record=True, file=io.StringIO())
    table = Table()
    key = "order-" + "0123456789abcdef" * 5
    identifier_column(table, "key", [key], console, others=[["what", "a long description of what happened"]])
    table.add_column("what", overflow="fold")
    table.add_row(key, "a long description of what happened to this key " * 2)
    console.print(table)
    text = console.export_text()
    assert "…" not in text
    rows = [line for line in text.splitlines() if line.startswith("│")]
    assert all(line.rstrip().endswith("│") and len(line) <= width for line in rows), text  # no column cropped
    assert key in "".join(line.split("│")[1].strip() for line in rows)  # read down its column, all there
    if width >= len(key) + 20:
        assert any(key in line for line in rows)  # room for it: on one line
