"""A step that answers too late, end to end, on a choreography written the way a team writes it
(tests/fixtures/tickets): the booth gives up on a ticket whose seat is not reserved within 2 s (the step's
`timeout` in the saga model), and the seat service must then let the seat go, even when its reservation is
already on its way. The targeted phase holds one reservation on the seat service's link beyond that time-out,
so the time-out path runs in every run, whatever the random phase does."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT, SAGAPROOF

TICKETS = ROOT / "tests" / "fixtures" / "tickets"

pytestmark = pytest.mark.slow


def _run(tmp_path: Path, *extra: str) -> tuple[subprocess.CompletedProcess[str], dict, list[dict]]:
    system = tmp_path / "tickets"
    shutil.copytree(TICKETS, system, ignore=shutil.ignore_patterns(".sagaproof", "__pycache__"))
    report = tmp_path / "report"
    proc = subprocess.run([*SAGAPROOF, "run", str(system), "--seed", "1", "--report-dir", str(report), *extra],
                          capture_output=True, text=True, timeout=300)
    data = json.loads((report / "report.json").read_text()) if (report / "report.json").exists() else {}
    history = [json.loads(line) for line in (report / "events.jsonl").read_text().splitlines()] \
        if (report / "events.jsonl").exists() else []
    return proc, data, history


def _late_cell(report: dict) -> dict:
    (cell,) = [c for c in report["coverage"]["cells"] if c["window"] == "late"]
    return cell


def test_the_time_out_path_runs_and_a_correct_system_passes(tmp_path: Path) -> None:
    proc, report, history = _run(tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    cell = _late_cell(report)
    assert cell["exercised"] and cell["service"] == "seats" and cell["subject"] == "seats.reserved", cell
    assert "held 3.0s (the step's time-out is 2.0s)" in cell["outcome"]
    key = cell["saga_key"]
    subjects = [r["subject"] for r in history if r["kind"] == "message" and r["data"].get("ticket_id") == key]
    # the booth gave up before the held reservation arrived; the seat was let go
    assert subjects.index("tickets.expired") < subjects.index("seats.reserved") <= subjects.index("seats.released")
    held = [r["fault"] for r in history if r["kind"] == "fault_start" and r["fault"]["id"] == cell["fault_id"]]
    assert held and held[0]["kind"] == "delay_outcome" and held[0]["params"]["hold"] == 3.0
    assert next(w for w in report["coverage"]["plan"] if w["window"] == "late")["timeout"] == 2.0


def test_a_time_out_path_that_forgets_the_compensation_is_caught(tmp_path: Path) -> None:
    # SEATS_BUG=forget_release: a ticket that expired keeps its seat when the seat was already reserved.
    proc, report, _history = _run(tmp_path, "--env", "SEATS_BUG=forget_release")
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert report["first_failure"] == "compensation_completeness", proc.stdout[-3000:]
    cell = _late_cell(report)
    assert cell["exercised"] and cell["outcome"].startswith("failed compensation_completeness"), cell
