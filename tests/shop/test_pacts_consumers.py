"""The shop's consumer pact tests (examples/shop/tests_pacts) run in their own pytest, write one V4 message
pact per consumer/provider pair, and the pacts committed under examples/shop/contracts/pacts are exactly
what they write (so `sagaproof contracts verify-pacts examples/shop` checks what the consumers test)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHOP = ROOT / "examples" / "shop"

# consumer -> provider -> {description: subject}: every event each shop service consumes (README table)
EXPECTED = {
    "payment": {"order": {"an order was created": "orders.created"},
                "inventory": {"stock was short for an order": "inventory.failed"},
                "shipping": {"shipping failed for an order": "shipping.failed"}},
    "inventory": {"payment": {"a payment was completed": "payments.completed"},
                  "shipping": {"shipping failed for an order": "shipping.failed"}},
    "shipping": {"inventory": {"stock was reserved for an order": "inventory.reserved"}},
    "order": {"payment": {"a payment was declined": "payments.failed"},
              "inventory": {"stock was short for an order": "inventory.failed"},
              "shipping": {"a shipment was scheduled": "shipping.scheduled",
                           "shipping failed for an order": "shipping.failed"}},
}


def _run_consumer_tests(pact_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SHOP_BUG"}
    env["SHOP_PACT_DIR"] = str(pact_dir)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", str(SHOP / "tests_pacts"),
                           *extra], capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)


def test_consumer_pact_tests_write_the_committed_pacts(tmp_path: Path) -> None:
    proc = _run_consumer_tests(tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "9 passed" in proc.stdout, proc.stdout[-2000:]
    written = sorted(p.name for p in tmp_path.glob("*.json"))
    assert written == sorted(f"{c}-{p}.json" for c, provs in EXPECTED.items() for p in provs)
    for consumer, providers in EXPECTED.items():
        for provider, messages in providers.items():
            doc = json.loads((tmp_path / f"{consumer}-{provider}.json").read_text())
            assert (doc["consumer"]["name"], doc["provider"]["name"]) == (consumer, provider)
            assert doc["metadata"]["pactSpecification"]["version"].startswith("4")
            got = {i["description"]: i["metadata"]["subject"] for i in doc["interactions"]}
            assert got == messages, (consumer, provider, got)
            for inter in doc["interactions"]:
                assert inter["type"] == "Asynchronous/Messages"
                rules = inter["matchingRules"]["body"]
                assert {"$.event_id", "$.order_id", "$.occurred_at"} <= rules.keys(), rules.keys()
                assert inter["contents"]["content"]["type"] == inter["metadata"]["subject"]
            committed = json.loads((SHOP / "contracts" / "pacts" / f"{consumer}-{provider}.json").read_text())
            assert committed["interactions"] == doc["interactions"], (
                f"examples/shop/contracts/pacts/{consumer}-{provider}.json is stale; run "
                f"`python -m pytest examples/shop/tests_pacts` and commit the pact files")


def test_a_consumer_that_mishandles_its_message_fails_and_writes_no_pact(tmp_path: Path) -> None:
    # A consumer test whose handler does not hold: the consumer-side check must fail, not write a pact.
    broken = tmp_path / "tests_broken"
    broken.mkdir()
    (broken / "conftest.py").write_text((SHOP / "tests_pacts" / "conftest.py").read_text())
    (broken / "test_broken.py").write_text(
        "import pact_events as ev\n"
        "from consumer_kit import PACT_DIR, deliver\n"
        "from contracts.pacts import message_pact\n\n"
        "def test_payment_without_items(service):\n"
        "    payment = service('payment')\n"
        "    with message_pact('payment', 'order', PACT_DIR) as pact:\n"
        "        pact.expects(ev.ORDER_CREATED, {**ev.envelope('orders.created', ev.ORDER_CREATED),\n"
        "                     'customer_id': 'c', 'amount': 5}, subject='orders.created')\n"
        "        pact.verify(lambda body, meta: deliver(payment, meta['subject'], body))\n")
    env = {k: v for k, v in os.environ.items() if k != "SHOP_BUG"}
    env["SHOP_PACT_DIR"] = str(tmp_path / "pacts")
    env["PYTHONPATH"] = str(SHOP / "tests_pacts")  # pact_events and consumer_kit
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", str(broken)], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, env=env)
    assert proc.returncode == 1, proc.stdout[-3000:]
    assert "payment's handler failed on its pact with order" in proc.stdout and "'items'" in proc.stdout, \
        proc.stdout[-3000:]
    assert not (tmp_path / "pacts" / "payment-order.json").exists()
