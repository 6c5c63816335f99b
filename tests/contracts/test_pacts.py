"""Pact message pacts, both sides, with real pact-python (FFI) and no mocks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pact import match
from sagaproof.contracts.pacts import PactConsumerError, message_pact, verify_pacts

ORDER_ID = "2a0f19e1-1655-5703-aedb-03bbff5171e1"


def _write_pact(pact_dir: Path) -> Path:
    handled: list[Any] = []

    def handle_order_created(body: Any, metadata: dict[str, Any]) -> None:
        assert isinstance(body["order_id"], str) and body["total"]["amount"] >= 0
        handled.append((body, metadata))

    with message_pact("payment", "order", pact_dir) as pact:
        pact.expects("an order was created",
                     {"order_id": match.uuid(ORDER_ID), "total": {"amount": match.number(12.5), "currency": "EUR"}},
                     given={"an order exists": {"order_id": ORDER_ID}}, subject="orders.created")
        pact.verify(handle_order_created)
    assert handled and handled[0][1]["subject"] == "orders.created"
    return pact_dir / "payment-order.json"


def test_consumer_writes_v4_async_message_pact(tmp_path: Path) -> None:
    path = _write_pact(tmp_path)
    doc = json.loads(path.read_text())
    assert doc["metadata"]["pactSpecification"]["version"].startswith("4")
    [inter] = doc["interactions"]
    assert inter["type"] == "Asynchronous/Messages" and inter["description"] == "an order was created"
    assert inter["providerStates"][0]["name"] == "an order exists"
    assert "matchingRules" in inter["contents"] or "matchingRules" in inter


def test_consumer_handler_failure_is_reported(tmp_path: Path) -> None:
    def broken(body: Any, metadata: dict[str, Any]) -> None:
        raise KeyError("customer")

    with pytest.raises(PactConsumerError, match="payment's handler failed"):
        with message_pact("payment", "order", tmp_path) as pact:
            pact.expects("an order was created", {"order_id": match.uuid(ORDER_ID)})
            pact.verify(broken)
    assert not (tmp_path / "payment-order.json").exists()


def test_provider_emitting_correct_body_passes(tmp_path: Path) -> None:
    _write_pact(tmp_path)
    calls: list[tuple[str, list[dict[str, Any]]]] = []

    def produce(description: str, states: list[dict[str, Any]]) -> dict[str, Any]:
        calls.append((description, states))
        order_id = states[0]["params"]["order_id"]
        return {"body": {"order_id": order_id, "total": {"amount": 3, "currency": "EUR"}},
                "metadata": {"subject": "orders.created"}}

    result = verify_pacts(tmp_path, "order", produce)
    assert result.ok, result.errors
    assert [(i.consumer, i.description, i.ok) for i in result.interactions] == [("payment", "an order was created", True)]
    assert calls == [("an order was created", [{"name": "an order exists", "params": {"order_id": ORDER_ID}}])]


def test_provider_missing_a_key_fails(tmp_path: Path) -> None:
    _write_pact(tmp_path)

    def produce(description: str, states: list[dict[str, Any]]) -> dict[str, Any]:
        return {"body": {"total": {"amount": 3, "currency": "EUR"}}, "metadata": {"subject": "orders.created"}}

    result = verify_pacts(tmp_path, "order", produce)
    assert not result.ok
    assert [i.ok for i in result.interactions] == [False]
    assert "order_id" in result.output + " ".join(result.errors)


def test_no_pact_for_provider_and_missing_dir(tmp_path: Path) -> None:
    _write_pact(tmp_path)
    r = verify_pacts(tmp_path, "shipping", lambda d, s: {"body": {}})
    assert r.ok and r.interactions == []
    from sagaproof.contracts.errors import ContractSourceError

    with pytest.raises(ContractSourceError):
        verify_pacts(tmp_path / "nope", "order", lambda d, s: {"body": {}})
