"""Systems as teams deploy them, end to end (tests/fixtures/jobs): services that create their own streams, a
JetStream work queue among them, and a worker that runs as two replicas on one durable consumer, described
either as one service with `replicas` or as two services that share the consumer."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT, SAGAPROOF

JOBS = ROOT / "tests" / "fixtures" / "jobs"
# worker-2 (or worker-b) is killed for a second while it works through a backlog of jobs
KILL_ONE_REPLICA = [{"id": "k1", "kind": "kill", "target": "{replica}", "start": 1.0, "duration": 1.0}]

pytestmark = pytest.mark.slow


def _system(tmp_path: Path, replace: dict[str, str] | None = None) -> Path:
    system = tmp_path / "jobs"
    shutil.copytree(JOBS, system, ignore=shutil.ignore_patterns(".sagaproof", "__pycache__"))
    toml = (system / "sagaproof.toml").read_text()
    for old, new in (replace or {}).items():
        assert old in toml, old
        toml = toml.replace(old, new)
    (system / "sagaproof.toml").write_text(toml)
    return system


def _run(system: Path, report: Path, *extra: str) -> tuple[subprocess.CompletedProcess[str], dict]:
    proc = subprocess.run([*SAGAPROOF, "run", str(system), "--report-dir", str(report), *extra],
                          capture_output=True, text=True, timeout=300)
    data = json.loads((report / "report.json").read_text()) if (report / "report.json").exists() else {}
    return proc, data


def _check(report: dict, name: str) -> dict:
    return next(c for c in report["checks"] if c["name"] == name)


def _kill(tmp_path: Path, target: str) -> str:
    path = tmp_path / "schedule.json"
    path.write_text(json.dumps([{**f, "target": target} for f in KILL_ONE_REPLICA]))
    return str(path)


def test_a_work_queue_the_services_create_and_two_replicas_pass_with_a_report(tmp_path: Path):
    proc, report = _run(_system(tmp_path), tmp_path / "report", "--seed", "1")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert report["verdict"] == "pass"
    # The work queue is read from its publishes (not its deliveries to the workers: redeliveries under the kills
    # would show as more), and judged from its sequences. A request the workload retried carries its idempotency
    # key again, so the front publishes the same job again, which the stream drops: one job per request.
    history = [json.loads(line) for line in (tmp_path / "report" / "events.jsonl").read_text().splitlines()]
    requested = [r for r in history if r.get("kind") == "message" and r["subject"] == "jobs.requested"]
    retried = sum(r["attempts"] - 1 for r in history if r.get("kind") == "operation")
    assert len({r["data"]["job_id"] for r in requested}) == 60 and 60 <= len(requested) <= 60 + retried
    queue = next(r for r in history if r.get("kind") == "stream_state")
    assert (queue["stream"], queue["last_seq"], queue["leftovers"]) == ("JOBS", 60, [])
    consumption = _check(report, "consumption")
    assert "all 60 messages" in consumption["summary"] and "worker (worker-1, worker-2)" in consumption["summary"]
    # each replica is a process of its own, and the report shows which one took what
    procs = {s["name"]: s for s in report["services"]}
    assert {n for n in procs if n.startswith("worker")} == {"worker-1", "worker-2"}
    assert procs["worker-1"]["port"] != procs["worker-2"]["port"]
    assert procs["worker-2"]["service"] == "worker" and procs["worker-2"]["replica"] == 2
    acked = {r["service"]: r["acked"] for r in report["broker"]["matrix"] if r["subject"] == "jobs.requested"}
    assert set(acked) == {"worker-1", "worker-2"} and sum(acked.values()) >= 60
    assert (tmp_path / "report" / "logs" / "worker-2.log").exists()
    # where the run's time went: each part of it, and the static contract check beside start-up
    timings = report["timings"]
    assert {"start_up", "workload", "chaos", "convergence", "checks", "contracts", "total"} <= set(timings)
    assert all(timings[k] >= 0 for k in ("start_up", "workload", "chaos", "convergence", "checks", "total"))
    assert timings["workload"] > 0 and isinstance(timings["contracts"]["cached"], bool)


def test_two_services_sharing_one_durable_consumer_pass_when_one_is_killed(tmp_path: Path):
    two = _system(tmp_path, {
        'contracts = ["contracts/worker.yaml"]\nreplicas = 2\n':
            'contracts = ["contracts/worker.yaml"]\nenv = { WORK_MS = "200" }\n\n'
            '[services.worker-b]\ncommand = ["{python}", "worker.py"]\nready = { http = "/health", timeout = "20s" }\n'
            'contracts = ["contracts/worker.yaml"]\nenv = { WORK_MS = "200" }\n',
        "[services.worker]": "[services.worker-a]", 'service = "worker"': 'service = "worker-a"'})
    proc, report = _run(two, tmp_path / "report", "--seed", "1", "--schedule", _kill(tmp_path, "worker-b"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "worker-a+worker-b (worker-a, worker-b)" in _check(report, "consumption")["summary"]


def test_a_replica_that_acknowledges_before_committing_is_caught(tmp_path: Path):
    buggy = _system(tmp_path, {"replicas = 2": 'replicas = [{}, { env = { JOBS_BUG = "ack-early" } }]\n'
                                               'env = { WORK_MS = "200" }'})
    proc, report = _run(buggy, tmp_path / "report", "--seed", "1", "--schedule", _kill(tmp_path, "worker-2"))
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert report["first_failure"] == "termination"
    stuck = [f for f in report["findings"] if f.get("check") == "termination"]
    assert stuck and all("k1 kill worker-2" in json.dumps(f) for f in stuck)


def test_streams_the_services_create_after_the_recording_began_are_found(tmp_path: Path):
    # The services declare their streams two seconds after they are ready (the front refuses jobs until then,
    # and the workload retries): the recorder, started with none, finds them at the end.
    proc, report = _run(_system(tmp_path), tmp_path / "report", "--seed", "3", "--env", "CREATE_STREAMS_AFTER=2")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert any("JOBS, RESULTS were created by the services after the recording began" in n for n in report["notes"])
    assert "all 60 messages" in _check(report, "consumption")["summary"]  # the late work queue is judged
