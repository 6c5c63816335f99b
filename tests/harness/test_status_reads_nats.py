"""The NATS request/reply and JetStream key-value status reads, live (issue 23): a small choreography written
the way another team would write it -- two Python services over JetStream whose job status lives in a KV bucket,
one of them also answering status requests over NATS request/reply -- run by ``sagaproof run``. The clean
system passes every read check through each reader; a status overwritten after the saga failed is caught.

Runs whole runs (real nats-server, real services): marked slow."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.conftest import SAGAPROOF

pytestmark = pytest.mark.slow

COMMON = '''
import asyncio, json, os, signal
import nats

async def connect():
    nc = await nats.connect(os.environ["NATS_URL"], max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    return nc, nc.jetstream()

def run(main):
    async def guarded():
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        nc = await main()
        print("ready", flush=True)
        await stop.wait()
        await nc.drain()
    asyncio.run(guarded())
'''

# The job service: takes each job request, keeps the job's status in the JOBS bucket, answers jobs.status.<id>,
# and ends the job when the worker says how the work went.
JOBS = '''
import json, os
from common import connect, run

BUG = os.environ.get("JOBS_BUG", "")

async def main():
    nc, js = await connect()
    kv = await js.create_key_value(bucket="JOBS")

    async def set_status(job_id, status):
        await kv.put(job_id, json.dumps({"job": {"id": job_id, "status": status}}).encode())

    async def on_requested(msg):
        job = json.loads(msg.data)
        await set_status(job["id"], "QUEUED")
        await msg.ack()

    async def on_work(msg):
        job = json.loads(msg.data)
        if msg.subject == "work.done":
            await set_status(job["id"], "DONE")
            await js.publish("job.completed", json.dumps({"id": job["id"]}).encode(),
                             headers={"Nats-Msg-Id": "completed-" + job["id"]})
        else:
            await set_status(job["id"], "FAILED")
            await js.publish("job.failed", json.dumps({"id": job["id"]}).encode(),
                             headers={"Nats-Msg-Id": "failed-" + job["id"]})
            if BUG == "overwrite":  # the bug: the "mark finished" clean-up writes DONE on every finished job
                await set_status(job["id"], "DONE")
        await msg.ack()

    async def on_status(msg):
        try:
            entry = await kv.get(msg.subject.rsplit(".", 1)[-1])
            await msg.respond(entry.value)
        except Exception:  # no such job: an empty reply
            await msg.respond(b"")

    await js.subscribe("job.requested", durable="jobs-requested", cb=on_requested, manual_ack=True)
    await js.subscribe("work.*", durable="jobs-work", cb=on_work, manual_ack=True)
    await nc.subscribe("jobs.status.*", cb=on_status)
    return nc

run(main)
'''

# The worker: does each job; odd-numbered jobs fail.
WORKER = '''
import json
from common import connect, run

async def main():
    nc, js = await connect()

    async def on_requested(msg):
        job = json.loads(msg.data)
        subject = "work.failed" if job["index"] % 2 else "work.done"
        await js.publish(subject, json.dumps({"id": job["id"]}).encode(), headers={"Nats-Msg-Id": subject + job["id"]})
        await msg.ack()

    await js.subscribe("job.requested", durable="worker", cb=on_requested, manual_ack=True)
    return nc

run(main)
'''

SYSTEM = '''
[[nats.streams]]
name = "JOBEVENTS"
subjects = ["job.>", "work.>"]

[env]
NATS_URL = "{{nats_url}}"

[services.jobs]
command = ["{{python}}", "jobs.py"]
ready = {{ log = "ready", timeout = "20s" }}

[services.worker]
command = ["{{python}}", "worker.py"]
ready = {{ log = "ready", timeout = "20s" }}

[sagas.job]
key = "id"
start = "job.requested"
success = ["job.completed"]
abort = ["job.failed"]
deadline = "10s"

[sagas.job.status]
{reader}
field = "job.status"
pending = ["QUEUED"]
success = ["DONE"]
abort = ["FAILED"]

[[sagas.job.steps]]
name = "work"
service = "worker"
success = "work.done"
failure = "work.failed"

[workload]
via = "publish"
subject = "job.requested"
sagas = 16
rate = 40

[reads]
sample = 1.0
'''

READERS = {"kv": 'kv = { bucket = "JOBS", key = "{key}" }', "nats": 'nats = { subject = "jobs.status.{key}" }'}


def write_system(root: Path, reader: str) -> Path:
    root.mkdir()
    (root / "common.py").write_text(textwrap.dedent(COMMON))
    (root / "jobs.py").write_text(textwrap.dedent(JOBS))
    (root / "worker.py").write_text(textwrap.dedent(WORKER))
    (root / "sagaproof.toml").write_text(SYSTEM.format(reader=READERS[reader]))
    return root


def run(root: Path, report: Path, *env: str) -> tuple[int, dict[str, dict], str]:
    cmd = [*SAGAPROOF, "run", str(root), "--seed", "1", "--no-chaos", "--report-dir", str(report)]
    for e in env:
        cmd += ["--env", e]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    data = json.loads((report / "report.json").read_text())
    return proc.returncode, {c["name"]: c for c in data["checks"]}, proc.stdout + proc.stderr


def reads_of(report: Path) -> list[dict]:
    with open(report / "events.jsonl") as f:
        return [json.loads(line) for line in f if line.startswith('{"kind":"read"')]


@pytest.mark.parametrize("reader", ["kv", "nats"])
def test_a_clean_choreography_passes_the_read_checks_through_each_reader(tmp_path: Path, reader: str) -> None:
    root = write_system(tmp_path / "jobs", reader)
    code, checks, out = run(root, tmp_path / "report")
    assert code == 0, out[-3000:]
    for name in ("read_final_agrees", "read_terminal_stable", "read_not_contradicted"):
        assert checks[name]["status"] == "passed", (name, checks[name])
    reads = reads_of(tmp_path / "report")
    finals = {r["key"]: r for r in reads if r["phase"] == "final" and r["outcome"] == "ok"}
    assert len(finals) == 16  # every job read once the system was quiescent, through this reader
    assert {r["value"] for r in finals.values()} == {"DONE", "FAILED"}
    assert all(r["request"].startswith("kv JOBS " if reader == "kv" else "request jobs.status.") for r in reads)


@pytest.mark.parametrize("reader", ["kv", "nats"])
def test_a_status_overwritten_after_the_job_failed_is_caught_through_each_reader(tmp_path: Path, reader: str) -> None:
    root = write_system(tmp_path / "jobs", reader)
    code, checks, out = run(root, tmp_path / "report", "JOBS_BUG=overwrite")
    assert code == 1, out[-3000:]
    assert checks["read_final_agrees"]["status"] == "failed", checks["read_final_agrees"]
    assert "8 of 16 sagas" in checks["read_final_agrees"]["summary"]  # the odd-numbered jobs: they failed
    # every saga check passes: every event on the wire is right, only what a client reads is wrong
    for name in ("no_contradiction", "termination", "compensation_completeness"):
        assert checks[name]["status"] in ("passed", "not applicable"), (name, checks[name])
