"""Tests of the reports: report.json content, junit.xml structure, and report.html as rendered by headless
Chromium (what a person would see: the verdict first, the failing saga keys, the fault names)."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path
from typing import Any

import pytest
from sagaproof.harness.checks.checker import CHECKS, check_history
from sagaproof.harness.checks.results import CheckOutcome, RunResult
from sagaproof.harness.config import SagaSpec, StepSpec
from sagaproof.harness.report import render_html, write_reports

CHECKOUT = SagaSpec(
    name="checkout", key="order_id", start="orders.created", success=("orders.completed",),
    abort=("orders.cancelled",), deadline=5.0,
    steps=(StepSpec("charge", "payment", "payments.completed", "payments.failed", "payments.refunded"),
           StepSpec("reserve", "inventory", "inventory.reserved", "inventory.failed", "inventory.released"),
           StepSpec("ship", "shipping", "shipping.scheduled", "shipping.failed")),
)
PRODUCER = {"orders": "order", "payments": "payment", "inventory": "inventory", "shipping": "shipping"}
COMMAND = "sagaproof run examples/shop --seed 42 --duration 20s"
FLOWS = [
    *({"service": "order", "action": "send", "subject": s} for s in ("orders.created", "orders.completed",
                                                                   "orders.cancelled")),
    *({"service": "payment", "action": "send", "subject": s} for s in ("payments.completed", "payments.failed",
                                                                     "payments.refunded")),
    *({"service": "inventory", "action": "send", "subject": s} for s in ("inventory.reserved", "inventory.failed",
                                                                       "inventory.released")),
    {"service": "shipping", "action": "send", "subject": "shipping.scheduled"},
    {"service": "shipping", "action": "send", "subject": "shipping.delayed"},
    {"service": "payment", "action": "receive", "subject": "orders.created"},
    {"service": "payment", "action": "receive", "subject": "inventory.failed"},
    {"service": "inventory", "action": "receive", "subject": "payments.completed"},
    {"service": "shipping", "action": "receive", "subject": "inventory.reserved"},
    {"service": "order", "action": "receive", "subject": "shipping.*"},
    {"service": "order", "action": "receive", "subject": "payments.failed"},
    {"service": "order", "action": "receive", "subject": "payments.refunded"},
]


def build_run(tmp_path: Path) -> tuple[RunResult, list[dict[str, Any]]]:
    """A 40-saga run with three faults, a double charge, a missing refund, a stuck saga and undeclared traffic."""
    h: list[dict[str, Any]] = []
    seq = 0

    def msg(t: float, subject: str, key: str, **data: Any) -> None:
        nonlocal seq
        seq += 1
        h.append({"kind": "message", "seq": seq, "t": t, "subject": subject, "stream": "SHOP", "stream_seq": seq,
                  "producer": PRODUCER[subject.split(".")[0]], "headers": {},
                  "data": {"order_id": key, "event_id": f"e{seq}", **data}, "size": 80})

    h.append({"kind": "phase", "t": 0.0, "phase": "workload_start"})
    faults = [{"id": "f1", "kind": "latency", "target": "payment", "start": 1.0, "duration": 3.0,
               "params": {"latency_ms": 300}, "ended_at": 4.0},
              {"id": "f2", "kind": "partition", "target": "inventory", "start": 5.0, "duration": 2.0,
               "params": {}, "ended_at": 7.0},
              {"id": "f3", "kind": "duplicate", "target": "payment", "start": 8.0, "duration": 2.0,
               "params": {"probability": 0.5}, "ended_at": 10.0}]
    timeline: list[tuple[float, dict[str, Any]]] = []
    for f in faults:
        timeline.append((f["start"], {"kind": "fault_start", "t": f["start"],
                                      "fault": {k: v for k, v in f.items() if k != "ended_at"}}))
        timeline.append((f["ended_at"], {"kind": "fault_end", "t": f["ended_at"], "fault_id": f["id"]}))
    events: list[tuple[float, str, str]] = []
    for i in range(40):
        key = f"ord-{i:03d}"
        t0 = i * 0.3
        lat = 0.35 if 1.0 <= t0 < 4.0 else 0.05
        if key == "ord-017":  # partition: inventory fails, refund never sent
            seq_subjects = ["orders.created", "payments.completed", "inventory.failed", "orders.cancelled"]
        elif key == "ord-027":  # duplicate delivery to a non-idempotent payment: charged twice
            seq_subjects = ["orders.created", "payments.completed", "payments.completed", "inventory.reserved",
                            "shipping.scheduled", "orders.completed"]
        elif key == "ord-033":  # stuck
            seq_subjects = ["orders.created", "payments.completed"]
        elif i % 9 == 4:
            seq_subjects = ["orders.created", "payments.completed", "inventory.failed", "payments.refunded",
                            "orders.cancelled"]
        else:
            seq_subjects = ["orders.created", "payments.completed", "inventory.reserved", "shipping.scheduled",
                            "orders.completed"]
        for j, s in enumerate(seq_subjects):
            events.append((t0 + j * lat, s, key))
    for k in range(5):
        events.append((2.0 + k, "inventory.audit", f"ord-00{k}"))
    for t, s, key in events:
        timeline.append((t, {"subject": s, "key": key}))
    timeline.sort(key=lambda x: x[0])
    for t, rec in timeline:
        if "subject" in rec:
            msg(t, rec["subject"], rec["key"])
        else:
            h.append(rec)
    h.append({"kind": "phase", "t": 10.0, "phase": "healed"})
    h.append({"kind": "phase", "t": 12.5, "phase": "workload_end"})
    h.append({"kind": "phase", "t": 20.0, "phase": "converged"})
    cr = check_history(h, {"checkout": CHECKOUT}, healed_at=10.0, end_at=20.0)
    result = RunResult(
        seed=42, system_path="examples/shop", command=COMMAND, started_at="2025-01-01T00:00:00Z", duration_s=21.5,
        verdict="fail", exit_code=1, check_result=cr,
        checks=[CheckOutcome("contracts", False, "1 recorded message broke its contract",
                             ["payments.completed from payment: /amount must be >= 0"])],
        contract_violations=[{"subject": "payments.completed", "producer": "payment", "pointer": "/amount",
                              "message": "-5 is less than the minimum of 0", "payload": {"order_id": "ord-005",
                                                                                        "amount": -5}}],
        faults=faults, services=[{"name": "payment", "port": 40001, "log": str(tmp_path / "payment.log")}],
        history_path=str(tmp_path / "events.jsonl"), messages_recorded=sum(1 for r in h if r["kind"] == "message"),
        invariants=[CheckOutcome("money_conserved", False, "charged 4200 but ledger holds 4300",
                                 ["money_conserved: AssertionError: charged 4200 but ledger holds 4300"]),
                    CheckOutcome("stock_conserved", True, "held")],
        shrink={"schedule": [faults[2]], "command": COMMAND + " --faults f3"},
        declared_flows=FLOWS, notes=["shrunk from 3 faults to 1 in 4 runs"])
    return result, h


def test_the_built_run_has_the_intended_violations(tmp_path: Path) -> None:
    result, _ = build_run(tmp_path)
    cr = result.check_result
    assert cr is not None
    assert [(v.check, v.key) for v in cr.violations] == [
        ("no_double_effect", "ord-027"), ("compensation_completeness", "ord-017"), ("termination", "ord-033")]
    v = cr.by_check("no_double_effect")[0]
    assert ["f3"] in v.faults_active


def test_report_json(tmp_path: Path) -> None:
    result, history = build_run(tmp_path)
    paths = write_reports(result, tmp_path / "report", history)
    assert set(paths) == {"report.json", "junit.xml", "report.html"} and all(p.is_file() for p in paths.values())
    data = json.loads(paths["report.json"].read_text())
    assert data["verdict"] == "fail" and data["seed"] == 42 and data["command"] == COMMAND
    assert [c["name"] for c in data["checks"]] == ["contracts", *CHECKS]
    viols = data["check_result"]["violations"]
    assert viols[0]["key"] == "ord-027" and viols[0]["repro"] == COMMAND
    assert f"reproduce: {COMMAND}" in viols[0]["message"]


def test_junit_has_one_testcase_per_check_and_per_violated_saga(tmp_path: Path) -> None:
    result, history = build_run(tmp_path)
    paths = write_reports(result, tmp_path, history)
    root = ET.parse(paths["junit.xml"]).getroot()
    assert root.tag == "testsuites"
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert set(suites) == {"sagaproof.checks", "sagaproof.invariants", "sagaproof.sagas"}
    checks = {c.get("name"): c for c in suites["sagaproof.checks"].findall("testcase")}
    assert list(checks) == ["contracts", *CHECKS]
    failed = {n for n, c in checks.items() if c.find("failure") is not None}
    assert failed == {"contracts", "no_double_effect", "compensation_completeness", "termination"}
    sagas = suites["sagaproof.sagas"].findall("testcase")
    assert [c.get("name") for c in sagas] == ["checkout ord-027", "checkout ord-017", "checkout ord-033"]
    assert all(c.get("classname") == "sagaproof.sagas.checkout" for c in sagas)
    text = sagas[0].find("failure").text
    assert "saga 'checkout' key ord-027" in text and "faults: f3 duplicate payment" in text
    assert text.rstrip().endswith(f"reproduce: {COMMAND}")
    inv = {c.get("name"): c.find("failure") is not None for c in suites["sagaproof.invariants"].findall("testcase")}
    assert inv == {"money_conserved": True, "stock_conserved": False}
    assert root.get("tests") == str(len(checks) + 2 + 3)
    assert root.get("failures") == str(len(failed) + 1 + 3)
    props = {p.get("name"): p.get("value") for p in suites["sagaproof.checks"].iter("property")}
    assert props["seed"] == "42" and props["command"] == COMMAND


def test_junit_passing_and_error_runs(tmp_path: Path) -> None:
    cr = check_history([], {"checkout": CHECKOUT}, healed_at=0.0, end_at=10.0)
    ok = RunResult(seed=1, system_path="x", command="sagaproof run x --seed 1", check_result=cr)
    root = ET.parse(write_reports(ok, tmp_path / "ok", [])["junit.xml"]).getroot()
    assert root.get("failures") == "0" and root.get("errors") == "0" and root.get("tests") == str(len(CHECKS))
    err = RunResult(seed=1, system_path="x", command="sagaproof run x --seed 1", verdict="error", exit_code=3,
                    notes=["service 'payment' exited with code 1 during start-up"])
    root = ET.parse(write_reports(err, tmp_path / "err", [])["junit.xml"]).getroot()
    assert root.get("errors") == "1"
    assert "payment" in root.find(".//error").get("message")


def test_html_is_self_contained(tmp_path: Path) -> None:
    result, history = build_run(tmp_path)
    page = render_html(result, history)
    assert not re.search(r"""(?:src|href)\s*=\s*['"]?(?:https?:)?//""", page, re.I)
    assert "@import" not in page and "url(http" not in page and "<script" not in page.lower()
    assert page.count("<svg") >= 3 + 3  # timeline, histogram, map, one sequence diagram per failing saga
    # history text is escaped, never injected
    result.notes.append("<img src=x onerror=alert(1)>")
    assert "<img src=x" not in render_html(result, history)


# --------------------------------------------------------------------------- headless Chromium

CHROMIUM = next((p for p in (os.environ.get("SAGAPROOF_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                             shutil.which("chromium-browser"), shutil.which("google-chrome")) if p and
                 Path(p).is_file()), None)
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed "
                                                             "(apt-get install chromium) so the rendered report "
                                                             "cannot be checked")

# Appended to a copy of the report: innerText is the text as rendered (it leaves out what CSS hides).
PROBE = """<script>addEventListener('load', () => {
  const pre = document.createElement('pre'); pre.id = 'probe'; pre.style.display = 'none';
  const v = document.getElementById('verdict').getBoundingClientRect();
  pre.textContent = JSON.stringify({text: document.body.innerText, verdictTop: v.top, verdictHeight: v.height,
    svgs: [...document.querySelectorAll('svg')].map(s => s.getBoundingClientRect().width)});
  document.body.appendChild(pre);
});</script>"""


def _chromium(tmp_path: Path, *args: str) -> str:
    profile = tmp_path / "chromium-profile"
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage", f"--user-data-dir={profile}", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, start_new_session=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def _png_pixel(path: Path, x: int, y: int) -> tuple[int, int, int]:
    """The RGB of one pixel of a PNG (8-bit RGB or RGBA, as Chromium writes them), with the stdlib only."""
    raw = path.read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height, ctype = 8, b"", 0, 0, 0
    while pos < len(raw):
        (length,) = struct.unpack(">I", raw[pos:pos + 4])
        kind, body = raw[pos + 4:pos + 8], raw[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, ctype = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and ctype in (2, 6)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    bpp = 4 if ctype == 6 else 3
    stride = width * bpp
    data = zlib.decompress(idat)
    prev = bytearray(stride)
    for row in range(y + 1):
        f, line = data[row * (stride + 1)], bytearray(data[row * (stride + 1) + 1:(row + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        prev = line
    return tuple(prev[x * bpp:x * bpp + 3])  # type: ignore[return-value]


@needs_chromium
def test_html_renders_in_chromium_with_verdict_saga_keys_and_faults(tmp_path: Path) -> None:
    result, history = build_run(tmp_path)
    paths = write_reports(result, tmp_path / "report", history)
    probe = tmp_path / "probe.html"
    probe.write_text(paths["report.html"].read_text().replace("</body>", PROBE + "</body>"))
    dom = _chromium(tmp_path, "--virtual-time-budget=5000", "--dump-dom", probe.as_uri())
    m = re.search(r"<pre id=\"probe\"[^>]*>(.*?)</pre>", dom, re.S)
    assert m, "the report did not finish loading in Chromium"
    seen = json.loads(m.group(1).replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
                      .replace("&quot;", '"'))
    text: str = seen["text"]
    # The verdict is the first thing on the page, at the top.
    assert text.lstrip().startswith("FAIL")
    assert seen["verdictTop"] == 0 and seen["verdictHeight"] > 50
    assert "3 of 40 sagas violated a check" in text
    assert COMMAND in text
    for key in ("ord-027", "ord-017", "ord-033"):
        assert key in text
    for label in ("f1 latency payment", "f2 partition inventory", "f3 duplicate payment"):
        assert label in text
    assert text.index("ord-027") < text.index("ord-017") < text.index("ord-033")  # most important first
    assert "No double effect" in text and "Compensation completeness" in text and "Termination" in text
    assert "money_conserved" in text and "-5 is less than the minimum of 0" in text
    assert "undeclared traffic: inventory published inventory.audit (5 messages)" in text
    assert "declared but never seen: shipping sends shipping.delayed" in text
    assert all(w > 100 for w in seen["svgs"]), seen["svgs"]  # every drawing has a real size on screen

    shot = tmp_path / "shot.png"
    _chromium(tmp_path, "--window-size=1280,900", "--hide-scrollbars", f"--screenshot={shot}", paths["report.html"].as_uri())
    r, g, b = _png_pixel(shot, 5, 5)
    assert r > 150 and g < 90 and b < 90, f"the top of the page should be the red FAIL banner, got {(r, g, b)}"


@needs_chromium
def test_passing_report_shows_pass_in_green(tmp_path: Path) -> None:
    h = [{"kind": "message", "t": 0.1 * i, "subject": s, "producer": PRODUCER[s.split(".")[0]],
          "data": {"order_id": "o1", "event_id": str(i)}}
         for i, s in enumerate(["orders.created", "payments.completed", "inventory.reserved", "shipping.scheduled",
                                "orders.completed"])]
    cr = check_history(h, {"checkout": CHECKOUT}, healed_at=0.0, end_at=10.0)
    result = RunResult(seed=3, system_path="examples/shop", command="sagaproof run examples/shop --seed 3",
                       check_result=cr, declared_flows=FLOWS, messages_recorded=5)
    paths = write_reports(result, tmp_path / "report", h)
    shot = tmp_path / "pass.png"
    _chromium(tmp_path, "--window-size=1280,900", "--hide-scrollbars", f"--screenshot={shot}", paths["report.html"].as_uri())
    r, g, b = _png_pixel(shot, 5, 5)
    assert g > 100 and r < 80, f"the top of the page should be the green PASS banner, got {(r, g, b)}"
    dom = _chromium(tmp_path, "--dump-dom", paths["report.html"].as_uri())
    assert "<h1>PASS</h1>" in dom and "all 1 sagas passed every saga check" in dom


def test_all_checks_keeps_invariants_apart_and_respects_run_loop_saga_outcomes(tmp_path: Path) -> None:
    result, history = build_run(tmp_path)
    inv = result.invariants[0]
    result.checks.append(inv)  # a run loop may list invariants among its checks too
    names = [c.name for c in result.all_checks()]
    assert "money_conserved" not in names and names == ["contracts", *CHECKS]
    result.checks.append(CheckOutcome("saga termination", False, "1 saga stuck"))
    assert [c.name for c in result.all_checks()] == ["contracts", "saga termination"]
    root = ET.parse(write_reports(result, tmp_path, history)["junit.xml"]).getroot()
    assert [c.get("name") for c in root.iter("testcase")].count("money_conserved") == 1


def test_consumers_section_matrix_coverage_and_not_taken_receivers_on_the_map(tmp_path: Path) -> None:
    from sagaproof.harness.checks.consumption import Receive, check_broker

    history = [
        {"kind": "nats_connect", "t": 0.0, "seq": 1, "service": "order", "conn": 1},
        {"kind": "nats_sub", "t": 0.1, "seq": 2, "service": "order", "conn": 1, "subject": "payments.failed",
         "queue": None, "sid": "3"},
        {"kind": "message", "t": 1.0, "seq": 3, "subject": "payments.failed", "stream": "SHOP", "stream_seq": 1,
         "producer": "payment", "data": {"order_id": "o1"}},
        {"kind": "broker_snapshot", "t": 9.0, "seq": 4, "consumers": [], "connections": [],
         "links": {"order": {"connections": 1, "core": {"payments.failed": 1}}}},
    ]
    broker = check_broker(history, receives=[Receive("order", "payments.failed")], streams={"SHOP": ["payments.>"]},
                          services=["order"])
    result = RunResult(seed=1, system_path="x", command="sagaproof run x --seed 1", verdict="fail", exit_code=1,
                       checks=broker.outcomes(), broker=broker.to_dict(),
                       convergence={"how": "quiescent", "waited": 2.0, "quiescent_at": 5.5, "owed": 1},
                       declared_flows=[{"service": "payment", "action": "send", "subject": "payments.failed"},
                                       {"service": "order", "action": "receive", "subject": "payments.failed"}])
    html = render_html(result, history)
    assert "<section id='consumers'>" in html and "quiescent from t=5.500s" in html
    assert "<td><code>payments.failed</code></td><td>order</td><td>1</td><td>0</td><td>0</td>" in html
    assert "no consumer of stream SHOP ever saw a redelivery" in html
    assert "order receives payments.failed: never took (acknowledged) any of it" in html
    assert "declared receiver never took any of it" in html
    data = json.loads(json.dumps(result.to_dict(), default=str))
    assert data["first_failure"] == "delivery guarantee" and data["broker"]["counts"]["consumption"] == 1


def test_html_shows_each_invariants_details_once(tmp_path: Path) -> None:
    result, history = build_run(tmp_path)
    result.checks = result.checks + result.invariants  # the engine lists every outcome in checks, invariants too
    html = render_html(result, history)
    assert html.count("money_conserved: AssertionError: charged 4200 but ledger holds 4300") == 1


def test_shrinking_that_ran_out_of_reruns_does_not_claim_a_minimum(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from sagaproof.harness.front.cli import print_result

    result, history = build_run(tmp_path)
    result.shrink = {"check": "no_double_effect", "original": 3, "minimal": [result.faults[2]],
                     "runs": [{"faults": [], "failed": False}] * 4, "command": COMMAND + " --schedule m.json",
                     "complete": False, "reruns": 4}
    assert "Smallest found in 4 re-runs, not proven minimal" in render_html(result, history)
    print_result(result)
    out = capsys.readouterr().out
    assert "Smallest failing schedule found in 4 re-runs, not proven minimal: 1 of 3 faults" in out
    result.shrink["complete"] = True
    html = render_html(result, history)
    assert "Minimal failing schedule" in html and "not proven minimal" not in html


def test_report_json_follows_its_json_schema(tmp_path: Path) -> None:
    import jsonschema_rs

    schema = json.loads((Path(__file__).resolve().parents[2] / "docs" / "report.schema.json").read_text())
    result, history = build_run(tmp_path)
    paths = write_reports(result, tmp_path, history)
    data = json.loads(paths["report.json"].read_text())
    assert data["schema_version"] == 2
    errors = [e.message for e in jsonschema_rs.validator_for(schema).iter_errors(data)]
    assert errors == []


# The targeted phase's plan for the shop's payment, and what a run made of it (harness.session.targeted).
TARGETED_CONSUMERS = {"payment": [{"stream": "SHOP", "consumer": "payment", "ack_policy": "explicit",
                                   "filter_subjects": ["orders.created", "inventory.failed"]}]}


def _with_coverage(result: RunResult) -> RunResult:
    from sagaproof.harness.session.targeted import coverage, plan_windows

    records = [dict(w) for w in plan_windows(3, TARGETED_CONSUMERS)]
    crash = next(r for r in records if r["window"] == "crash_after_ack")
    crash.update(exercised=True, fault_id=crash["id"], key="ord-017", landed_on="orders.created", stream_seq="41")
    dup = next(r for r in records if r["window"] == "duplicate" and r["subject"] == "orders.created")
    dup.update(exercised=True, fault_id=dup["id"], key="ord-003")
    result.coverage = coverage(records, TARGETED_CONSUMERS, ["payment"], {"ord-017": ["termination"]})
    result.coverage["plan"] = [{k: w[k] for k in ("id", "window", "service", "consumer", "stream", "subject", "nth")}
                               for w in records]
    return result


def test_coverage_matrix_is_in_report_json_under_its_schema(tmp_path: Path) -> None:
    import jsonschema_rs

    schema = json.loads((Path(__file__).resolve().parents[2] / "docs" / "report.schema.json").read_text())
    result, history = build_run(tmp_path)
    data = json.loads(write_reports(_with_coverage(result), tmp_path, history)["report.json"].read_text())
    assert data["coverage"]["summary"] == "fault coverage: 2 of 12"
    assert [e.message for e in jsonschema_rs.validator_for(schema).iter_errors(data)] == []
    data["coverage"]["cells"][0].pop("reason", None)  # a cell not exercised must say why
    data["coverage"]["cells"][0]["exercised"] = False
    assert not jsonschema_rs.validator_for(schema).is_valid(data)


@needs_chromium
def test_coverage_matrix_renders_in_chromium(tmp_path: Path) -> None:
    result, history = build_run(tmp_path)
    paths = write_reports(_with_coverage(result), tmp_path / "report", history)
    probe = tmp_path / "probe.html"
    probe.write_text(paths["report.html"].read_text().replace("</body>", PROBE + "</body>"))
    dom = _chromium(tmp_path, "--virtual-time-budget=5000", "--dump-dom", probe.as_uri())
    m = re.search(r"<pre id=\"probe\"[^>]*>(.*?)</pre>", dom, re.S)
    assert m, "the report did not finish loading in Chromium"
    text: str = json.loads(m.group(1).replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
                           .replace("&quot;", '"'))["text"]
    section = text[text.index("Fault coverage"):]
    assert "fault coverage: 2 of 12" in section
    for title in ("redelivery after the effect", "crash after the ack, before the effect",
                  "crash after the effect, before the ack", "duplicate delivery", "connection loss and reconnect",
                  "broker restart and reconnect"):
        assert title in section
    assert "ord-017" in section and "failed termination" in section and "acknowledged before the kill" in section
    assert "not exercised: budget" in section and "not exercised: no message of that subject arrived" in section
    assert text.index("Fault coverage") < text.index("Failing sagas")
