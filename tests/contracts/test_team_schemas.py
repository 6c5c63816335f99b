"""Contracts as teams write them: annotation keywords never make the structural check undecided, and a
``$ref`` to the team's own JSON Schema files (with their ``$id`` and ``$schema``) works unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sagaproof.contracts import is_compatible

from sagaproof import contracts

PRODUCER = {"type": "object", "additionalProperties": False, "required": ["id", "amount"],
            "properties": {"id": {"type": "string", "minLength": 1}, "amount": {"type": "integer", "minimum": 1}}}

ANNOTATIONS = {"x-handler": "on_order", "x-pii": True, "title": "t", "description": "d", "$comment": "c",
               "examples": [{"id": "o-1"}], "deprecated": False, "readOnly": True, "writeOnly": False}


@pytest.mark.parametrize("keyword", sorted(ANNOTATIONS))
def test_an_annotation_keyword_in_a_consumer_schema_is_decided_structurally(keyword: str):
    consumer = {"type": "object", "required": ["id"], "properties": {
        "id": {"type": "string", keyword: ANNOTATIONS[keyword]}}, keyword: ANNOTATIONS[keyword]}
    verdict = is_compatible(PRODUCER, consumer, confirm_examples=0)
    assert (verdict.status, verdict.reason) == ("ok", "every producer message is accepted")


def test_annotations_do_not_hide_a_real_incompatibility():
    consumer = {"type": "object", "x-handler": "h", "required": ["id", "currency"],
                "properties": {"currency": {"type": "string", "x-pii": False}}}
    verdict = is_compatible(PRODUCER, consumer, confirm_examples=0)
    assert verdict.status == "incompatible" and "'currency'" in verdict.reason


def _asyncapi(title: str, action: str, payload: dict) -> str:
    return json.dumps({"asyncapi": "3.0.0", "info": {"title": title, "version": "1.0.0"},
                       "channels": {"orders": {"address": "orders.created", "messages": {"m": {"payload": payload}}}},
                       "operations": {"op": {"action": action, "channel": {"$ref": "#/channels/orders"}}}})


@pytest.fixture
def team(tmp_path: Path) -> Path:
    schemas = tmp_path / "schemas"
    (schemas / "common").mkdir(parents=True)
    (schemas / "order.json").write_text(json.dumps({
        "$schema": "http://json-schema.org/draft-07/schema#", "$id": "https://acme.example/schemas/order.json",
        "type": "object", "required": ["order_id", "address", "lines"], "additionalProperties": False,
        "properties": {"order_id": {"type": "string", "x-pii": False},
                       "address": {"$ref": "https://acme.example/schemas/common/address.json"},
                       "lines": {"type": "array", "items": {"$ref": "#/definitions/line"}}},
        "definitions": {"line": {"type": "object", "required": ["sku"], "additionalProperties": False,
                                 "properties": {"sku": {"type": "string"}}}}}))
    (schemas / "common" / "address.json").write_text(json.dumps({
        "$schema": "http://json-schema.org/draft-07/schema#", "$id": "https://acme.example/schemas/common/address.json",
        "title": "Address", "type": "object", "required": ["country"], "additionalProperties": False,
        "properties": {"country": {"$ref": "country.json"}}}))
    (schemas / "common" / "country.json").write_text(json.dumps({
        "$schema": "http://json-schema.org/draft-07/schema#", "$id": "https://acme.example/schemas/common/country.json",
        "type": "string", "pattern": "^[A-Z]{2}$"}))
    (tmp_path / "order.json").write_text(_asyncapi("order", "send", {"$ref": "schemas/order.json"}))
    return tmp_path


def test_refs_to_the_teams_own_schema_files_by_id_and_by_path(team: Path):
    (team / "shipping.json").write_text(_asyncapi("shipping", "receive", {
        "type": "object", "required": ["order_id", "address"], "x-handler": "ship",
        "properties": {"address": {"$ref": "https://acme.example/schemas/common/address.json"}}}))
    cs = contracts.load({"order": [team / "order.json"], "shipping": [team / "shipping.json"]})
    payload = cs.channels["orders.created"].producers["order"][0].payload
    assert payload["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert payload["properties"]["address"]["properties"]["country"]["pattern"] == "^[A-Z]{2}$"
    report = contracts.check(cs)
    assert report.ok and [r.verdict for r in report.rows] == ["ok"]
    validator = contracts.LiveValidator(cs)
    good = {"order_id": "o1", "address": {"country": "IE"}, "lines": [{"sku": "a"}]}
    assert validator.validate("orders.created", json.dumps(good).encode(), None) == []
    bad = {**good, "address": {"country": "Ireland"}}
    assert validator.validate("orders.created", json.dumps(bad).encode(), None)


def test_a_ref_to_an_id_no_file_has_is_one_clear_error(team: Path):
    (team / "shipping.json").write_text(_asyncapi("shipping", "receive", {
        "$ref": "https://acme.example/schemas/common/adress.json"}))
    with pytest.raises(contracts.ContractError) as info:
        contracts.load({"order": [team / "order.json"], "shipping": [team / "shipping.json"]})
    assert "names no file here" in str(info.value) and "adress.json" in str(info.value)
