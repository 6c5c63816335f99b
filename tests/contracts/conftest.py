"""Shared fixtures for the contracts tests."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

# With pytest's default "prepend" import mode, tests/ lands on sys.path and this directory (tests/contracts,
# no __init__.py) would shadow the real `contracts` package as a namespace package when pytest is run as a
# script. Put the repository root first so `import contracts` is always the product.
_ROOT = Path(__file__).resolve().parents[2]
if sys.path[:1] != [str(_ROOT)]:
    sys.path.insert(0, str(_ROOT))
if getattr(sys.modules.get("contracts"), "__file__", "") is None:
    del sys.modules["contracts"]

from contracts_testkit import SHOP_FIXTURE  # noqa: E402


@pytest.fixture
def shop_copy(tmp_path: Path) -> Path:
    """A writable copy of the fixture shop's contracts."""
    dst = tmp_path / "shop"
    shutil.copytree(SHOP_FIXTURE, dst)
    return dst
