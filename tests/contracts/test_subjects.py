"""NATS subject pattern matching and overlap."""

from __future__ import annotations

import pytest
from sagaproof.contracts.subjects import address_to_pattern, is_valid_pattern, matches, overlaps


@pytest.mark.parametrize(("pattern", "subject", "expected"), [
    ("orders.created", "orders.created", True),
    ("orders.*", "orders.created", True),
    ("orders.*", "orders.created.v2", False),
    ("orders.>", "orders.created.v2", True),
    ("orders.>", "orders", False),
    ("*.created", "payments.created", True),
    ("orders.created", "orders.cancelled", False),
])
def test_matches(pattern: str, subject: str, expected: bool) -> None:
    assert matches(pattern, subject) is expected


def test_overlaps_between_patterns() -> None:
    assert overlaps("orders.*", "*.created")
    assert overlaps("orders.>", "orders.*.x")
    assert not overlaps("orders.*", "payments.>")


def test_address_parameters_become_wildcards_and_validity() -> None:
    assert address_to_pattern("orders.{id}.status") == "orders.*.status"
    assert is_valid_pattern("a.*.>")
    assert not is_valid_pattern("a.>.b")
    assert not is_valid_pattern("a..b")
    assert not is_valid_pattern("a b")
