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
EXAMPLES_LIB = ROOT / "examples" / "_lib"
PYTHON = sys.executable
SAGAPROOF = [sys.executable, "-m", "sagaproof"]


def copy_example(src: Path, dest: Path, *ignore: str) -> Path:
    """Copy an example's directory to `dest` (leaving out `ignore` patterns), with the examples' service kit
    (examples/_lib) beside it, where the example's services look for it; returns `dest`."""
    import shutil

    shutil.copytree(src, dest, ignore=shutil.ignore_patterns(*ignore) if ignore else None)
    if not (dest.parent / "_lib").exists():
        shutil.copytree(EXAMPLES_LIB, dest.parent / "_lib", ignore=shutil.ignore_patterns("__pycache__"))
    return dest


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


# A suite started in the background by a non-interactive shell inherits SIGINT ignored, and every process the
# tests start would inherit that too: the Ctrl-C tests would then fail for want of a Ctrl-C. The tests stand for
# a person at a terminal, so the children get SIGINT's default (a Python handler is reset to it on exec).
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


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
# Whole runs inside otherwise quick modules (each starts a system and runs sagas: 10 to 35 s apiece).
SLOW_TESTS = {
    "tests/harness/test_engine_events.py::test_a_run_whose_faults_could_not_be_injected_does_not_pass",
    "tests/harness/test_shards.py::test_interrupting_a_sharded_run_stops_every_seed_and_everything_they_started",
    "tests/harness/test_replay.py::test_a_bug_exported_in_the_shell_is_replayed_exactly_into_a_new_report",
    "tests/harness/test_replay.py::test_a_run_failed_through_a_targeted_fault_replays_the_same_way",
    "tests/harness/test_plugin.py::test_what_the_engine_gives_a_test_on_the_shop",
    "tests/harness/test_extending.py::test_run_seeds_and_replay_run_the_projects_check_and_fault",
    "tests/harness/test_plugin.py::test_a_live_contract_violation_fails_the_test_and_the_session_leaves_a_report",
    "tests/harness/test_contracts_cli.py::test_diff_base_directory_may_be_the_systems_directory_or_the_repository_root",
    "tests/shop/test_pacts_consumers.py::test_consumer_pact_tests_write_the_committed_pacts",
}


def _uses_module_setup(item: pytest.Item) -> bool:
    """True if the test uses a fixture set up once per module (or package) rather than once per test."""
    info = getattr(item, "_fixtureinfo", None)
    return info is not None and any(defs[-1].scope in ("module", "package") for defs in info.name2fixturedefs.values())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    shared: dict[pytest.Item, str] = {}  # tests that use a module's set-up, and their module
    for item in items:
        path = Path(item.fspath).relative_to(ROOT).as_posix()
        if path in SLOW_MODULES or f"{path}::{item.originalname}" in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)
        if _uses_module_setup(item):
            shared[item] = path
    # The whole runs first, so the two workers end together rather than one finishing a long run alone at the end.
    # (A module's tests that share its set-up move together, so a worker that runs them in turn makes it once.)
    slow_shared = {path for item, path in shared.items() if item.get_closest_marker("slow")}
    items.sort(key=lambda item: not (item.get_closest_marker("slow") or shared.get(item) in slow_shared))
    # A renamed test must not fall silently into the fast tier: every SLOW_TESTS entry whose module was
    # collected whole must name a test in it.
    names = {f"{Path(i.fspath).relative_to(ROOT).as_posix()}::{i.originalname}" for i in items}
    modules = {n.split("::")[0] for n in names}
    stale = sorted(t for t in SLOW_TESTS if t.split("::")[0] in modules and t not in names
                   and not config.option.keyword and not config.option.deselect)
    if stale and all("::" not in a for a in config.args):
        raise pytest.UsageError(f"tests/conftest.py SLOW_TESTS names tests that do not exist: {', '.join(stale)}")
