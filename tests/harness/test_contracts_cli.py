"""`sagaproof contracts check | diff` through the CLI: exit codes, tables, JSON, and one-sentence errors."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import yaml

from tests.conftest import SAGAPROOF, SHOP


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SAGAPROOF, *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def _shop_copy(tmp_path: Path) -> Path:
    d = tmp_path / "shop"
    shutil.copytree(SHOP, d, ignore=shutil.ignore_patterns("__pycache__", ".shop-data"))
    return d


def _rename_required_field(doc_path: Path, old: str, new: str) -> None:
    text = doc_path.read_text()
    assert old in text
    doc_path.write_text(text.replace(old, new))


def test_check_passes_on_the_shop_with_a_channel_table():
    proc = _cli("contracts", "check", str(SHOP))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for subject in ("orders.created", "payments.completed", "shipping.failed"):
        assert subject in proc.stdout


def test_check_json_and_failure_exit_1(tmp_path: Path):
    shop = _shop_copy(tmp_path)
    # the producer of orders.created now calls the key orderId: payment's contract requires order_id
    _rename_required_field(shop / "contracts" / "order.yaml", "order_id", "orderId")
    proc = _cli("contracts", "check", str(shop), "--json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    bad = [r for r in report["channels"] if r["verdict"] not in ("ok", "no consumer")]
    assert any(r["subject"] == "orders.created" for r in bad), bad


def test_invalid_asyncapi_is_one_sentence_with_file_and_pointer(tmp_path: Path):
    shop = _shop_copy(tmp_path)
    doc = yaml.safe_load((shop / "contracts" / "payment.yaml").read_text())
    doc["asyncapi"] = "2.6.0"
    (shop / "contracts" / "payment.yaml").write_text(yaml.safe_dump(doc))
    proc = _cli("contracts", "check", str(shop))
    assert proc.returncode == 2
    assert "payment.yaml" in proc.stderr and "/asyncapi" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_diff_against_a_base_directory_flags_a_breaking_change(tmp_path: Path):
    base = _shop_copy(tmp_path / "base")
    head = _shop_copy(tmp_path / "head")
    _rename_required_field(head / "contracts" / "order.yaml", "order_id", "orderId")
    proc = _cli("contracts", "diff", str(head), "--base", str(base), "--json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = json.loads(proc.stdout)
    breaking = [c for c in out["changes"] if c["breaking_for"]]
    assert breaking and any(c["subject"] == "orders.created" for c in breaking)
    same = _cli("contracts", "diff", str(base), "--base", str(base))
    assert same.returncode == 0, same.stdout + same.stderr


def test_diff_against_a_git_ref(tmp_path: Path):
    repo = tmp_path / "repo"
    shop = _shop_copy(repo)
    git = ["git", "-c", "user.email=t@example.invalid", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "-C", str(repo), "add", "-A"], check=True)
    subprocess.run([*git, "-C", str(repo), "commit", "-qm", "base"], check=True)
    _rename_required_field(shop / "contracts" / "order.yaml", "order_id", "orderId")
    proc = _cli("contracts", "diff", str(shop), "--base", "HEAD")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    missing = _cli("contracts", "diff", str(shop), "--base", "no-such-ref")
    assert missing.returncode == 2 and "no-such-ref" in missing.stderr and "Traceback" not in missing.stderr


def test_check_http_fuzzes_the_order_services_openapi(tmp_path: Path):
    proc = _cli("contracts", "check", str(SHOP), "--http", "--json", "--report-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    (order,) = out["http"]
    assert order["service"] == "order" and order["ok"] is True
    assert (tmp_path / "logs" / "order.log").is_file()


def test_run_with_an_invalid_contract_is_exit_2_before_anything_starts(tmp_path: Path):
    shop = _shop_copy(tmp_path)
    doc = yaml.safe_load((shop / "contracts" / "payment.yaml").read_text())
    doc["asyncapi"] = "2.6.0"
    (shop / "contracts" / "payment.yaml").write_text(yaml.safe_dump(doc))
    proc = _cli("run", str(shop), "--report-dir", str(tmp_path / "r"))
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "payment.yaml" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "r" / "logs").exists()
