"""Paths and small helpers shared by the contracts tests."""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"
SHOP_FIXTURE = FIXTURES / "shop"
EXAMPLE_SHOP = Path(__file__).resolve().parents[2] / "examples" / "shop" / "contracts"
SHOP_SERVICES = ("order", "payment", "inventory", "shipping")
