"""sagaproof: contract tests and chaos runs for choreographed services over NATS.

This is the one top-level name the distribution installs. The three parts of the product are
``sagaproof.harness`` (the conductor: system file, environment, run loop, checks, reports, CLI and
pytest plugin), ``sagaproof.contracts`` (event contracts) and ``sagaproof.chaos`` (faults).

What a user imports is re-exported here (loaded on first use, so ``import sagaproof`` stays cheap)::

    import sagaproof

    spec = sagaproof.load_system("examples/shop")           # the system file, validated
    with sagaproof.System(spec, report_dir) as system:      # the running-system handle
        ...
    code, result = sagaproof.run(spec, sagaproof.RunOptions(seed=1))
    result = sagaproof.check_history(records, spec.sagas, healed_at=0.0)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> "module:attribute"; the test suite checks that this table and __all__ agree and that every
# entry resolves.
_EXPORTS: dict[str, str] = {
    "load_system": "sagaproof.harness.config:load_system_file",
    "SystemSpec": "sagaproof.harness.config:SystemSpec",
    "System": "sagaproof.harness.env.system:System",
    "Service": "sagaproof.harness.env.system:Service",
    "run": "sagaproof.harness.session.runner:run",
    "RunOptions": "sagaproof.harness.session.runner:RunOptions",
    "check_history": "sagaproof.harness.checks.checker:check_history",
    "CheckResult": "sagaproof.harness.checks.checker:CheckResult",
    "SagaViolation": "sagaproof.harness.checks.checker:SagaViolation",
    "SagaproofError": "sagaproof.harness.errors:SagaproofError",
    "ConfigError": "sagaproof.harness.errors:ConfigError",
    "EnvironmentStartError": "sagaproof.harness.errors:EnvironmentStartError",
    "ServiceCrashed": "sagaproof.harness.errors:ServiceCrashed",
    "main": "sagaproof.harness.front.cli:main",
}

__all__ = [
    "CheckResult",
    "ConfigError",
    "EnvironmentStartError",
    "RunOptions",
    "SagaViolation",
    "SagaproofError",
    "Service",
    "ServiceCrashed",
    "System",
    "SystemSpec",
    "__version__",
    "check_history",
    "load_system",
    "main",
    "run",
]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and editors only
    from sagaproof.harness.checks.checker import CheckResult, SagaViolation, check_history
    from sagaproof.harness.config import SystemSpec
    from sagaproof.harness.config import load_system_file as load_system
    from sagaproof.harness.env.system import Service, System
    from sagaproof.harness.errors import ConfigError, EnvironmentStartError, SagaproofError, ServiceCrashed
    from sagaproof.harness.front.cli import main
    from sagaproof.harness.session.runner import RunOptions, run


def __getattr__(name: str) -> Any:
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module 'sagaproof' has no attribute {name!r}")
    module_name, _, attr = target.partition(":")
    value = getattr(importlib.import_module(module_name), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
