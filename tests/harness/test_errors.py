"""One error contract: errors of `contracts` and `chaos` become the harness's errors in one place."""

from __future__ import annotations

import ast

import pytest
from sagaproof.chaos.errors import ChaosError
from sagaproof.contracts.errors import ContractError
from sagaproof.harness.errors import (
    EXIT_ENVIRONMENT,
    EXIT_USAGE,
    ConfigError,
    EnvironmentStartError,
    FaultError,
    boundary,
    translate,
)

from tests.conftest import ROOT


def test_translate_maps_each_package_error_to_the_harness_error_for_what_was_being_done():
    bad_doc = ContractError("c.yaml", "/channels/x", "has no address")
    assert isinstance(translate(bad_doc, "environment"), ConfigError)
    assert translate(bad_doc, "fault").exit_code == EXIT_USAGE
    refused = ChaosError("proxy 'payment' not found", status=404)
    assert type(translate(refused, "config")) is ConfigError
    assert type(translate(refused, "environment")) is EnvironmentStartError
    assert type(translate(refused, "fault")) is FaultError and translate(refused, "fault").exit_code == EXIT_ENVIRONMENT
    assert translate(ValueError("x"), "config") is None


def test_the_boundary_translates_and_lets_everything_else_through():
    with pytest.raises(FaultError, match="proxy 'payment' not found"):
        with boundary("fault"):
            raise ChaosError("proxy 'payment' not found")
    with pytest.raises(KeyError):
        with boundary("fault"):
            raise KeyError("not ours")


def test_no_module_of_the_harness_translates_those_errors_on_its_own():
    """An `except ChaosError/ContractsError` that raises a harness error is a translation: only harness.errors
    makes those (a handler that only decides what to do next, e.g. "not supported", is not one)."""
    names = {"ChaosError", "ContractsError", "ContractError", "ContractSourceError"}
    harness_errors = {"SagaproofError", "ConfigError", "EnvironmentStartError", "ServiceCrashed", "FaultError"}
    offenders = []
    for path in sorted((ROOT / "harness").rglob("*.py")):
        if path.name == "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ExceptHandler) and node.type is not None:
                caught = {n.attr if isinstance(n, ast.Attribute) else getattr(n, "id", "") for n in ast.walk(node.type)}
                raised = {getattr(getattr(r.exc, "func", None), "id", "") for b in node.body for r in ast.walk(b)
                          if isinstance(r, ast.Raise) and r.exc is not None}
                if caught & names and raised & harness_errors:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == [], "translate through harness.errors.boundary instead"
