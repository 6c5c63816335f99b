"""Reports of a run, written to the report directory: ``report.json``, ``junit.xml`` and ``report.html``.

``write_reports(result, report_dir, history)`` writes them; :class:`ReportWriter` is the engine-event
consumer that calls it when a run finishes (the session's :class:`~harness.events.RunFinished` carries the
result, and the history is read back from ``events.jsonl`` as a stream). The HTML report is a single
self-contained file (inline CSS and SVG, no scripts or network).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sagaproof.harness.checks.results import RunResult
from sagaproof.harness.events import Event, RunFinished

__all__ = ["ReportWriter", "render_html", "write_reports"]


class ReportWriter:
    """Bus listener: on :class:`RunFinished` write the reports of that run into its report directory."""

    def __init__(self) -> None:
        self.paths: dict[str, Path] = {}

    def __call__(self, event: Event) -> None:
        if isinstance(event, RunFinished) and event.result is not None:
            from sagaproof.harness.history import HistoryReader

            result = event.result
            history: Iterable[dict[str, Any]] = HistoryReader(result.history_path) if result.history_path else []
            self.paths = write_reports(result, Path(event.report_dir), history)


def write_reports(result: RunResult, report_dir: Path, history: Iterable[dict[str, Any]]) -> dict[str, Path]:
    """Write report.json, junit.xml and report.html into ``report_dir`` (created if missing).

    Args:
        result: the run's result; its ``command`` is filled into every saga violation as the reproduce line.
        report_dir: the directory to write to.
        history: the recorded history (the records of ``events.jsonl``, a re-iterable such as a
            :class:`~harness.history.HistoryReader`), for the timeline and the map; read twice, never stored.

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


def render_html(result: RunResult, history: Iterable[dict[str, Any]]) -> str:
    """The HTML report as a string (see :mod:`harness.report.html`)."""
    from sagaproof.harness.report.html import render_html as _render

    return _render(result, history)
