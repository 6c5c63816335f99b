"""NATS subject patterns for contracts: the shared definitions in :mod:`sagaproof.subjects`."""

from __future__ import annotations

from sagaproof.subjects import address_to_pattern, is_valid_pattern, matches, overlaps

__all__ = ["address_to_pattern", "is_valid_pattern", "matches", "overlaps"]
