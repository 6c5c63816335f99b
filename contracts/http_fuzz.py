"""Fuzzing a service's HTTP entry points from its OpenAPI document with schemathesis.

For every operation, schemathesis generates requests (bounded, deterministic with a seed); each response
is checked: no 5xx (``not_a_server_error``) and the response conforms to the document (status code,
content type, body schema, headers). Failures are collected as data, one per distinct (operation, check).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sagaproof.contracts.errors import ContractSourceError

__all__ = ["FuzzFailure", "FuzzReport", "fuzz_openapi"]


@dataclass
class FuzzFailure:
    """One failed check, with the request that reproduces it."""

    operation: str
    check: str
    title: str
    message: str
    curl: str
    status_code: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"operation": self.operation, "check": self.check, "title": self.title, "message": self.message,
                "curl": self.curl, "status_code": self.status_code}


@dataclass
class FuzzReport:
    """The result of :func:`fuzz_openapi`. ``ok`` when no check failed and no request errored."""

    base_url: str
    operations: list[str] = field(default_factory=list)
    requests: int = 0
    failures: list[FuzzFailure] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures and not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "base_url": self.base_url, "operations": self.operations, "requests": self.requests,
                "failures": [f.to_dict() for f in self.failures], "errors": self.errors}


def _load(openapi: str | Path | dict[str, Any]) -> Any:
    import schemathesis

    try:
        if isinstance(openapi, dict):
            return schemathesis.openapi.from_dict(openapi)
        text = str(openapi)
        if text.startswith(("http://", "https://")):
            return schemathesis.openapi.from_url(text)
        if not Path(text).is_file():
            raise ContractSourceError(f"OpenAPI document {text} does not exist; check the service's openapi setting.")
        return schemathesis.openapi.from_path(text)
    except ContractSourceError:
        raise
    except Exception as exc:
        raise ContractSourceError(f"OpenAPI document {openapi if not isinstance(openapi, dict) else '(dict)'} "
                                  f"cannot be loaded: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc


def fuzz_openapi(base_url: str, openapi: str | Path | dict[str, Any], *, max_examples: int = 50, seed: int = 0,
                 timeout: float = 5.0) -> FuzzReport:
    """Fuzz every operation of *openapi* against the running service at *base_url*.

    Args:
        base_url: e.g. ``http://127.0.0.1:8080``.
        openapi: a URL, a file path, or the document as a dict.
        max_examples: generated requests per operation (upper bound).
        seed: hypothesis seed; the same seed sends the same requests.
        timeout: per-request timeout in seconds.

    Returns:
        A :class:`FuzzReport` with one failure per distinct (operation, check).

    Raises:
        ContractSourceError: the document cannot be loaded.
    """
    import requests
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hseed
    from schemathesis import checks
    from schemathesis.core.failures import Failure, FailureGroup

    schema = _load(openapi)
    report = FuzzReport(base_url=base_url)
    wanted = [checks.not_a_server_error, checks.response_schema_conformance, checks.status_code_conformance,
              checks.content_type_conformance, checks.response_headers_conformance]
    session = requests.Session()
    for result in schema.get_all_operations():
        try:
            op = result.ok()
        except Exception as exc:
            report.errors.append(f"operation cannot be used: {exc}")
            continue
        label = op.label
        report.operations.append(label)
        seen: set[tuple[str, str]] = set()

        def record(f: Any, case: Any, status: int | None, label: str = label, seen: set[tuple[str, str]] = seen) -> None:
            key = (type(f).__name__, getattr(f, "title", ""))
            if key in seen:
                return
            seen.add(key)
            report.failures.append(FuzzFailure(label, type(f).__name__, getattr(f, "title", str(f)),
                                               getattr(f, "message", "") or "", case.as_curl_command(), status))

        @hseed(seed)
        @settings(max_examples=max_examples, database=None, deadline=None, derandomize=False,
                  suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
        @given(case=op.as_strategy())
        def run(case: Any) -> None:
            report.requests += 1
            try:
                response = case.call(base_url=base_url, session=session, timeout=timeout)
            except requests.RequestException as exc:
                report.errors.append(f"{case.operation.label}: request failed: {type(exc).__name__}: {exc}")
                return
            try:
                case.validate_response(response, checks=wanted)
            except FailureGroup as group:
                for f in group.exceptions:
                    record(f, case, response.status_code)  # noqa: B023 - run() is called in this iteration
            except Failure as f:
                record(f, case, response.status_code)  # noqa: B023

        try:
            run()
        except Exception as exc:  # a generation problem in this operation; report it, go on with the others
            report.errors.append(f"{label}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    session.close()
    return report
