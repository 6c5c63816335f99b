"""The client's view: each start request of the workload becomes an operation record (invoked, completed,
ok / fail / unknown, the saga and its key), against a real HTTP entry point on loopback."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any

import pytest
from sagaproof.harness.checks.checker import check_history
from sagaproof.harness.config import SagaSpec, StepSpec, WorkloadSpec
from sagaproof.harness.env.http import ServiceHTTP
from sagaproof.harness.session.workload import Workload, http_sender, request_key

SAGA = SagaSpec("booking", "data.trip_id", "trip.requested", ("trip.confirmed",), (),
                (StepSpec("charge", "payments", "payment.charged"),), deadline=5.0)


class Recorder:
    """What the workload needs of the run's recorder: add(record) and now()."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.t0 = time.monotonic()
        self.lock = threading.Lock()

    def add(self, record: dict[str, Any]) -> None:
        with self.lock:
            self.records.append(record)

    def now(self) -> float:
        return time.monotonic() - self.t0


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        answer: dict[str, Any] = {"trip_id": body["trip_id"]}
        status = {"ok": 201, "bad": 400, "boom": 503}[body["mode"]]
        payload = json.dumps(answer if status < 300 else {"error": body["mode"]}).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def entry():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def workload_for(port: int, bodies: list[dict[str, Any]], recorder: Recorder, retry_for: float = 0.3) -> Workload:
    spec = WorkloadSpec(sagas=len(bodies), rate=1000, concurrency=4, via="http", service="trips", path="/trips")
    system = SimpleNamespace(services={"trips": SimpleNamespace(http=ServiceHTTP("127.0.0.1", port))})
    return Workload(spec, http_sender(system, spec), lambda i, _rng: bodies[i], seed=1, retry_for=retry_for,
                    recorder=recorder, sagas={"booking": SAGA})


def test_each_request_is_an_operation_with_its_outcome_and_key(entry: int):
    rec = Recorder()
    bodies = [{"trip_id": "t-ok", "mode": "ok"}, {"trip_id": "t-bad", "mode": "bad"},
              {"trip_id": "t-boom", "mode": "boom"}]
    result = workload_for(entry, bodies, rec).run()
    ops = {r["key"]: r for r in rec.records}
    assert {k: r["outcome"] for k, r in ops.items()} == {"t-ok": "ok", "t-bad": "fail", "t-boom": "unknown"}
    assert (result.started, result.failed, result.unknown) == (1, 2, 1)
    for r in ops.values():
        assert r["kind"] == "operation" and r["saga"] == "booking" and r["request"] == "POST /trips"
        assert 0 <= r["invoked"] <= r["completed"]
    assert ops["t-bad"]["attempts"] > 1 and "answered 400" in ops["t-bad"]["detail"]


def test_a_refused_connection_is_a_definite_failure():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rec = Recorder()
    workload_for(port, [{"trip_id": "t1", "mode": "ok"}], rec).run()
    assert [r["outcome"] for r in rec.records] == ["fail"]


def test_the_checker_reads_the_operations():
    rec = Recorder()
    rec.add({"kind": "operation", "t": 1.0, "op": 0, "saga": "booking", "key": "t1", "invoked": 1.0,
             "completed": 1.1, "outcome": "ok", "detail": "accepted"})
    result = check_history(rec.records, {"booking": SAGA}, healed_at=0.0, end_at=60.0)
    assert [v.check for v in result.violations] == ["no_lost_request"]


def test_the_key_comes_from_the_answer_else_from_the_body():
    spec = WorkloadSpec()
    assert request_key(spec, SAGA, {"trip_id": "from-answer"}, {"trip_id": "from-body"}) == "from-answer"
    assert request_key(spec, SAGA, {"data": {"trip_id": "nested"}}, None) == "nested"
    assert request_key(spec, SAGA, None, {"trip_id": "from-body"}) == "from-body"
    assert request_key(spec, SAGA, {"other": 1}, {}) is None
    assert request_key(WorkloadSpec(key="id"), SAGA, {"id": 7}, {}) == 7


def test_a_lost_request_reads_in_every_report(tmp_path):
    import xml.etree.ElementTree as ET

    from sagaproof.harness.checks.results import RunResult, saga_check_outcomes
    from sagaproof.harness.report import write_reports

    history = [{"kind": "operation", "t": 1.0, "op": 7, "saga": "booking", "key": "t-7", "invoked": 1.0,
                "completed": 1.2, "outcome": "ok", "detail": "accepted", "request": "POST /trips"}]
    result = check_history(history, {"booking": SAGA}, healed_at=0.0, end_at=60.0)
    run = RunResult(seed=1, system_path="examples/trips", command="sagaproof run examples/trips --seed 1",
                    verdict="fail", exit_code=1, check_result=result, checks=saga_check_outcomes(result))
    paths = write_reports(run, tmp_path, history)
    message = result.violations[0].message()
    assert "No lost request violated: saga 'booking' key t-7" in message and "events seen: none" in message
    assert "start request 7 (POST /trips) was accepted at t=1.200s" in message
    assert "t-7" in paths["report.html"].read_text()
    failures = ET.parse(paths["junit.xml"]).getroot().findall(".//failure")
    assert any("trip.requested for data.trip_id t-7 never appeared" in (f.text or "") for f in failures)


class KeyedHandler(BaseHTTPRequestHandler):
    """Answers the first attempt of each request 503 (its effect done, its answer lost: the client must retry),
    and dedupes by the Idempotency-Key header: a retry with a key seen already is the same request."""

    seen: dict[str, int] = {}
    effects: list[str] = []
    lock = threading.Lock()

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        key = self.headers.get("Idempotency-Key") or ""
        with self.lock:
            attempt = self.seen[key] = self.seen.get(key, 0) + 1
            if attempt == 1 or not key:
                self.effects.append(body["trip_id"])  # no key: every attempt is a new request
        payload = json.dumps({"trip_id": body["trip_id"], "tenant": self.headers.get("X-Tenant")}).encode()
        self.send_response(503 if attempt == 1 else 201)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


def test_each_request_keeps_its_idempotency_key_across_the_workloads_retries():
    KeyedHandler.seen, KeyedHandler.effects = {}, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), KeyedHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        rec = Recorder()
        spec = WorkloadSpec(sagas=6, rate=1000, concurrency=3, via="http", service="trips", path="/trips",
                            headers={"X-Tenant": "t-{index}"}, idempotency_key="Idempotency-Key")
        system = SimpleNamespace(services={"trips": SimpleNamespace(http=ServiceHTTP("127.0.0.1",
                                                                                     server.server_address[1]))})
        bodies = [{"trip_id": f"t{i}"} for i in range(6)]
        result = Workload(spec, http_sender(system, spec), lambda i, _rng: bodies[i], seed=3, retry_for=5.0,
                          recorder=rec, sagas={"booking": SAGA}).run()
    finally:
        server.shutdown()
        server.server_close()
    assert (result.started, result.retries) == (6, 6)
    # one key per request, sent on both of its attempts: six keys, each seen twice, so six effects, not twelve
    assert len(KeyedHandler.seen) == 6 and set(KeyedHandler.seen.values()) == {2}
    assert sorted(KeyedHandler.effects) == [f"t{i}" for i in range(6)]
    ids = {r["request_id"] for r in rec.records}
    assert ids == set(KeyedHandler.seen)  # the history names each request's key
    # a new run with the same seed sends new keys: a long-lived system (attach mode) remembers the old ones
    again = Workload(spec, lambda b, h: None, lambda i, _rng: bodies[i], seed=3)
    assert not {again.request_id(i) for i in range(6)} & ids
