"""Status reads (issue 23): the declaration's validation, and the four read checks over hand-built histories
(no processes). The end-to-end runs of the seeded bugs are in tests/shop/test_bugs.py and tests/trips."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from sagaproof.harness.checks import CheckContext, Window
from sagaproof.harness.checks.reads import CONTRADICTED, FINAL, STABLE, UNKNOWN, read_checks
from sagaproof.harness.config import (
    ChaosSpec,
    NatsSpec,
    SagaSpec,
    StatusReadSpec,
    SystemSpec,
    WorkloadSpec,
    load_system_file,
)
from sagaproof.harness.errors import ConfigError
from sagaproof.harness.history import HistoryReader

from tests.conftest import SAGAPROOF

BASE = """
[services.order]
command = ["{python}", "svc.py"]

[sagas.checkout]
key = "order_id"
start = "orders.created"
success = ["orders.completed"]
abort = ["orders.cancelled"]
"""
STATUS = """
[sagas.checkout.status]
http = { service = "order", path = "/orders/{key}" }
field = "status"
pending = ["PENDING"]
success = ["COMPLETED"]
abort = ["CANCELLED"]
"""

CASES = [
    # (status table text, fragment naming the key, fragment naming the fix)
    (STATUS.replace('field = "status"', 'feild = "status"'), "sagas.checkout.status.feild", "did you mean 'field'"),
    (STATUS.replace('field = "status"\n', ""), "sagas.checkout.status.field", "is missing; add it"),
    (STATUS.replace('"order"', '"ordr"'), "sagas.checkout.status.http.service", "names service 'ordr'"),
    (STATUS.replace('/orders/{key}', '/orders'), "sagas.checkout.status.http.path", "with {key}"),
    (STATUS.replace('success = ["COMPLETED"]', 'success = []'), "sagas.checkout.status.success", "is empty"),
    (STATUS.replace('abort = ["CANCELLED"]', 'abort = ["CANCELLED", "PENDING"]'), "sagas.checkout.status.abort",
     "value 'PENDING' is also in pending"),
    (STATUS.replace('http = { service = "order", path = "/orders/{key}" }', ""), "sagas.checkout.status",
     "needs exactly one of http"),
    (STATUS.replace('http = { service = "order", path = "/orders/{key}" }', 'nats = { subject = "orders.status" }'),
     "sagas.checkout.status.nats.subject", "with {key}"),
    (STATUS.replace('http = { service = "order", path = "/orders/{key}" }', 'kv = { bucket = "ORD ERS", key = "{key}" }'),
     "sagas.checkout.status.kv.bucket", "bucket name"),
    (STATUS + "\n[reads]\nsample = 2\n", "reads.sample", "between 0 and 1"),
    (STATUS + "\n[reads]\nrat = 2\n", "reads.rat", "did you mean 'rate'"),
    ("\n[reads]\nsample = 0.5\n", "reads", "no saga declares a status read"),
]


@pytest.mark.parametrize("status,where,fix", CASES, ids=[c[1] + ":" + c[2] for c in CASES])
def test_each_mistake_in_a_status_read_is_one_sentence(tmp_path: Path, status: str, where: str, fix: str):
    (tmp_path / "svc.py").write_text("")
    (tmp_path / "sagaproof.toml").write_text(BASE + status)
    with pytest.raises(ConfigError) as info:
        load_system_file(tmp_path)
    message = str(info.value)
    assert where in message and fix in message, message
    assert "\n" not in message.strip()


def test_a_status_read_loads_each_way(tmp_path: Path):
    (tmp_path / "svc.py").write_text("")
    for target, via in (('http = { service = "order", path = "/orders?id={key}" }', "http"),
                        ('nats = { subject = "orders.status.{key}" }', "nats"),
                        ('kv = { bucket = "ORDERS", key = "order.{key}" }', "kv")):
        text = BASE + STATUS.replace('http = { service = "order", path = "/orders/{key}" }', target)
        (tmp_path / "sagaproof.toml").write_text(text + "\n[reads]\nsample = 0.5\nrate = 10\nconcurrency = 2\n")
        spec = load_system_file(tmp_path)
        status = spec.sagas["checkout"].status
        assert status is not None and status.via == via
        assert status.meaning("COMPLETED") == "success" and status.meaning("X") is None
        assert (spec.reads.sample, spec.reads.rate, spec.reads.concurrency) == (0.5, 10.0, 2)


def test_cli_exits_2_on_a_bad_status_read(tmp_path: Path):
    (tmp_path / "svc.py").write_text("")
    (tmp_path / "sagaproof.toml").write_text(BASE + STATUS.replace('field = "status"\n', ""))
    proc = subprocess.run([*SAGAPROOF, "run", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "sagas.checkout.status.field" in proc.stderr


# ------------------------------------------------------------------------------------------- the checks

SAGA = SagaSpec("checkout", "order_id", "orders.created", ("orders.completed",), ("orders.cancelled",), (),
                status=StatusReadSpec("http", "status", ("PENDING",), ("COMPLETED",), ("CANCELLED",),
                                      service="order", path="/orders/{key}"))
MEANING = {"PENDING": "pending", "COMPLETED": "success", "CANCELLED": "abort"}


def spec(status: bool = True) -> SystemSpec:
    from dataclasses import replace

    saga = SAGA if status else replace(SAGA, status=None)
    return SystemSpec(path=Path("x/sagaproof.toml"), root=Path("x"), nats=NatsSpec(), services={},
                      sagas={"checkout": saga}, workload=WorkloadSpec(), invariants=(), invariant_timeout=1.0,
                      chaos=ChaosSpec())


def msg(t: float, subject: str, key: str) -> dict[str, Any]:
    return {"kind": "message", "t": t, "subject": subject, "data": {"order_id": key, "event_id": f"{subject}-{key}"}}


def read(t: float, key: str, value: str | None, phase: str = "during", outcome: str = "ok") -> dict[str, Any]:
    return {"kind": "read", "t": t, "saga": "checkout", "key": key, "invoked": t, "completed": t + 0.01,
            "outcome": outcome, "value": value, "found": value is not None, "phase": phase,
            "status": MEANING.get(str(value)) if outcome == "ok" and value is not None else None,
            "request": f"GET order /orders/{key}", "detail": ""}


def run(tmp_path: Path, records: list[dict[str, Any]], status: bool = True, window: Window = Window()) -> dict:
    path = tmp_path / "events.jsonl"
    with open(path, "w") as f:
        for i, r in enumerate(sorted(records, key=lambda r: r["t"])):
            f.write(json.dumps({**r, "seq": i + 1}) + "\n")
    ctx = CheckContext(spec(status), HistoryReader(path), window, 0.0, 100.0, {})
    return {o.name: o for o in read_checks(ctx)}


def clean(key: str = "o1", *, end: str = "orders.completed", final: str = "COMPLETED") -> list[dict[str, Any]]:
    return [msg(1.0, "orders.created", key), read(1.1, key, "PENDING"), msg(2.0, end, key),
            read(2.5, key, final), read(9.0, key, final, "final")]


def test_a_clean_history_passes_every_read_check(tmp_path: Path):
    out = run(tmp_path, clean("o1") + clean("o2", end="orders.cancelled", final="CANCELLED"))
    assert [out[n].status for n in (FINAL, STABLE, CONTRADICTED)] == ["passed"] * 3
    assert out[UNKNOWN].status == "not applicable"


def test_a_final_read_left_pending_fails_read_final_agrees(tmp_path: Path):
    records = clean("o1")[:-1] + [read(9.0, "o1", "PENDING", "final")]
    out = run(tmp_path, records)
    assert out[FINAL].status == "failed"
    f = out[FINAL].findings[0]
    assert f.saga == "checkout" and f.key == "o1"
    assert "PENDING" in f.message and "orders.completed" in f.message and "GET order /orders/o1" in f.message


def test_a_pending_final_read_of_a_run_that_was_not_quiescent_is_not_held_against_it(tmp_path: Path):
    records = clean("o1")[:-1] + [read(9.0, "o1", "PENDING", "final")] + clean("o2")
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps({**r, "seq": i}) + "\n" for i, r in enumerate(sorted(records, key=lambda r: r["t"]))))
    ctx = CheckContext(spec(), HistoryReader(path), Window(), 0.0, 100.0, {"reads_quiescent": False})
    final = next(o for o in read_checks(ctx) if o.name == FINAL)
    assert final.status == "passed" and "1 still pending" in final.summary


def test_a_final_read_of_no_such_saga_fails_when_it_ended_on_the_wire(tmp_path: Path):
    records = clean("o1")[:-1] + [read(9.0, "o1", None, "final")]
    assert run(tmp_path, records)[FINAL].status == "failed"


def test_a_terminal_status_that_changes_fails_read_terminal_stable(tmp_path: Path):
    records = [msg(1.0, "orders.created", "o1"), read(1.2, "o1", "COMPLETED"), msg(2.0, "orders.cancelled", "o1"),
               read(9.0, "o1", "CANCELLED", "final")]
    out = run(tmp_path, records)
    assert out[STABLE].status == "failed"
    assert "'COMPLETED'" in out[STABLE].findings[0].title and "'CANCELLED'" in out[STABLE].findings[0].title
    assert out[FINAL].status == "passed"  # the final read agrees: only the change shows the bug
    assert out[CONTRADICTED].status == "passed"  # COMPLETED was read before the abort was on the wire


def test_overlapping_reads_are_not_ordered(tmp_path: Path):
    # two reads in flight at once may see the change in either order: no finding
    records = [msg(1.0, "orders.created", "o1"), msg(2.0, "orders.completed", "o1"),
               {**read(1.9, "o1", "COMPLETED"), "completed": 2.2}, read(2.1, "o1", "PENDING"),
               read(9.0, "o1", "COMPLETED", "final")]
    assert run(tmp_path, records)[STABLE].status == "passed"


def test_a_read_after_the_abort_showing_success_fails_read_not_contradicted(tmp_path: Path):
    records = [msg(1.0, "orders.created", "o1"), msg(2.0, "orders.cancelled", "o1"), read(2.5, "o1", "COMPLETED"),
               read(9.0, "o1", "CANCELLED", "final")]
    out = run(tmp_path, records)
    assert out[CONTRADICTED].status == "failed"
    assert "after the saga's abort event orders.cancelled" in out[CONTRADICTED].findings[0].title


def test_no_status_read_declared_is_not_applicable(tmp_path: Path):
    out = run(tmp_path, clean("o1"), status=False)
    assert {o.status for o in out.values()} == {"not applicable"}


def test_reads_turned_off_are_not_applicable(tmp_path: Path):
    from dataclasses import replace

    from sagaproof.harness.config import ReadsSpec

    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps({**r, "seq": i}) + "\n" for i, r in enumerate(clean("o1"))))
    ctx = CheckContext(replace(spec(), reads=ReadsSpec(enabled=False)), HistoryReader(path), Window(), 0.0, 100.0, {})
    assert {o.status for o in read_checks(ctx)} == {"not applicable"}


def test_declared_but_nothing_read_is_not_judged(tmp_path: Path):
    records = [msg(1.0, "orders.created", "o1"), msg(2.0, "orders.completed", "o1"),
               read(9.0, "o1", None, "final", outcome="unknown")]
    out = run(tmp_path, records)
    assert [out[n].status for n in (FINAL, STABLE, CONTRADICTED)] == ["not judged"] * 3
    assert not any(out[n].ok for n in (FINAL, STABLE, CONTRADICTED))
    out = run(tmp_path, [msg(1.0, "orders.created", "o1"), msg(2.0, "orders.completed", "o1")])
    assert out[FINAL].status == "not judged"


def op(t: float, key: str | None, outcome: str = "unknown") -> dict[str, Any]:
    return {"kind": "operation", "t": t, "op": 7, "saga": "checkout", "key": key, "invoked": t, "completed": t + 10,
            "outcome": outcome, "detail": "timed out", "attempts": 3, "request": "POST /orders"}


def test_unknown_start_requests_are_resolved_by_the_reads(tmp_path: Path):
    # o1 got in (its start is on the wire); o2 never did and the system says so: both resolved
    records = clean("o1") + [op(0.5, "o1"), op(0.6, "o2"), read(9.5, "o2", None, "final")]
    out = run(tmp_path, records)
    assert out[UNKNOWN].status == "passed" and "2 resolved" in out[UNKNOWN].summary
    # the system said "no such order", then an event of it appeared
    late = records + [msg(12.0, "orders.created", "o2")]
    late = [r for r in late if not (r["kind"] == "message" and r["data"]["order_id"] == "o2" and r["t"] < 12)]
    out = run(tmp_path, late)
    assert out[UNKNOWN].status == "failed"
    # the system has it, but its start never was on the wire
    has = clean("o1") + [op(0.6, "o3"), read(9.5, "o3", "PENDING", "final")]
    assert run(tmp_path, has)[UNKNOWN].status == "failed"


def test_unknown_start_requests_without_a_key_cannot_be_read(tmp_path: Path):
    out = run(tmp_path, clean("o1") + [op(0.5, None)])
    assert out[UNKNOWN].status == "not applicable" and "named its saga's key" in out[UNKNOWN].summary


def test_unknown_start_requests_are_read_by_request_id_when_the_system_keys_sagas_by_it(tmp_path: Path):
    # o1 was answered with the key its request id named (an idempotency key the system keeps as the order id);
    # o2's request got no answer: its request id is its key, and the system says it never took it
    answered = {**op(0.5, "o1", "ok"), "request_id": "o1"}
    lost = {**op(0.6, None), "request_id": "o2"}
    out = run(tmp_path, clean("o1") + [answered, lost, read(9.5, "o2", None, "final")])
    assert out[UNKNOWN].status == "passed" and "1 resolved" in out[UNKNOWN].summary
    # the system said it has no such order, then the order's events appeared under that key
    late = clean("o1") + [answered, lost, read(9.5, "o2", None, "final"), msg(12.0, "orders.created", "o2")]
    assert run(tmp_path, late)[UNKNOWN].status == "failed"
    # a system that keys its sagas otherwise: the request id says nothing about the key
    other = {**answered, "request_id": "r1"}
    out = run(tmp_path, clean("o1") + [other, lost, read(9.5, "o2", None, "final")])
    assert out[UNKNOWN].status == "not applicable"


def test_reads_follow_the_events_the_status_owner_sends_or_receives():
    # trips keeps the booking's status: by its contracts it sends trip.* and receives risk.rejected, the holds
    # and payment.refunded; the other events of the saga cannot change what GET /trips/{id} shows
    from dataclasses import replace

    from sagaproof.harness.config import ReadsSpec
    from sagaproof.harness.session.engine import load_contracts
    from sagaproof.harness.session.reads import ReadSchedule, StatusReader, owner_subjects

    trips = load_system_file(Path(__file__).resolve().parents[2] / "examples" / "trips")
    contracts, _ = load_contracts(trips)
    owned = owner_subjects(trips.sagas, contracts)
    assert owned == {"booking": {"trip.requested", "trip.confirmed", "trip.rejected", "risk.rejected", "flight.held",
                                 "hotel.held", "payment.refunded"}}
    assert owner_subjects(trips.sagas, None) == {}  # no contracts: no known owner
    kv = replace(trips.sagas["booking"], status=replace(trips.sagas["booking"].status, via="kv", service=None,
                                                        bucket="TRIPS", key="{key}"))
    assert owner_subjects({"booking": kv}, contracts) == {}  # a key-value status has no known owner

    schedule = ReadSchedule(StatusReader(None, trips.sagas), spec=ReadsSpec(), sagas=trips.sagas, seed=1, record=lambda r: None,
                            now=lambda: 0.0, owner_subjects=owned)
    try:
        assert [schedule.reads_after("booking", s) for s in ("flight.held", "payment.refunded", "payment.charged",
                                                             "hotel.unavailable")] == [2, 2, 0, 0]
    finally:
        schedule.stop()
    unowned = ReadSchedule(StatusReader(None, trips.sagas), spec=ReadsSpec(), sagas=trips.sagas, seed=1, record=lambda r: None,
                           now=lambda: 0.0)
    try:
        assert unowned.reads_after("booking", "payment.charged") == 1
    finally:
        unowned.stop()


def test_a_lagging_owner_is_read_again_until_its_status_changes():
    # A real HTTP status owner that takes an event only after two more reads of it (it lags behind the wire):
    # the two reads an owned event schedules both see the old status; the follow-ups see the new one.
    import threading
    import time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from types import SimpleNamespace

    from sagaproof.harness.config import ReadsSpec
    from sagaproof.harness.env.http import ServiceHTTP
    from sagaproof.harness.session.reads import ReadSchedule, StatusReader

    state = {"reads": 0, "lag_from": None}

    class Owner(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            state["reads"] += 1
            shipped = state["lag_from"] is not None and state["reads"] > state["lag_from"] + 2
            body = json.dumps({"status": "COMPLETED" if shipped else "PENDING"}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Owner)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    system = SimpleNamespace(services={"order": SimpleNamespace(http=ServiceHTTP("127.0.0.1", server.server_port))})
    records: list[dict[str, Any]] = []
    owned = {"checkout": {"orders.created", "orders.completed"}}
    schedule = ReadSchedule(StatusReader(system, {"checkout": SAGA}), ReadsSpec(sample=1.0, rate=1000.0,
                            concurrency=1), {"checkout": SAGA}, seed=1, record=records.append, now=time.monotonic,
                            owner_subjects=owned)

    def wait_for(n: int) -> None:
        deadline = time.monotonic() + 60
        while len(records) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(records) >= n, records

    try:
        schedule.on_message({"subject": "orders.created", "data": {"order_id": "o1"}})
        wait_for(2)  # the soon and the later read of the start: PENDING, the saga's first value
        state["lag_from"] = state["reads"]
        schedule.on_message({"subject": "orders.completed", "data": {"order_id": "o1"}})
        wait_for(3)
        deadline = time.monotonic() + 60
        while not any(r["value"] == "COMPLETED" for r in records) and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        schedule.stop()
        server.shutdown()
        server.server_close()
    assert [r["value"] for r in records[:3]] == ["PENDING"] * 3
    assert any(r["value"] == "COMPLETED" and r["phase"] == "during" for r in records[3:]), records
    assert len(records) <= 2 + 2 + 3  # no more than the two reads of each event and three follow-ups
