"""The HTML report draws each saga's status reads on its sequence diagram (issue 23): the sagas a read check
failed get a diagram of their events and reads, and a saga-check failure's diagram carries its saga's reads."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from sagaproof.harness.checks import CheckContext, Window
from sagaproof.harness.checks.reads import STABLE, read_checks
from sagaproof.harness.checks.results import RunResult
from sagaproof.harness.history import HistoryReader
from sagaproof.harness.report import render_html, write_reports

from tests.harness.test_report import PROBE, _chromium, build_run, needs_chromium
from tests.harness.test_status_reads import msg, read, spec


def flipped_run(tmp_path: Path) -> tuple[RunResult, list[dict[str, Any]]]:
    """o1 read COMPLETED, then CANCELLED once its abort was on the wire; o2 clean."""
    records = [msg(1.0, "orders.created", "o1"), read(1.1, "o1", "PENDING"), read(1.4, "o1", "COMPLETED"),
               msg(2.0, "orders.cancelled", "o1"), read(2.5, "o1", "CANCELLED"),
               read(9.0, "o1", "CANCELLED", "final"),
               msg(1.0, "orders.created", "o2"), msg(2.0, "orders.completed", "o2"),
               read(3.0, "o2", None, "during", outcome="unknown"), read(9.1, "o2", "COMPLETED", "final")]
    records = [{**r, "seq": i + 1} for i, r in enumerate(sorted(records, key=lambda r: r["t"]))]
    for r in records:
        if r["kind"] == "message":
            r["producer"] = "order"
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    checks = list(read_checks(CheckContext(spec(), HistoryReader(path), Window(), 0.0, 100.0, {})))
    result = RunResult(seed=3, system_path="x", command="sagaproof run x --seed 3", started_at="2025-01-01T00:00:00Z",
                       duration_s=10.0, verdict="fail", exit_code=1, checks=checks, history_path=str(path))
    return result, records


def test_a_read_check_failure_draws_the_sagas_events_and_reads(tmp_path: Path) -> None:
    result, history = flipped_run(tmp_path)
    assert next(c for c in result.checks if c.name == STABLE).status == "failed"
    html = render_html(result, history)
    section = html[html.index("id='read-sagas'"):]
    assert "Sagas whose status reads disagree with the wire (1)" in section
    drawing = section[section.index("<svg"):section.index("</svg>")]
    # every read of o1 is a row, in time order, between its events; o2's reads are not on o1's diagram
    labels = re.findall(r"<text class='read'[^>]*>([^<]*)<title>", drawing)
    assert [label.replace("&#x27;", "'") for label in labels] == [
        "read 'PENDING' (pending)", "read 'COMPLETED' (success)", "read 'CANCELLED' (abort)",
        "read 'CANCELLED' (abort)"]
    assert drawing.index("orders.created") < drawing.index("COMPLETED") < drawing.index("orders.cancelled")
    assert ">client<" in drawing and ">order<" in drawing  # the reads go from the client to the order service
    # the read the check is about (the later one that changed the terminal status) is the red row
    rows = re.findall(r"<line class='read'[^>]*>", drawing)
    assert ["url(#ahr)" in row for row in rows] == [False, False, True, False]


def test_a_saga_check_failures_diagram_carries_its_reads(tmp_path: Path) -> None:
    result, history = build_run(tmp_path)
    history = history + [{"kind": "read", "t": 15.0, "saga": "checkout", "key": "ord-033", "invoked": 15.0,
                          "completed": 15.01, "outcome": "ok", "value": "PENDING", "found": True, "phase": "final",
                          "status": "pending", "request": "GET order /orders/ord-033", "detail": ""},
                         {"kind": "read", "t": 15.1, "saga": "checkout", "key": "ord-017", "invoked": 15.1,
                          "completed": 17.1, "outcome": "unknown", "value": None, "found": False, "phase": "final",
                          "status": None, "request": "GET order /orders/ord-017", "detail": "timed out"}]
    html = render_html(result, history)
    stuck = html[html.index("key <code>ord-033</code>"):]
    stuck = stuck[:stuck.index("</svg>")]
    assert "read &#x27;PENDING&#x27; (pending)" in stuck
    refund = html[html.index("key <code>ord-017</code>"):]
    refund = refund[:refund.index("</svg>")]
    assert "read unknown: timed out" in refund and "PENDING" not in refund
    double = html[html.index("key <code>ord-027</code>"):]
    assert "<line class='read'" not in double[:double.index("</svg>")]  # read nowhere: no read rows


@needs_chromium
def test_reads_render_on_the_diagram_in_chromium(tmp_path: Path) -> None:
    result, history = flipped_run(tmp_path)
    paths = write_reports(result, tmp_path / "report", history)
    probe = tmp_path / "probe.html"
    probe.write_text(paths["report.html"].read_text().replace("</body>", PROBE + "</body>"))
    dom = _chromium(tmp_path, "--virtual-time-budget=5000", "--dump-dom", probe.as_uri())
    m = re.search(r"<pre id=\"probe\"[^>]*>(.*?)</pre>", dom, re.S)
    assert m, "the report did not finish loading in Chromium"
    seen = json.loads(m.group(1).replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
                      .replace("&quot;", '"'))
    text: str = seen["text"]
    assert "Sagas whose status reads disagree with the wire" in text
    assert "read 'COMPLETED' (success)" in text and "read 'CANCELLED' (abort)" in text
    assert all(w > 100 for w in seen["svgs"]), seen["svgs"]
