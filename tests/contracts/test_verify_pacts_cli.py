"""`sagaproof contracts verify-pacts` on the example shop, for real: a real nats-server, the four services
as processes, each pact's message triggered through order's HTTP API, captured from NATS and judged by
pact-python's verifier. Plus the two ways it must refuse: a pact the provider breaks (exit 1, with pact's
diff) and a message without a trigger (exit 2, one sentence, nothing started)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import copy_example

ROOT = Path(__file__).resolve().parents[2]
SHOP = ROOT / "examples" / "shop"
PACTS = SHOP / "contracts" / "pacts"
SAGAPROOF = [sys.executable, "-m", "sagaproof"]


def _verify(system_dir: Path, report_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SHOP_BUG"}
    env["NO_COLOR"] = "1"
    return subprocess.run([*SAGAPROOF, "contracts", "verify-pacts", str(system_dir), "--report-dir", str(report_dir)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)


def _shop_copy(tmp_path: Path, keep: list[str]) -> Path:
    """A copy of the shop whose pact directory holds only the pact files named in *keep*."""
    dst = tmp_path / "shop"
    copy_example(SHOP, dst, "__pycache__", ".shop-data", "tests_pacts")
    for f in (dst / "contracts" / "pacts").glob("*.json"):
        if f.name not in keep:
            f.unlink()
    return dst


def _expected_interactions() -> dict[str, int]:
    counts: dict[str, int] = {}
    for f in PACTS.glob("*.json"):
        doc = json.loads(f.read_text())
        counts[doc["provider"]["name"]] = counts.get(doc["provider"]["name"], 0) + len(doc["interactions"])
    return counts


def test_every_shop_provider_verifies_its_consumers_pacts(tmp_path: Path) -> None:
    expected = _expected_interactions()
    assert set(expected) == {"order", "payment", "inventory", "shipping"}, "run examples/shop/tests_pacts first"
    proc = _verify(SHOP, tmp_path / "report")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    for provider, count in expected.items():
        assert re.search(rf"pacts for provider {provider}: verified \({count} interaction\(s\)", proc.stdout), \
            proc.stdout[-4000:]
    assert "FAILED" not in proc.stdout and "Traceback" not in out
    # the services really ran, and the triggers went through order's HTTP API
    assert (tmp_path / "report" / "logs" / "order.log").read_text().strip()


def test_a_field_the_provider_does_not_send_fails_with_pacts_diff(tmp_path: Path) -> None:
    shop = _shop_copy(tmp_path, ["payment-order.json"])
    pact_file = shop / "contracts" / "pacts" / "payment-order.json"
    doc = json.loads(pact_file.read_text())
    [inter] = doc["interactions"]
    inter["contents"]["content"]["loyalty_points"] = 12  # order never sends this
    pact_file.write_text(json.dumps(doc, indent=2))

    proc = _verify(shop, tmp_path / "report")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-4000:]
    assert "pacts for provider order: FAILED (1 interaction(s), 1 file(s))" in proc.stdout, proc.stdout[-4000:]
    assert "Actual map is missing the following keys: loyalty_points" in proc.stdout, proc.stdout[-4000:]
    assert "Traceback" not in out


def test_a_message_without_a_trigger_is_a_usage_error(tmp_path: Path) -> None:
    shop = _shop_copy(tmp_path, ["payment-order.json", "shipping-inventory.json"])
    pact_file = shop / "contracts" / "pacts" / "shipping-inventory.json"
    doc: dict[str, Any] = json.loads(pact_file.read_text())
    doc["interactions"][0]["description"] = "a parcel was lost"
    pact_file.write_text(json.dumps(doc, indent=2))

    proc = _verify(shop, tmp_path / "report")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "no [[pacts.triggers]] entry for the message 'a parcel was lost'" in lines[0]
    assert 'description = "a parcel was lost"' in lines[0]
    assert not (tmp_path / "report" / "logs").exists(), "nothing may start before the pacts are checked"


@pytest.mark.parametrize("content, needle", [("{not json", "not a readable JSON pact file"),
                                             ('["a", "list"]', "not a pact file")])
def test_a_broken_pact_file_is_a_usage_error(tmp_path: Path, content: str, needle: str) -> None:
    shop = _shop_copy(tmp_path, ["payment-order.json"])
    (shop / "contracts" / "pacts" / "broken.json").write_text(content)
    proc = _verify(shop, tmp_path / "report")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert needle in proc.stderr and "Traceback" not in proc.stderr


def test_correlation_takes_only_the_triggered_sagas_message() -> None:
    from sagaproof.harness.config import load_system_file
    from sagaproof.harness.session.contract_runs import correlation as _correlation

    spec = load_system_file(str(SHOP))
    assert _correlation(spec, {"order_id": "o-1", "status": "PENDING"}) == {"order_id": "o-1"}
    assert _correlation(spec, {"status": "PENDING"}) == {}
    assert _correlation(spec, None) == {}


def test_a_trigger_whose_message_never_comes_names_the_subject(tmp_path: Path) -> None:
    shop = _shop_copy(tmp_path, ["payment-order.json"])
    toml = shop / "sagaproof.toml"
    text = toml.read_text()
    assert 'capture = "orders.created"\n' in text
    toml.write_text(text.replace('capture = "orders.created"\n', 'capture = "orders.never"\ntimeout = "1s"\n', 1))

    proc = _verify(shop, tmp_path / "report")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "pacts for provider order: FAILED" in proc.stdout
    assert "trigger failed: an order was created: no message on orders.never within 1s" in proc.stdout
