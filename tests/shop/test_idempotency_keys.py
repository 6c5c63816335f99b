"""The shop with idempotency keys sent by the workload: under duplicate-request faults (the workload sends a
share of its requests twice, as a client or a proxy that retries a request it thinks lost), the order service,
which dedupes by the key, starts one order per request, and the run passes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import SAGAPROOF, SHOP, copy_example

pytestmark = pytest.mark.slow


def _shop(tmp_path: Path, *, keys: bool) -> Path:
    system = tmp_path / ("shop-keys" if keys else "shop-no-keys")
    copy_example(SHOP, system, ".sagaproof", "__pycache__", "tests_pacts")
    toml = (system / "sagaproof.toml").read_text()
    assert 'idempotency_key = "Idempotency-Key"' in toml
    toml = toml.replace('idempotency_key = "Idempotency-Key"', 'duplicate = 0.3' + (
        '\nidempotency_key = "Idempotency-Key"' if keys else ""))
    (system / "sagaproof.toml").write_text(toml)
    return system


def _run(system: Path, report: Path, *extra: str) -> tuple[subprocess.CompletedProcess[str], dict, list[dict]]:
    proc = subprocess.run([*SAGAPROOF, "run", str(system), "--seed", "2", "--sagas", "60", "--report-dir",
                           str(report), *extra], capture_output=True, text=True, timeout=300)
    data = json.loads((report / "report.json").read_text()) if (report / "report.json").exists() else {}
    history = [json.loads(line) for line in (report / "events.jsonl").read_text().splitlines()] \
        if (report / "events.jsonl").exists() else []
    return proc, data, history


def _orders(history: list[dict]) -> set[str]:
    return {r["data"]["order_id"] for r in history if r.get("kind") == "message" and r["subject"] == "orders.created"}


def test_duplicate_requests_with_idempotency_keys_start_one_order_each_and_pass(tmp_path: Path):
    proc, report, history = _run(_shop(tmp_path, keys=True), tmp_path / "keys")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert report["faults"] and report["workload"]["duplicated"] >= 10
    assert len(_orders(history)) == report["workload"]["started"] == 60


def test_without_keys_the_same_duplicates_are_new_orders(tmp_path: Path):
    # the control: the duplicates reach the service, and without a key each is a new order
    proc, report, history = _run(_shop(tmp_path, keys=False), tmp_path / "no-keys", "--no-chaos")
    assert proc.returncode in (0, 1), proc.stdout[-3000:] + proc.stderr[-2000:]
    assert len(_orders(history)) == 60 + report["workload"]["duplicated"] > 60
