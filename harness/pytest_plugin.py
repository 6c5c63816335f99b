"""The sagaproof pytest plugin (registered through the ``pytest11`` entry point).

``--sagaproof-system DIR`` (or the ``sagaproof_system`` ini key) names the system under test; the
session-scoped ``sagaproof_system`` fixture brings it up once, hands tests the running-system handle
(:class:`harness.system.System`: ``.services[name]`` with kill/pause/restart and ``.http``, ``.nats_url``,
``.chaos`` fault context managers, ``.start_sagas(n)``, ``.eventually(...)``, ``.mark()``, ``.history()`` and
``.check_sagas()``), and tears it
down at the end of the session. Service logs are written to a scratch directory and copied next to the
test run (``--sagaproof-logs``, default ``.sagaproof/failed-logs/<test>``) only for tests that failed.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sagaproof.harness.errors import SagaproofError

_SYSTEM_KEY = pytest.StashKey[Any]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("sagaproof", "sagaproof: contract and chaos testing of choreographed services")
    group.addoption("--sagaproof-system", action="store", default=None, metavar="DIR",
                    help="directory holding the sagaproof.toml of the system under test")
    group.addoption("--sagaproof-logs", action="store", default=".sagaproof/failed-logs", metavar="DIR",
                    help="where the service logs of failed tests are copied (default .sagaproof/failed-logs)")
    group.addoption("--sagaproof-chaos-links", action="store_true", default=False,
                    help="route each service through its own fault proxy so tests can inject network faults")
    parser.addini("sagaproof_system", "directory holding the sagaproof.toml of the system under test", default="")
    parser.addini("sagaproof_chaos_links", "route services through fault proxies (true/false)", default="false")


def _system_dir(config: pytest.Config) -> str:
    value = config.getoption("--sagaproof-system") or config.getini("sagaproof_system")
    if not value:
        raise pytest.UsageError(
            "the sagaproof_system fixture needs a system: pass --sagaproof-system DIR or set "
            "`sagaproof_system = DIR` in the [pytest] ini section.")
    return str(value)


@pytest.fixture(scope="session")
def sagaproof_system(request: pytest.FixtureRequest) -> Iterator[Any]:
    """The running system under test, brought up once per session."""
    from sagaproof.harness.config import load_system_file
    from sagaproof.harness.system import System

    config = request.config
    try:
        spec = load_system_file(_system_dir(config))
    except SagaproofError as exc:
        raise pytest.UsageError(str(exc)) from None
    chaos_links = config.getoption("--sagaproof-chaos-links") or str(config.getini("sagaproof_chaos_links")).lower() in (
        "1", "true", "yes")
    scratch = Path(tempfile.mkdtemp(prefix="sagaproof-pytest-"))
    system = System(spec, report_dir=scratch, chaos_links=chaos_links)
    try:
        system.start()
    except SagaproofError as exc:
        shutil.rmtree(scratch, ignore_errors=True)
        pytest.fail(f"sagaproof could not bring the system up: {exc}", pytrace=False)
    system.start_recording()
    config.stash[_SYSTEM_KEY] = system
    try:
        yield system
    finally:
        config.stash[_SYSTEM_KEY] = None
        system.close()
        shutil.rmtree(scratch, ignore_errors=True)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.failed and report.when in ("setup", "call"):
        system = item.config.stash.get(_SYSTEM_KEY, None)
        if system is not None and system.log_dir.is_dir():
            safe = re.sub(r"[^\w.-]+", "_", item.nodeid)[:150]
            dest = Path(item.config.getoption("--sagaproof-logs")) / safe
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(system.log_dir, dest)
            report.sections.append(("sagaproof logs", f"service and NATS logs of this failure: {dest.resolve()}"))
    return report
