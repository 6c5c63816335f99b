"""The CI recipes in docs/ci-examples/ run for real against the example shop (short settings)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

from tests.conftest import ROOT, SHOP, copy_example

RECIPES = ROOT / "docs" / "ci-examples"


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # the venv's sagaproof
    env.update(extra)
    return env


def test_pr_recipe_passes_on_no_change_and_blocks_a_breaking_one(tmp_path: Path):
    base = tmp_path / "base"
    copy_example(SHOP, base, "__pycache__")
    ok = subprocess.run(["bash", str(RECIPES / "pr-contracts.sh"), str(base), str(SHOP)], capture_output=True,
                        text=True, env=_env(), timeout=120, cwd=ROOT)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    head = tmp_path / "head"
    copy_example(SHOP, head, "__pycache__")
    doc = head / "contracts" / "payment.yaml"
    doc.write_text(doc.read_text().replace("order_id", "orderId"))
    blocked = subprocess.run(["bash", str(RECIPES / "pr-contracts.sh"), str(base), str(head)], capture_output=True,
                             text=True, env=_env(), timeout=120, cwd=ROOT)
    assert blocked.returncode == 1, blocked.stdout + blocked.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    closed = subprocess.run(["bash", str(RECIPES / "pr-contracts.sh"), str(empty), str(SHOP)], capture_output=True,
                            text=True, env=_env(), timeout=120, cwd=ROOT)
    assert closed.returncode == 2, closed.stdout + closed.stderr


_GIT_ENV = {"GIT_AUTHOR_NAME": "ci", "GIT_AUTHOR_EMAIL": "ci@example.invalid", "GIT_COMMITTER_NAME": "ci",
            "GIT_COMMITTER_EMAIL": "ci@example.invalid"}


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env=_env(**_GIT_ENV)).stdout.strip()


def test_gate_recipe_deploys_only_what_is_safe_in_that_environment(tmp_path: Path):
    """docs/ci-examples/gate.sh in a clone of the shop: check, can-i-deploy, the deploy command, record-deployment.

    order starts sending a coupon and payment starts requiring it. The work tree is consistent (check passes),
    but payment may go to prod only after order, and only once the stream no longer holds old orders."""
    repo = tmp_path / "repo"
    shop = repo / "examples" / "shop"
    copy_example(SHOP, shop, "__pycache__", ".shop-data")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "the shop")
    first = _git(repo, "rev-parse", "HEAD")

    def sagaproof(*args: str) -> None:
        proc = subprocess.run([sys.executable, "-m", "sagaproof", "contracts", *args, "--dir", "examples/shop"],
                              capture_output=True, text=True, env=_env(), timeout=120, cwd=repo)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        _git(repo, "add", "-A")
        _git(repo, "commit", "-qm", f"record {' '.join(args)}")

    shop_dep = shop / "deployments" / "prod.toml"
    sagaproof("record-deployment", "order", "payment", "inventory", "shipping", "--env", "prod")
    order, payment = shop / "contracts" / "order.yaml", shop / "contracts" / "payment.yaml"
    o, p = order.read_text(), payment.read_text()
    order.write_text(o.replace("        - occurred_at\n", "        - occurred_at\n        - coupon\n", 1)
                     .replace("          customer_id:\n            type: string\n",
                              "          customer_id:\n            type: string\n          coupon:\n"
                              "            type: string\n", 1))
    payment.write_text(p.replace("        - order_id\n        - customer_id\n",
                                 "        - order_id\n        - coupon\n        - customer_id\n", 1))
    assert order.read_text() != o and payment.read_text() != p
    _git(repo, "commit", "-qam", "order sends a coupon, payment requires it")
    deployed = tmp_path / "deployed"

    def gate(service: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", str(RECIPES / "gate.sh"), "prod", service], capture_output=True, text=True,
                              env=_env(DEPLOY=f"echo {service} >> {deployed}", **_GIT_ENV), timeout=300, cwd=repo)

    def recorded() -> dict[str, Any]:
        return tomllib.loads(shop_dep.read_text())["services"]

    # payment first: prod's order does not send the coupon
    blocked = gate("payment")
    assert blocked.returncode == 1, blocked.stdout + blocked.stderr
    assert "NOT safe to deploy payment" in blocked.stdout and "coupon" in blocked.stdout
    assert not deployed.exists() and recorded()["payment"]["ref"] == first
    # order first is safe: it is deployed, recorded and committed
    ok = gate("order")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert deployed.read_text() == "order\n" and _git(repo, "log", "-1", "--format=%s") == "deploy order to prod"
    assert recorded()["order"]["ref"] == _git(repo, "rev-parse", "HEAD~1") and recorded()["order"]["previous"] == first
    # payment now: the live order is fine, but the SHOP stream may still hold orders without a coupon
    blocked = gate("payment")
    assert blocked.returncode == 1 and "stored messages" in blocked.stdout, blocked.stdout + blocked.stderr
    # once the stream holds none of them (retention, or purged), say so; then payment may go
    sagaproof("record-deployment", "order", "--env", "prod", "--ref", recorded()["order"]["ref"], "--clear-previous")
    ok = gate("payment")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert deployed.read_text() == "order\npayment\n" and recorded()["payment"]["previous"] == first


def test_push_recipe_writes_junit_and_report(tmp_path: Path):
    report = tmp_path / "report"
    proc = subprocess.run(["bash", str(RECIPES / "push.sh"), str(SHOP), "--sagas", "30"], capture_output=True,
                          text=True, env=_env(REPORT_DIR=str(report), SEED="7"), timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "seed: 7" in proc.stdout
    assert (report / "junit.xml").is_file() and (report / "report.html").is_file()


def test_nightly_recipe_prints_and_keeps_its_seed(tmp_path: Path):
    proc = subprocess.run(["bash", str(RECIPES / "nightly.sh"), str(SHOP), "2s"], capture_output=True, text=True,
                          env=_env(REPORT_ROOT=str(tmp_path)), timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    (out,) = list(tmp_path.iterdir())
    seed = (out / "SEED").read_text().split()[-1]
    assert f"seed: {seed}" in proc.stdout
    assert json.loads((out / "report.json").read_text())["seed"] == int(seed)


def test_docs_show_the_recipes_as_they_are():
    doc = (ROOT / "docs" / "ci.md").read_text()
    for name in ("gate.sh", "pr-contracts.sh"):
        body = [line for line in (RECIPES / name).read_text().splitlines() if line and not line.startswith("#")]
        assert all(line in doc for line in body), [line for line in body if line not in doc]
