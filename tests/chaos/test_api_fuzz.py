"""Schemathesis fuzzes the running server from its OpenAPI description: no 5xx, no hang, and every
response conforms to the documented status codes, content types, headers and schemas."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import requests
import sagaproof.chaos.toxiproxy as tp
import schemathesis
from chaos_testkit import Env
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# Operations whose body carries a listen address. The fuzzer must never make the server bind a
# non-loopback interface (our rule: `""` means all interfaces) nor a port in use (a legitimate 500),
# so any listen string it generates is replaced by "127.0.0.1:0" (Go matches keys case-insensitively).
BINDS = {
    ("POST", "/proxies"),
    ("POST", "/populate"),
    ("PATCH", "/proxies/{proxy}"),
    ("POST", "/proxies/{proxy}"),
}


def loopback_only(doc: dict[str, Any], upstream: str) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    for name in ("ProxyCreate", "ProxyPopulate", "ProxyUpdate"):
        props = doc["components"]["schemas"][name]["properties"]
        props["listen"] = {"const": "127.0.0.1:0"}
        props["upstream"] = {"const": upstream}
    return doc


def loopback_listen(body: Any) -> Any:
    if isinstance(body, list):
        return [loopback_listen(item) for item in body]
    if isinstance(body, dict):
        return {
            k: ("127.0.0.1:0" if k.lower() == "listen" and isinstance(v, str) else v) for k, v in body.items()
        }
    return body


def test_openapi_document_is_valid_json_and_complete() -> None:
    doc = json.loads(tp.openapi_path().read_text())
    assert doc["openapi"].startswith("3.1")
    enum = doc["components"]["schemas"]["ToxicCreate"]["properties"]["type"]["enum"]
    assert enum == tp.toxic_types()
    assert set(doc["paths"]) == {
        "/proxies",
        "/populate",
        "/proxies/{proxy}",
        "/proxies/{proxy}/toxics",
        "/proxies/{proxy}/toxics/{toxic}",
        "/reset",
        "/version",
    }


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_schemathesis_fuzz(env: Env, mode: str) -> None:
    doc = loopback_only(json.loads(tp.openapi_path().read_text()), env.echo_addr)
    schema = schemathesis.openapi.from_dict(doc)
    session = requests.Session()
    # Some named objects so that path parameters sometimes hit existing proxies and toxics.
    env.proxy("a")
    env.toxic("a", "latency", latency=1)
    generation = (
        schemathesis.GenerationMode.POSITIVE if mode == "positive" else schemathesis.GenerationMode.NEGATIVE
    )
    calls = 0
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(
            max_examples=25,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=generation))
        def run(case: schemathesis.Case) -> None:
            nonlocal calls
            calls += 1
            if (case.method.upper(), case.operation.path) in BINDS:
                case.body = loopback_listen(case.body)
            if (
                case.path_parameters
                and case.path_parameters.get("proxy") == "a"
                and case.method == "DELETE"
                and "toxic" not in case.path_parameters
            ):
                return  # keep the fixture proxy for later operations
            case.call_and_validate(base_url=env.url, session=session, checks=CHECKS, timeout=10)

        try:
            run()
        except Unsatisfiable:
            assert mode == "negative"  # nothing to make invalid (no parameters, no body)
    assert calls > 100
    assert env.api("GET", "/version").status_code == 200  # still serving
