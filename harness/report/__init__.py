"""Reports of a run, written to the report directory: ``report.json``, ``junit.xml`` and ``report.html``.

``write_reports(result, report_dir, history)`` is the one entry point; the CLI and the pytest plugin call it
after a run. The HTML report is a single self-contained file (inline CSS and SVG, no scripts or network).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sagaproof.harness.results import RunResult

__all__ = ["render_html", "write_reports"]


def write_reports(result: RunResult, report_dir: Path, history: list[dict[str, Any]]) -> dict[str, Path]:
    """Write report.json, junit.xml and report.html into ``report_dir`` (created if missing).

    Args:
        result: the run's result; its ``command`` is filled into every saga violation as the reproduce line.
        report_dir: the directory to write to.
        history: the recorded history (the records of ``events.jsonl``), for the timeline and the map.

    Returns:
        ``{"report.json": path, "junit.xml": path, "report.html": path}``.
    """
    from sagaproof.harness.report.html import render_html
    from sagaproof.harness.report.junit import write_junit

    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    if result.check_result is not None and result.command:
        result.check_result.with_repro(result.command)
    paths = {name: report_dir / name for name in ("report.json", "junit.xml", "report.html")}
    paths["report.json"].write_text(json.dumps(result.to_dict(), indent=2, default=str) + "\n", encoding="utf-8")
    write_junit(result, paths["junit.xml"])
    paths["report.html"].write_text(render_html(result, history), encoding="utf-8")
    return paths


def render_html(result: RunResult, history: list[dict[str, Any]]) -> str:
    """The HTML report as a string (see :mod:`harness.report.html`)."""
    from sagaproof.harness.report.html import render_html as _render

    return _render(result, history)
