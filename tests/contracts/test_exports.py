"""The public API of the contracts package is explicit and complete."""

from __future__ import annotations

from sagaproof import contracts


def test_all_is_sorted_and_resolves() -> None:
    assert contracts.__all__ == sorted(contracts.__all__, key=str)
    for name in contracts.__all__:
        assert getattr(contracts, name) is not None
