"""Shared fixtures for the contracts tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from contracts_testkit import SHOP_FIXTURE


@pytest.fixture
def shop_copy(tmp_path: Path) -> Path:
    """A writable copy of the fixture shop's contracts."""
    dst = tmp_path / "shop"
    shutil.copytree(SHOP_FIXTURE, dst)
    return dst
