"""sagaproof: contract tests and chaos runs for choreographed services over NATS.

This module is the harness's public API: every name in ``__all__`` is what the documentation tells users to
import, and the only harness names whose signatures are kept stable from one version to the next. The
harness's floors (``sagaproof.harness.*``) are internal and change freely. The two parts that stand alone
have their own public modules: ``sagaproof.contracts`` (event contracts) and ``sagaproof.chaos`` (the fault
proxy and the nemesis).

Names are loaded on first use, so ``import sagaproof`` stays cheap::

    import sagaproof

    spec = sagaproof.load_system("examples/shop")           # the system file, validated
    code, result = sagaproof.run(spec, sagaproof.RunOptions(seed=1))

    @sagaproof.register_check                               # a check of your own (docs/extending.md)
    def no_poison(ctx: sagaproof.CheckContext) -> Iterator[sagaproof.CheckOutcome]: ...
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# name -> "module:attribute"; tests/test_public_api.py checks that this table and __all__ agree, that every
# entry resolves, and that the docs import exactly these names.
_EXPORTS: dict[str, str] = {
    # the system and a run
    "load_system": "sagaproof.harness.config:load_system_file",
    "SystemSpec": "sagaproof.harness.config:SystemSpec",
    "System": "sagaproof.harness.env.system:System",
    "Service": "sagaproof.harness.env.system:Service",
    "run": "sagaproof.harness.session.engine:run",
    "RunOptions": "sagaproof.harness.session.engine:RunOptions",
    "RunResult": "sagaproof.harness.checks.results:RunResult",
    "main": "sagaproof.harness.front.cli:main",
    # pytest
    "SessionHandle": "sagaproof.harness.session.handle:SessionHandle",
    "ChecksResult": "sagaproof.harness.session.handle:ChecksResult",
    # checks, and extending them
    "check_history": "sagaproof.harness.checks.checker:check_history",
    "CheckResult": "sagaproof.harness.checks.checker:CheckResult",
    "SagaViolation": "sagaproof.harness.checks.checker:SagaViolation",
    "check_broker": "sagaproof.harness.checks.consumption:check_broker",
    "receives_from_contracts": "sagaproof.harness.checks.consumption:receives_from_contracts",
    "register_check": "sagaproof.harness.checks:register_check",
    "CheckContext": "sagaproof.harness.checks:CheckContext",
    "Window": "sagaproof.harness.checks:Window",
    "CheckOutcome": "sagaproof.harness.checks.results:CheckOutcome",
    "Finding": "sagaproof.harness.checks.findings:Finding",
    # fault kinds of your own
    "register_fault_kind": "sagaproof.faultkinds:register_fault_kind",
    "CustomFault": "sagaproof.faultkinds:CustomFault",
    # the history and the reports
    "HistoryReader": "sagaproof.harness.history:HistoryReader",
    "read_records": "sagaproof.harness.history:read_records",
    "Event": "sagaproof.harness.events:Event",
    "write_reports": "sagaproof.harness.report:write_reports",
    # errors
    "SagaproofError": "sagaproof.harness.errors:SagaproofError",
    "ConfigError": "sagaproof.harness.errors:ConfigError",
    "EnvironmentStartError": "sagaproof.harness.errors:EnvironmentStartError",
    "ServiceCrashed": "sagaproof.harness.errors:ServiceCrashed",
    "FaultError": "sagaproof.harness.errors:FaultError",
}

__all__ = [
    "CheckContext",
    "CheckOutcome",
    "CheckResult",
    "ChecksResult",
    "ConfigError",
    "CustomFault",
    "EnvironmentStartError",
    "Event",
    "FaultError",
    "Finding",
    "HistoryReader",
    "RunOptions",
    "RunResult",
    "SagaViolation",
    "SagaproofError",
    "Service",
    "ServiceCrashed",
    "SessionHandle",
    "System",
    "SystemSpec",
    "Window",
    "__version__",
    "check_broker",
    "check_history",
    "load_system",
    "main",
    "read_records",
    "receives_from_contracts",
    "register_check",
    "register_fault_kind",
    "run",
    "write_reports",
]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and editors only
    from sagaproof.faultkinds import CustomFault, register_fault_kind
    from sagaproof.harness.checks import CheckContext, Window, register_check
    from sagaproof.harness.checks.checker import CheckResult, SagaViolation, check_history
    from sagaproof.harness.checks.consumption import check_broker, receives_from_contracts
    from sagaproof.harness.checks.findings import Finding
    from sagaproof.harness.checks.results import CheckOutcome, RunResult
    from sagaproof.harness.config import SystemSpec
    from sagaproof.harness.config import load_system_file as load_system
    from sagaproof.harness.env.system import Service, System
    from sagaproof.harness.errors import (
        ConfigError,
        EnvironmentStartError,
        FaultError,
        SagaproofError,
        ServiceCrashed,
    )
    from sagaproof.harness.events import Event
    from sagaproof.harness.front.cli import main
    from sagaproof.harness.history import HistoryReader, read_records
    from sagaproof.harness.report import write_reports
    from sagaproof.harness.session.engine import RunOptions, run
    from sagaproof.harness.session.handle import ChecksResult, SessionHandle


def __getattr__(name: str) -> object:
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module 'sagaproof' has no attribute {name!r}")
    module_name, _, attr = target.partition(":")
    value: object = getattr(importlib.import_module(module_name), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
