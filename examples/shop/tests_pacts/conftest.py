"""Fixtures of the shop's consumer pact tests: ``service(name)`` loads a shop service on a fresh store."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest
from consumer_kit import load_service


@pytest.fixture
def service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], ModuleType]]:
    """``service("payment")`` imports payment.py with its SQLite store under this test's tmp_path."""
    # load_service sets these in os.environ; monkeypatch puts back (or removes) what was there before.
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SHOP_SHIPPING_DELAY_MS", "0")
    monkeypatch.delenv("SHOP_BUG", raising=False)
    loaded: list[ModuleType] = []

    def load(name: str) -> ModuleType:
        module = load_service(name, tmp_path / name)
        loaded.append(module)
        return module

    yield load
    for module in loaded:
        module.service.db.close()
