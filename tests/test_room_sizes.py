"""Readable rooms: tools/room_sizes.py (run by `make lint`) holds every module of the package to 600 lines and
every function to 80, except the ones it lists; ruff holds complexity (C901) and size in branches and
statements (PLR0912, PLR0915), configured in pyproject.toml."""

from __future__ import annotations

import importlib.util
import tomllib
from pathlib import Path

from tests.conftest import ROOT

spec = importlib.util.spec_from_file_location("room_sizes", ROOT / "tools" / "room_sizes.py")
assert spec is not None and spec.loader is not None
room_sizes = importlib.util.module_from_spec(spec)
spec.loader.exec_module(room_sizes)


def test_the_package_keeps_to_its_room_sizes():
    assert room_sizes.offences() == []


def test_a_long_module_and_a_long_function_are_offences(tmp_path: Path):
    (tmp_path / "harness").mkdir()
    body = "\n".join(f"    x{i} = {i}" for i in range(85))
    (tmp_path / "harness" / "big.py").write_text("def long():\n" + body + "\n" + "\n" * 600)
    found = room_sizes.offences(tmp_path)
    assert any(line.startswith("harness/big.py: 686 lines, more than 600") for line in found), found
    assert any(line.startswith("harness/big.py:long: 86 lines, more than 80") for line in found), found


def test_ruff_enforces_complexity_and_size():
    lint = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["ruff"]["lint"]
    assert {"C901", "PLR0912", "PLR0915"} <= set(lint["select"])
    assert lint["mccabe"]["max-complexity"] == 20
    assert "room_sizes.py" in (ROOT / "Makefile").read_text()
