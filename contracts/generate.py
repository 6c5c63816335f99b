"""Property-based generation of JSON values from a JSON Schema, and counterexample search.

Generation goes through schemathesis's public API: the schema becomes the JSON request body of a
one-operation OpenAPI 3.1 document and each drawn case's body is a value (hypothesis-jsonschema is broken
with the current hypothesis). Searches are deterministic (``derandomize``) and bounded in examples.

Nothing is written into the working directory: hypothesis keeps no example database here (``database=None``)
and its other files (character tables, collected constants) go to a directory under the system's temporary
directory while a search runs, unless ``HYPOTHESIS_STORAGE_DIRECTORY`` names one. Hypothesis's own setting is
restored afterwards, so a user's hypothesis tests in the same process keep their ``.hypothesis/`` folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema_rs
from hypothesis import HealthCheck, Phase, find, settings
from hypothesis import strategies as st
from hypothesis.errors import NoSuchExample, Unsatisfiable

__all__ = ["NOT_FOUND", "compile_validator", "from_schema", "search"]

NOT_FOUND = object()
"""Returned by :func:`search` when no value satisfies the condition within the budget."""


def _key(schema: Any) -> str:
    return json.dumps(schema, sort_keys=True, default=str)


@lru_cache(maxsize=4096)
def _validator(key: str) -> Any:
    return jsonschema_rs.validator_for(json.loads(key), validate_formats=True)


def compile_validator(schema: Any) -> Any:
    """A cached jsonschema-rs validator for *schema* with format assertion on."""
    return _validator(_key(schema))


@lru_cache(maxsize=1024)
def _strategy(key: str) -> st.SearchStrategy[Any]:
    import schemathesis  # heavy import, only when generation is used

    schema = json.loads(key)
    if schema is True:
        schema = {}
    doc = {
        "openapi": "3.1.0",
        "info": {"title": "sagaproof message", "version": "1"},
        "paths": {"/m": {"post": {
            "requestBody": {"required": True, "content": {"application/json": {"schema": schema}}},
            "responses": {"200": {"description": "ok"}},
        }}},
    }
    strategy = schemathesis.openapi.from_dict(doc)["/m"]["POST"].as_strategy()
    validator = _validator(key)
    # Schemathesis generates positive cases; the filter guards against the odd value its generator
    # produces that the (format-asserting) validator rejects.
    return strategy.map(lambda case: case.body).filter(validator.is_valid)


def from_schema(schema: Any) -> st.SearchStrategy[Any]:
    """A hypothesis strategy of values valid under *schema* (cached per schema)."""
    return _strategy(_key(schema))


def _storage_dir() -> Path:
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    return Path(tempfile.gettempdir()) / f"sagaproof-hypothesis-{uid}"


@contextlib.contextmanager
def _own_storage() -> Iterator[None]:
    """Point hypothesis's storage directory (default ``./.hypothesis``) away from the working directory."""
    if os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
        yield
        return
    from hypothesis import configuration

    # hypothesis has a setter but no getter: read its module global to restore it afterwards.
    before = vars(configuration).get("__hypothesis_home_directory")
    configuration.set_hypothesis_home_dir(_storage_dir())
    try:
        yield
    finally:
        configuration.set_hypothesis_home_dir(before)


def search(schema: Any, condition: Any, *, max_examples: int = 100, shrink: bool = True) -> Any:
    """Find a small value valid under *schema* for which ``condition(value)`` is true, or ``NOT_FOUND``.

    Deterministic: the same schema and condition give the same value on every run.
    """
    if schema is False:
        return NOT_FOUND
    phases = [Phase.generate, Phase.shrink] if shrink else [Phase.generate]
    cfg = settings(max_examples=max_examples, derandomize=True, database=None, deadline=None,
                   suppress_health_check=list(HealthCheck), phases=phases, report_multiple_bugs=False)

    def safe(value: Any) -> bool:
        try:
            return bool(condition(value))
        except Exception:  # a condition that crashes on odd input is not a counterexample
            return False

    try:
        with _own_storage():
            return find(from_schema(schema), safe, settings=cfg)
    except (NoSuchExample, Unsatisfiable):
        return NOT_FOUND
    except Exception:  # schemathesis may refuse a schema it cannot generate from
        return NOT_FOUND
