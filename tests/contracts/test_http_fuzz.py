"""fuzz_openapi against a real HTTP server on 127.0.0.1 (stdlib, in a thread)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sagaproof.contracts.http_fuzz import fuzz_openapi

DOC: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "orders", "version": "1"},
    "paths": {"/orders": {"post": {
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["sku", "qty"],
            "properties": {"sku": {"type": "string"}, "qty": {"type": "integer"}}}}}},
        "responses": {
            "201": {"description": "created", "content": {"application/json": {"schema": {
                "type": "object", "required": ["order_id"], "properties": {"order_id": {"type": "string"}}}}}},
            "400": {"description": "bad request", "content": {"application/json": {"schema": {"type": "object"}}}},
        }}}},
}


class _Server:
    bug = ""

    def __init__(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, code: int, body: Any = None) -> None:
                self.send_response(code)
                if body is not None:
                    self.send_header("Content-Type", "application/json")
                data = json.dumps(body).encode() if body is not None else b""
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    d = json.loads(raw)
                except ValueError:
                    d = None
                if not isinstance(d, dict) or type(d.get("qty")) is not int or not isinstance(d.get("sku"), str):
                    return self._send(400, {"error": "bad request"})
                if owner.bug == "crash" and d["qty"] < 0:
                    return self._send(500)
                if owner.bug == "schema":
                    return self._send(201, {"id": 1})
                return self._send(201, {"order_id": "o-1"})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def server() -> Iterator[_Server]:
    s = _Server()
    yield s
    s.close()


def test_correct_service_passes(server: _Server) -> None:
    report = fuzz_openapi(server.url, DOC, max_examples=30, seed=1)
    assert report.ok, report.to_dict()
    assert report.operations == ["POST /orders"] and report.requests > 5


def test_server_error_is_found(server: _Server) -> None:
    server.bug = "crash"
    report = fuzz_openapi(server.url, DOC, max_examples=50, seed=1)
    assert not report.ok
    f = next(f for f in report.failures if f.check == "ServerError")
    assert f.status_code == 500 and f.operation == "POST /orders" and "curl" in f.curl


def test_nonconforming_response_is_found(server: _Server) -> None:
    server.bug = "schema"
    report = fuzz_openapi(server.url, DOC, max_examples=20, seed=1)
    assert not report.ok
    assert any(f.check == "JsonSchemaError" for f in report.failures), report.to_dict()


def test_missing_document_is_a_clear_error(tmp_path: Any) -> None:
    from sagaproof.contracts.errors import ContractSourceError

    with pytest.raises(ContractSourceError, match="does not exist"):
        fuzz_openapi("http://127.0.0.1:9", tmp_path / "openapi.json")
