"""contracts.check on the fixture shop and the example shop."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from contracts_testkit import EXAMPLE_SHOP, SHOP_FIXTURE, SHOP_SERVICES
from rich.console import Console

from sagaproof import contracts


def test_fixture_shop_passes() -> None:
    report = contracts.check(contracts.load_dir(SHOP_FIXTURE))
    assert report.ok and report.exit_code == 0, report.to_dict()
    rows = {r.subject: r for r in report.rows}
    assert rows["orders.created"].producers == ["order"] and rows["orders.created"].consumers == ["payment"]
    assert rows["payments.*"].consumers == ["inventory", "order"]


def test_renamed_required_field_fails_with_counterexample(shop_copy: Path) -> None:
    p = shop_copy / "order.yaml"
    doc = yaml.safe_load(p.read_text())
    payload = doc["components"]["messages"]["OrderCreated"]["payload"]
    payload["required"] = ["orderId" if r == "order_id" else r for r in payload["required"]]
    payload["properties"]["orderId"] = payload["properties"].pop("order_id")
    p.write_text(yaml.safe_dump(doc))
    report = contracts.check(contracts.load_dir(shop_copy))
    assert not report.ok and report.exit_code == 1
    row = next(r for r in report.rows if r.subject == "orders.created")
    assert row.verdict == "incompatible"
    err = report.errors[0]
    assert err.producer == "order" and err.consumer == "payment"
    assert "order_id" in err.message and "payment.yaml" in err.message and "/payload/required" in err.message
    assert "order_id" not in err.verdict.counterexample


def test_consumed_subject_nobody_produces_is_error_and_unconsumed_is_warning(shop_copy: Path) -> None:
    (shop_copy / "shipping.json").unlink()
    report = contracts.check(contracts.load_dir(shop_copy))
    rows = {r.subject: r for r in report.rows}
    assert rows["shipping.scheduled"].verdict == "no producer"
    assert rows["inventory.reserved"].verdict == "no consumer"
    assert [p.subject for p in report.errors] == ["shipping.scheduled"]
    assert "inventory.reserved" in [p.subject for p in report.warnings]


def test_render_and_json(shop_copy: Path) -> None:
    report = contracts.check(contracts.load_dir(SHOP_FIXTURE))
    console = Console(record=True, width=120)
    contracts.render.check_table(report, console)
    text = console.export_text()
    assert re.search(r"orders\.created\s+│\s+order\s+│\s+payment\s+│\s+ok", text)
    assert "contracts OK" in text
    json.dumps(report.to_dict())


@pytest.mark.skipif(not EXAMPLE_SHOP.is_dir(), reason="example shop not present")
def test_example_shop_passes_and_breaks_on_renamed_field(tmp_path: Path) -> None:
    import shutil

    sources = {s: [EXAMPLE_SHOP / f"{s}.yaml"] for s in SHOP_SERVICES}
    report = contracts.check(contracts.load(sources))
    assert report.ok, [p.message for p in report.errors]
    dst = tmp_path / "contracts"
    shutil.copytree(EXAMPLE_SHOP, dst)
    text = (dst / "order.yaml").read_text()
    assert "order_id" in text
    (dst / "order.yaml").write_text(text.replace("order_id", "orderId"))
    broken = contracts.check(contracts.load({s: [dst / f"{s}.yaml"] for s in SHOP_SERVICES}))
    assert not broken.ok
    assert any(p.producer == "order" and "order_id" in p.message for p in broken.errors)
