"""`sagaproof run` end to end with the broker checks: a consumer that reads a stored subject through a core
subscription is caught with no invariant configured, a contract's at-most-once intent silences it, and the
report carries the broker's view (real NATS, real services, real links)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from sagaproof.chaos.observe import wire_rows

from tests.conftest import MINI, SAGAPROOF, SHOP, copy_example


def shop_copy(tmp_path: Path, *, invariants: bool = True, at_most_once: bool = False) -> Path:
    d = tmp_path / "shop"
    copy_example(SHOP, d, "__pycache__", ".shop-data")
    toml = (d / "sagaproof.toml").read_text()
    if not invariants:
        toml = re.sub(r"\n\[invariants\]\n.*?(?=\n\[)", "\n", toml, flags=re.S)
        assert "[invariants]" not in toml and "money_conserved" not in toml
    (d / "sagaproof.toml").write_text(toml)
    if at_most_once:  # order states that it means to receive the outcomes at most once
        doc = d / "contracts" / "order.yaml"
        text = doc.read_text()
        text = re.sub(r"(\n  receive\w+:\n    action: receive\n)", r"\1    x-sagaproof-delivery: at-most-once\n", text)
        assert text.count("x-sagaproof-delivery") == 4
        doc.write_text(text)
    return d


def run(system: Path, report: Path, *extra: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    proc = subprocess.run([*SAGAPROOF, "run", str(system), "--seed", "1", "--report-dir", str(report), *extra],
                          capture_output=True, text=True, timeout=300)
    data = json.loads((report / "report.json").read_text()) if (report / "report.json").exists() else {}
    return proc, data


def test_core_subscription_on_a_stored_subject_is_caught_first_with_no_invariant(tmp_path: Path) -> None:
    system = shop_copy(tmp_path, invariants=False)
    proc, report = run(system, tmp_path / "r", "--env", "SHOP_BUG=lost_terminal")
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert report["invariants"] == []
    assert report["first_failure"] == "delivery guarantee", proc.stdout[-3000:]
    findings = report["broker"]["findings"]["delivery guarantee"]
    assert {(f["service"], f["subject"]) for f in findings} == {
        ("order", "payments.failed"), ("order", "inventory.failed"), ("order", "shipping.failed"),
        ("order", "shipping.scheduled")}
    assert "x-sagaproof-delivery: at-most-once" in findings[0]["fix"]
    assert findings[0]["repro"] == f"sagaproof replay {tmp_path / 'r'}"
    assert "--env SHOP_BUG=lost_terminal" in report["run_command"]
    assert "Delivery guarantee violated: service 'order'" in proc.stdout.replace("\n", " ")
    services = report["broker"]["services"]
    assert {s["kind"] for s in services["order"]["subscriptions"]} >= {"core"}
    assert services["payment"]["consumers"][0]["filter_subjects"] == ["inventory.failed", "orders.created",
                                                                       "shipping.failed"]


def test_stated_at_most_once_intent_silences_the_finding(tmp_path: Path) -> None:
    plain = shop_copy(tmp_path / "a", invariants=False)
    proc, report = run(plain, tmp_path / "ra", "--env", "SHOP_BUG=lost_terminal", "--no-chaos", "--sagas", "20")
    assert proc.returncode == 1 and report["first_failure"] == "delivery guarantee", proc.stdout[-3000:]
    intended = shop_copy(tmp_path / "b", invariants=False, at_most_once=True)
    proc, report = run(intended, tmp_path / "rb", "--env", "SHOP_BUG=lost_terminal", "--no-chaos", "--sagas", "20")
    assert proc.returncode == 0, proc.stdout[-3000:]
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["delivery guarantee"]["ok"] and checks["consumption"]["ok"]


def test_clean_run_without_chaos_still_observes_every_service(tmp_path: Path) -> None:
    proc, report = run(SHOP, tmp_path / "r", "--no-chaos", "--sagas", "20")
    assert proc.returncode == 0, proc.stdout[-3000:]
    broker = report["broker"]
    assert set(broker["services"]) == {"order", "payment", "inventory", "shipping"}
    assert all(s["connections"] >= 1 and s["consumers"] for s in broker["services"].values())
    rows = {(r["subject"], r["service"]): r for r in broker["matrix"]}
    assert rows[("orders.created", "payment")]["acked"] == rows[("orders.created", "payment")]["messages"] == 20
    assert broker["coverage"]["never_redelivered"] == ["SHOP"]  # no faults, no redelivery: the report says so
    assert report["convergence"]["how"] == "settled"
    history = [json.loads(line) for line in (tmp_path / "r" / "events.jsonl").read_text().splitlines()]
    kinds = {r["kind"] for r in history}
    assert {"nats_connect", "js_consumer", "wire", "advisory", "broker_snapshot"} <= kinds
    rows = [row for r in history if r["kind"] == "wire" for row in wire_rows(r["deliveries"], r["answers"])[0]]
    assert len({(row[4], row[7]) for row in rows if row[5] == "payment"}) >= 20  # payment's deliveries, by sequence


def test_a_run_with_a_stuck_saga_ends_at_quiescence_not_at_the_limit(tmp_path: Path) -> None:
    """No terminal event ever comes (alpha is told not to say work is done), the system is quiescent, so the
    run ends after the hold with the saga judged stuck instead of waiting for its limit."""
    d = tmp_path / "sys"
    shutil.copytree(MINI, d)
    text = (d / "sagaproof.toml").read_text()
    head, rest = text.split("[sagas.work]", 1)
    text = (head + rest[rest.index("[workload]"):]).replace(', DONE = "work.done"', "")
    assert "DONE" not in text and "[sagas" not in text
    text += ('\n[sagas.s]\nkey = "index"\nstart = "work.alpha"\nsuccess = ["work.done"]\ndeadline = "5s"\n'
             '\n[quiescence]\nhold = "0.5s"\ntimeout = "120s"\n')
    (d / "sagaproof.toml").write_text(text.replace("sagas = 20", "sagas = 3"))
    proc = subprocess.run([*SAGAPROOF, "run", str(d), "--no-chaos", "--seed", "1", "--report-dir",
                           str(tmp_path / "r")], capture_output=True, text=True, timeout=300)
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert proc.returncode == 1, proc.stdout[-2000:]
    assert report["convergence"]["how"] == "quiescent" and report["convergence"]["owed"] == 3
    assert report["convergence"]["waited"] < 60  # far below the 120 s limit: it did not wait for it
    assert report["first_failure"] == "termination"
    assert "stuck: no terminal event" in report["check_result"]["violations"][0]["detail"]
