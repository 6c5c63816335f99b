"""Loading AsyncAPI 3.0 documents: structure checks, $ref resolution, plain JSON Schema sources."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from contracts_testkit import EXAMPLE_SHOP, SHOP_FIXTURE
from sagaproof.contracts import ContractError, SubjectSchema

from sagaproof import contracts


def _doc(**over: object) -> dict:
    doc = {
        "asyncapi": "3.0.0",
        "info": {"title": "t", "version": "1"},
        "channels": {"c": {"address": "a.b", "messages": {"M": {"payload": {"type": "object"}}}}},
        "operations": {"o": {"action": "send", "channel": {"$ref": "#/channels/c"}}},
    }
    doc.update(over)
    return doc


def _write(tmp: Path, doc: object, name: str = "svc.yaml") -> Path:
    p = tmp / name
    p.write_text(yaml.safe_dump(doc))
    return p


def test_fixture_shop_loads_with_cross_file_refs() -> None:
    cs = contracts.load_dir(SHOP_FIXTURE)
    assert sorted(cs.services) == ["inventory", "order", "payment", "shipping"]
    oc = cs.channels["orders.created"]
    assert list(oc.producers) == ["order"] and list(oc.consumers) == ["payment"]
    payload = oc.producers["order"][0].payload
    # common.yaml#/components/schemas/OrderId resolved in place
    assert payload["properties"]["order_id"] == {"type": "string", "format": "uuid"}
    assert payload["properties"]["total"]["required"] == ["amount", "currency"]
    # address parameters are wildcards; nullable rewritten to a type union
    pay = cs.channels["payments.*"].producers["payment"][0].payload
    assert pay["properties"]["reason"]["type"] == ["string", "null"]
    assert cs.sender_of("payments.failed") == ["payment"]
    assert cs.receivers_of("payments.completed") == ["inventory"]
    assert cs.sender_of("nothing.here") == []


def test_load_with_explicit_services(tmp_path: Path) -> None:
    p = _write(tmp_path, _doc())
    cs = contracts.load({"billing": [p]})
    assert cs.channels["a.b"].producers.keys() == {"billing"}


@pytest.mark.parametrize(("doc", "pointer", "words"), [
    (_doc(asyncapi="2.6.0"), "/asyncapi", "only 3.0.x"),
    ({k: v for k, v in _doc().items() if k != "asyncapi"}, "/asyncapi", "missing"),
    (_doc(info={"title": "t"}), "/info/version", "info.version"),
    (_doc(channels={"c": {"messages": {}}}), "/channels/c/address", "no 'address'"),
    (_doc(channels={"c": {"address": "a..b"}}), "/channels/c/address", "not a valid NATS subject"),
    (_doc(operations={"o": {"action": "publish", "channel": {"$ref": "#/channels/c"}}}),
     "/operations/o/action", "'send' or 'receive'"),
    (_doc(operations={"o": {"channel": {"$ref": "#/channels/c"}}}), "/operations/o/action", "has no action"),
    (_doc(operations={"o": {"action": "send", "channel": {"$ref": "#/channels/nope"}}}),
     "/operations/o/channel/$ref", "does not exist"),
    (_doc(operations={"o": {"action": "send", "channel": "c"}}), "/operations/o/channel", "$ref"),
    (_doc(channels={"c": {"address": "a.b", "messages": {"M": {"payload": {"type": "strin"}}}}}),
     "/channels/c/messages/M/payload/type", "not valid JSON Schema"),
    (_doc(channels={"c": {"address": "a.b", "messages": {"M": {"payload": {
        "type": "object", "properties": {"n": {"minimum": "zero"}}}}}}}),
     "/channels/c/messages/M/payload/properties/n/minimum", "not valid JSON Schema"),
    (_doc(channels={"c": {"address": "a.b", "messages": {"M": {"payload": {"$ref": "#/components/schemas/X"}}}}}),
     "/channels/c/messages/M/payload/$ref", "does not exist"),
])
def test_invalid_documents_name_file_pointer_and_problem(tmp_path: Path, doc: dict, pointer: str, words: str) -> None:
    p = _write(tmp_path, doc)
    with pytest.raises(ContractError) as info:
        contracts.load({"svc": [p]})
    err = info.value
    assert err.file == str(p)
    assert err.pointer == pointer
    assert words in err.problem
    assert str(p) in str(err) and pointer in str(err)
    assert "\n" not in str(err)


def test_yaml_syntax_error_has_line(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("asyncapi: 3.0.0\ninfo: [unclosed\n")
    with pytest.raises(ContractError, match=r"bad.yaml: is not valid YAML/JSON at line"):
        contracts.load({"svc": [p]})


def test_recursive_ref_is_reported(tmp_path: Path) -> None:
    doc = _doc(channels={"c": {"address": "a.b", "messages": {"M": {"payload": {"$ref": "#/components/schemas/T"}}}}},
               components={"schemas": {"T": {"type": "object", "properties": {"child": {"$ref": "#/components/schemas/T"}}}}})
    with pytest.raises(ContractError, match="recursive"):
        contracts.load({"svc": [_write(tmp_path, doc)]})


def test_operation_messages_must_belong_to_channel(tmp_path: Path) -> None:
    doc = _doc(operations={"o": {"action": "send", "channel": {"$ref": "#/channels/c"},
                                 "messages": [{"$ref": "#/channels/c/messages/Other"}]}})
    with pytest.raises(ContractError) as info:
        contracts.load({"svc": [_write(tmp_path, doc)]})
    assert info.value.pointer == "/operations/o/messages/0/$ref"


def test_missing_file_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(contracts.ContractSourceError, match="does not exist"):
        contracts.load({"svc": [tmp_path / "nope.yaml"]})


def test_plain_json_schema_sources(tmp_path: Path) -> None:
    (tmp_path / "defs.json").write_text(json.dumps({"Id": {"type": "string"}}))
    schema = tmp_path / "order_created.json"
    schema.write_text(json.dumps({"type": "object", "required": ["id"], "properties": {"id": {"$ref": "defs.json#/Id"}}}))
    cs = contracts.load({}, [SubjectSchema("orders.created", schema, producers=["order"], consumers=["billing"])])
    ch = cs.channels["orders.created"]
    assert ch.producers["order"][0].payload["properties"]["id"] == {"type": "string"}
    assert contracts.check(cs).ok


@pytest.mark.skipif(not EXAMPLE_SHOP.is_dir(), reason="example shop not present")
def test_example_shop_documents_load() -> None:
    cs = contracts.load_dir(EXAMPLE_SHOP)
    assert {"order", "payment", "inventory", "shipping"} <= set(cs.services)
    assert cs.sender_of("orders.created") == ["order"]


def _one_channel(title: str, action: str, payload: dict) -> str:
    return json.dumps({"asyncapi": "3.0.0", "info": {"title": title, "version": "1"},
                       "channels": {"c": {"address": "trips.legs", "messages": {"m": {"payload": payload}}}},
                       "operations": {"o": {"action": action, "channel": {"$ref": "#/channels/c"}}}})


def test_draft07_array_form_items_without_schema_keyword_load_and_are_decided(tmp_path: Path) -> None:
    """AsyncAPI's default schema format is a draft-07 superset: array-form items with additionalItems, and
    dependencies, are read as draft-07 (2020-12 would reject the array form, exit 2)."""
    (tmp_path / "p.json").write_text(_one_channel("p", "send", {
        "type": "array", "items": [{"type": "string"}, {"type": "integer"}], "additionalItems": False}))
    (tmp_path / "c.json").write_text(_one_channel("c", "receive", {
        "type": "array", "items": [{"type": "string"}, {"type": "number"}]}))
    cs = contracts.load({"p": [tmp_path / "p.json"], "c": [tmp_path / "c.json"]})
    payload = cs.channels["trips.legs"].producers["p"][0].payload
    assert payload["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert contracts.check(cs).ok
    (tmp_path / "c.json").write_text(_one_channel("c", "receive", {
        "type": "array", "items": [{"type": "string"}, {"type": "string"}]}))
    report = contracts.check(contracts.load({"p": [tmp_path / "p.json"], "c": [tmp_path / "c.json"]}))
    (err,) = report.errors
    assert err.verdict is not None and err.verdict.has_counterexample
    assert err.verdict.consumer_path == "/items/1/type"


def test_ref_to_an_anchor_in_another_file(tmp_path: Path) -> None:
    (tmp_path / "defs.json").write_text(json.dumps({"$defs": {"leg": {"$anchor": "leg", "type": "object",
                                                                      "required": ["from"]}}}))
    (tmp_path / "p.json").write_text(_one_channel("p", "send", {"type": "array", "items": {"$ref": "defs.json#leg"}}))
    cs = contracts.load({"p": [tmp_path / "p.json"]})
    assert cs.channels["trips.legs"].producers["p"][0].payload["items"]["required"] == ["from"]
    (tmp_path / "p.json").write_text(_one_channel("p", "send", {"$ref": "defs.json#nowhere"}))
    with pytest.raises(ContractError, match="neither a JSON pointer nor an \\$anchor"):
        contracts.load({"p": [tmp_path / "p.json"]})
