"""Shared helpers for the test suite: paths of the fixture systems and a way to write variants of them."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
MINI = ROOT / "tests" / "fixtures" / "mini"
SHOP = ROOT / "examples" / "shop"
PYTHON = sys.executable
SAGAPROOF = [sys.executable, "-m", "sagaproof"]


def pid_alive(pid: int) -> bool:
    """True if a process with this pid exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as any server would; TIME_WAIT is not "in use"
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


@pytest.fixture
def mini_dir(tmp_path: Path):
    """A writable copy of the mini system, so a test can edit its sagaproof.toml."""
    import shutil

    d = tmp_path / "mini"
    shutil.copytree(MINI, d)
    return d


def kill_group_quietly(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# Whole-run end-to-end modules: `make check` (the inner loop, `-m "not slow"`) leaves them out; `make test` runs
# everything. One list here rather than a marker in each file, so the fast tier is defined in one place.
SLOW_MODULES = {
    "tests/harness/test_run.py",
    "tests/harness/test_broker_run.py",
    "tests/test_ci_recipes.py",
    "tests/shop/test_bugs.py",
    "tests/shop/test_clean_shop.py",
    "tests/trips/test_trips_run.py",
    "tests/trips/test_trips_bugs.py",
    "tests/contracts/test_verify_pacts_cli.py",
    "tests/chaos/test_api_fuzz.py",
    "tests/contracts/test_http_fuzz.py",
    "tests/test_packaging.py",
    "tests/harness/test_sharded_run.py",
    "tests/harness/test_attach.py",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if Path(item.fspath).relative_to(ROOT).as_posix() in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
