"""`sagaproof contracts check | diff` through the CLI: exit codes, tables, JSON, and one-sentence errors."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import SAGAPROOF, SHOP, copy_example


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SAGAPROOF, *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def _shop_copy(tmp_path: Path) -> Path:
    d = tmp_path / "shop"
    copy_example(SHOP, d, "__pycache__", ".shop-data")
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


# ---------------------------------------------------------------------------- diff fails closed


def _git(repo: Path, *args: str) -> str:
    git = ["git", "-c", "user.email=t@example.invalid", "-c", "user.name=t", "-C", str(repo)]
    return subprocess.run([*git, *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def shop_repo(tmp_path: Path) -> Path:
    """A repository made by the test: c0 has no contracts yet, c1 adds the shop under examples/shop."""
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "README.md").write_text("x\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "c0")
    _git(repo, "tag", "c0")
    copy_example(SHOP, repo / "examples" / "shop", "__pycache__", ".shop-data")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "c1")
    _git(repo, "tag", "c1")
    return repo


def _one_sentence_exit_2(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "no breaking change" not in proc.stdout
    for n in needles:
        assert n in proc.stderr, proc.stderr


def test_diff_base_directory_may_be_the_systems_directory_or_the_repository_root(shop_repo: Path, tmp_path: Path):
    old_root = tmp_path / "old"
    shutil.copytree(shop_repo, old_root, ignore=shutil.ignore_patterns(".git"))
    shop = shop_repo / "examples" / "shop"
    for base in (old_root, old_root / "examples" / "shop"):
        same = _cli("contracts", "diff", str(shop), "--base", str(base))
        assert same.returncode == 0 and "no contract changes" in same.stdout, same.stdout + same.stderr
    _rename_required_field(shop / "contracts" / "order.yaml", "order_id", "orderId")
    for base in (old_root, old_root / "examples" / "shop"):
        proc = _cli("contracts", "diff", str(shop), "--base", str(base), "--json")
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert any(c["breaking_for"] == "consumers" for c in json.loads(proc.stdout)["changes"])


def test_diff_fails_closed_when_the_base_has_no_contracts(shop_repo: Path, tmp_path: Path):
    shop = shop_repo / "examples" / "shop"
    _rename_required_field(shop / "contracts" / "order.yaml", "order_id", "orderId")  # a breaking change
    old = tmp_path / "old"
    shutil.copytree(shop_repo, old, ignore=shutil.ignore_patterns(".git"))
    (tmp_path / "empty").mkdir()
    # the old contracts/ folder (neither the system's directory nor the repository root), an empty folder
    for base in (old / "examples" / "shop" / "contracts", tmp_path / "empty"):
        _one_sentence_exit_2(_cli("contracts", "diff", str(shop), "--base", str(base)), str(base),
                             "system's directory or the repository root")
    # a git ref from before the contracts existed
    _one_sentence_exit_2(_cli("contracts", "diff", str(shop), "--base", "c0"), "c0", "no contract")
    # an old system file in which a service of the system names no contract
    toml = old / "examples" / "shop" / "sagaproof.toml"
    toml.write_text(toml.read_text().replace('contracts = ["contracts/payment.yaml"]\n', ""))
    _one_sentence_exit_2(_cli("contracts", "diff", str(shop), "--base", str(old)), "payment")


def test_diff_a_service_new_since_the_base_is_an_addition(shop_repo: Path):
    shop = shop_repo / "examples" / "shop"
    doc = yaml.safe_load((shop / "contracts" / "shipping.yaml").read_text())
    doc["info"]["title"] = "audit"
    doc["operations"] = {k: v for k, v in doc["operations"].items() if v["action"] == "receive"}
    (shop / "contracts" / "audit.yaml").write_text(yaml.safe_dump(doc))
    toml = shop / "sagaproof.toml"
    toml.write_text(toml.read_text() + '\n[services.audit]\ncommand = ["true"]\ncontracts = ["contracts/audit.yaml"]\n')
    proc = _cli("contracts", "diff", str(shop), "--base", "c1", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert any(c["service"] == "audit" and c["verdict"] == "safe" for c in json.loads(proc.stdout)["changes"])


def test_diff_reports_a_consumer_of_a_subject_nobody_sends(shop_repo: Path):
    shop = shop_repo / "examples" / "shop"
    doc = yaml.safe_load((shop / "contracts" / "payment.yaml").read_text())
    (name, chan), = [(k, v) for k, v in doc["channels"].items() if v["address"] == "orders.created"]
    doc["channels"]["placed"] = {**chan, "address": "orders.placed"}
    doc["operations"]["onPlaced"] = {"action": "receive", "channel": {"$ref": "#/channels/placed"}}
    (shop / "contracts" / "payment.yaml").write_text(yaml.safe_dump(doc))
    proc = _cli("contracts", "diff", str(shop), "--base", "c1", "--json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    (change,) = [c for c in json.loads(proc.stdout)["changes"] if c["kind"] == "no-producer"]
    assert change["subject"] == "orders.placed" and change["service"] == "payment"
    assert change["breaking_for"] == "consumers" and "no service sends" in change["description"]


def test_diff_reports_undecided_changes_as_undecided_and_exits_1(tmp_path: Path):
    from tests.contracts.deploy_testkit import INT, doc, git, make_repo, write

    repo = make_repo(tmp_path)
    shop = repo / "shop"
    # the producer sends order_id matching one pattern; the consumer starts asking another: no counterexample
    # exists, and the structural check cannot prove it. The gate must not call that safe.
    write(shop / "contracts" / "order.yaml", doc("order", "send", {"order_id": {"type": "string", "pattern": "^[a-z]{1,12}$"},
                                                                   "amount": INT}, ["order_id", "amount"]))
    git(repo, "commit", "-qam", "order_id pattern")
    git(repo, "tag", "patterned")
    write(shop / "contracts" / "payment.yaml", doc("payment", "receive", {"order_id": {"type": "string", "pattern": "^[a-z]+$"},
                                                                         "amount": INT}, ["order_id", "amount"]))
    proc = _cli("contracts", "diff", str(shop), "--base", "patterned", "--json")
    out = json.loads(proc.stdout)
    assert proc.returncode == 1 and out["undecided"] is True and out["breaking"] is False, proc.stdout + proc.stderr
    assert any(c["verdict"] == "undecided" and c["service"] == "payment" for c in out["changes"]), out
    table = _cli("contracts", "diff", str(shop), "--base", "patterned")
    assert table.returncode == 1 and "undecided" in table.stdout and "no breaking change" not in table.stdout


def test_check_writes_nothing_into_the_working_directory(tmp_path: Path):
    proc = _cli("contracts", "check", str(SHOP), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert list(tmp_path.iterdir()) == []


def _undecided_shop(tmp_path: Path) -> tuple[Path, Path]:
    """A shop whose one pair can be neither proven nor broken: the producer's order_id pattern ^[a-z]{1,12}$
    against the consumer's ^[a-z]+$ (every producer value matches, which the proof cannot show)."""
    from tests.contracts.deploy_testkit import INT, doc, git, make_repo, write

    repo = make_repo(tmp_path)
    shop = repo / "shop"
    write(shop / "contracts" / "order.yaml", doc("order", "send", {"order_id": {"type": "string", "pattern": "^[a-z]{1,12}$"},
                                                                   "amount": INT}, ["order_id", "amount"]))
    git(repo, "commit", "-qam", "order_id pattern")
    git(repo, "tag", "patterned")
    write(shop / "contracts" / "payment.yaml", doc("payment", "receive", {"order_id": {"type": "string", "pattern": "^[a-z]+$"},
                                                                         "amount": INT}, ["order_id", "amount"]))
    return repo, shop


def test_undecided_fails_check_as_it_fails_diff_unless_the_system_file_accepts_the_channel(tmp_path: Path):
    _, shop = _undecided_shop(tmp_path)
    check = _cli("contracts", "check", str(shop), "--json")
    out = json.loads(check.stdout)
    assert check.returncode == 1 and out["undecided"] is True and out["breaking"] is False, check.stdout + check.stderr
    (problem,) = [p for c in out["channels"] for p in c["problems"]]
    assert problem["compat"] == "undecided" and problem["keyword"] == "pattern"
    assert problem["location"] == "/properties/order_id/pattern" and problem["accepted"] is False
    diff = _cli("contracts", "diff", str(shop), "--base", "patterned", "--json")
    dout = json.loads(diff.stdout)
    assert diff.returncode == 1 and dout["undecided"] is True
    # check --json and diff --json give the same verdict fields, at the top and per finding.
    shared = {"ok", "breaking", "undecided", "accepted_undecided"}
    assert shared <= set(out) and shared <= set(dout)
    changes = [c for c in dout["changes"] if c["verdict"] == "undecided"]
    assert changes and all({k: c[k] for k in ("compat", "keyword", "location")} ==
                           {k: problem[k] for k in ("compat", "keyword", "location")} for c in changes), changes

    toml = shop / "sagaproof.toml"
    toml.write_text(toml.read_text() + '\n[contracts]\naccept_undecided = ["orders.created"]\n')
    check = _cli("contracts", "check", str(shop), "--json")
    out = json.loads(check.stdout)
    assert check.returncode == 0 and out["accepted_undecided"] == ["orders.created"], check.stdout + check.stderr
    assert out["undecided"] is False and out["channels"][0]["verdict"] == "undecided (accepted)"
    table = _cli("contracts", "check", str(shop))
    assert table.returncode == 0 and "accepted as undecided" in table.stdout and "orders.created" in table.stdout
    diff = _cli("contracts", "diff", str(shop), "--base", "patterned", "--json")
    assert diff.returncode == 0 and json.loads(diff.stdout)["accepted_undecided"] == ["orders.created"], diff.stdout


def test_accept_undecided_naming_no_channel_is_a_usage_error(tmp_path: Path):
    _, shop = _undecided_shop(tmp_path)
    toml = shop / "sagaproof.toml"
    toml.write_text(toml.read_text() + '\n[contracts]\naccept_undecided = ["orders.craeted"]\n')
    proc = _cli("contracts", "check", str(shop))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "accept_undecided names channel 'orders.craeted'" in proc.stderr + proc.stdout
