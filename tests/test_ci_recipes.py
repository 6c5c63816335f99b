"""The CI recipes in docs/ci-examples/ run for real against the example shop (short settings)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, SHOP

RECIPES = ROOT / "docs" / "ci-examples"


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # the venv's sagaproof
    env.update(extra)
    return env


def test_gate_passes_on_no_change_and_blocks_a_breaking_one(tmp_path: Path):
    base = tmp_path / "base"
    shutil.copytree(SHOP, base, ignore=shutil.ignore_patterns("__pycache__"))
    ok = subprocess.run(["bash", str(RECIPES / "gate.sh"), str(base), str(SHOP)], capture_output=True, text=True,
                        env=_env(), timeout=120, cwd=ROOT)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    head = tmp_path / "head"
    shutil.copytree(SHOP, head, ignore=shutil.ignore_patterns("__pycache__"))
    doc = head / "contracts" / "payment.yaml"
    doc.write_text(doc.read_text().replace("order_id", "orderId"))
    blocked = subprocess.run(["bash", str(RECIPES / "gate.sh"), str(base), str(head)], capture_output=True,
                             text=True, env=_env(), timeout=120, cwd=ROOT)
    assert blocked.returncode == 1, blocked.stdout + blocked.stderr


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
