"""LiveValidator: validation of live messages by subject."""

from __future__ import annotations

import json

from contracts_testkit import SHOP_FIXTURE

from sagaproof import contracts

GOOD = {"order_id": "2a0f19e1-1655-5703-aedb-03bbff5171e1", "customer": "c", "total": {"amount": 1, "currency": "EUR"},
        "items": [{"sku": "A", "qty": 1}]}


def _lv() -> contracts.LiveValidator:
    return contracts.LiveValidator(contracts.load_dir(SHOP_FIXTURE))


def test_valid_message_has_no_violation() -> None:
    assert _lv().validate("orders.created", json.dumps(GOOD).encode(), {"correlation-id": "x"}) == []


def test_violation_names_subject_producer_pointer_and_message() -> None:
    bad = {**GOOD, "items": [{"sku": "A", "qty": 0}]}
    payload = json.dumps(bad).encode()
    [v] = _lv().validate("orders.created", payload, None)
    assert (v.subject, v.producer, v.pointer, v.kind) == ("orders.created", "order", "/items/0/qty", "schema")
    assert "minimum" in v.schema_path and v.payload == payload and "0" in v.message
    assert v.to_dict()["payload"] == bad


def test_wildcard_subject_and_format_assertion() -> None:
    lv = _lv()
    ok = {"order_id": "2a0f19e1-1655-5703-aedb-03bbff5171e1", "payment_id": "p"}
    assert lv.validate("payments.refunded", json.dumps(ok).encode(), None) == []
    [v] = lv.validate("payments.refunded", json.dumps({**ok, "order_id": "nope"}).encode(), None)
    assert v.pointer == "/order_id" and v.producer == "payment"


def test_undeclared_subject_and_non_json() -> None:
    lv = _lv()
    [v] = lv.validate("audit.log", b"{}", None)
    assert v.kind == "undeclared" and v.producer is None
    [v] = lv.validate("orders.created", b"not json", None, producer="order")
    assert v.kind == "not-json" and v.producer == "order"
    [v] = lv.validate("orders.created", b'{"order_id": "\xc3\x28"}', None)  # not UTF-8: a violation, not a crash
    assert v.kind == "not-json" and "utf-8" in v.message
    assert v.to_dict()["payload"] == '{"order_id": "\ufffd("}'


def test_headers_are_checked_when_declared() -> None:
    [v] = _lv().validate("orders.created", json.dumps(GOOD).encode(), {"correlation-id": 5})  # type: ignore[dict-item]
    assert v.kind == "headers" and v.pointer == "/correlation-id"


def test_quick_check_agrees_with_validate() -> None:
    """The recorder's per-subject shortcut: True only where validate() finds nothing; None where it cannot say."""
    lv = _lv()
    ok = {"order_id": "2a0f19e1-1655-5703-aedb-03bbff5171e1", "payment_id": "p"}
    quick = lv.quick("payments.refunded")
    assert quick is not None
    for body in (ok, {**ok, "order_id": "nope"}, {"payment_id": "p"}, [], None, "x", {**ok, "extra": 1}):
        assert quick(body) == (lv.validate("payments.refunded", json.dumps(body).encode(), None, body=body) == [])
    assert quick({**ok, "order_id": "nope"}) is False
    assert lv.quick("orders.created") is None  # a headers schema: validate() checks the headers too
    assert lv.quick("audit.log") is None  # undeclared: a violation


def test_a_body_parsed_by_the_caller_gives_the_same_violations() -> None:
    lv = _lv()
    bad = {**GOOD, "items": [{"sku": "A", "qty": 0}]}
    payload = json.dumps(bad).encode()
    assert lv.validate("orders.created", payload, None, body=bad) == lv.validate("orders.created", payload, None)
