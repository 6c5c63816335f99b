"""System-file validation: every kind of mistake is one sentence naming the file, the key and the fix (exit 2)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from sagaproof.harness.config import load_system_file, parse_duration
from sagaproof.harness.errors import ConfigError

from tests.conftest import SAGAPROOF

GOOD_SERVICE = """
[services.api]
command = ["{python}", "svc.py"]
env = { PORT = "{port}" }
ready = { http = "/health" }
"""

CASES = [
    # (toml text, fragment the message must contain, fragment naming the fix)
    (GOOD_SERVICE + "\n[services.api2]\ncomand = ['x']\n", "services.api2.comand", "did you mean 'command'"),
    (GOOD_SERVICE.replace('env = { PORT = "{port}" }', 'env = { PORT = 5 }\ninherit_env = "yes"'),
     "services.api.inherit_env", "must be a boolean"),
    ("[services.api]\nenv = { A = '1' }\n", "services.api.command", "is missing; add it"),
    (GOOD_SERVICE.replace("{port}", "{prot}"), "services.api.env.PORT", "unknown placeholder '{prot}'"),
    (GOOD_SERVICE + "\n[sagas.s]\nkey='id'\nstart='a'\nsuccess=['b']\n[[sagas.s.steps]]\nname='x'\n"
                    "service='paymnt'\nsuccess='c'\n", "sagas.s.steps[0].service", "names service 'paymnt'"),
    ("[services.api\n", "is not valid TOML", "fix the syntax"),
    (GOOD_SERVICE + "\n[sagas.s]\nkey='id'\nstart='a'\nsuccess=['b']\ndeadline='soon'\n", "sagas.s.deadline",
     "must be a duration"),
    (GOOD_SERVICE + "\n[sagas.s]\nkey='id'\nstart='a'\nsuccess=['b']\n[[sagas.s.steps]]\nname='x'\n"
                    "service='api'\nsuccess='c'\ntimeout='0s'\n", "sagas.s.steps[0].timeout",
     "must be a duration above zero"),
    (GOOD_SERVICE + "\n[chaos]\nfaults=['latncy']\n", "chaos.faults", "did you mean 'latency'"),
    (GOOD_SERVICE + "\n[chaos]\nphases=['targeted', 'aimed']\n", "chaos.phases", "unknown phase 'aimed'"),
    (GOOD_SERVICE + "\n[workload]\nvia='http'\nservice='nope'\n", "workload.service", "not defined"),
    ("[nats]\ncluster = 2\n" + GOOD_SERVICE, "nats.cluster", "must be 1"),
    ("", "services", "no services are defined"),
    (GOOD_SERVICE + "\n[invariants]\nmoney = 'not a ref'\n", "invariants.money", "module:function"),
    # streams as teams declare them
    ("[[nats.streams]]\nname='Q'\nsubjects=['q.>']\nretention='work-queue'\n" + GOOD_SERVICE,
     "nats.streams[0].retention", "must be one of 'limits', 'workqueue', 'interest'"),
    ("[[nats.streams]]\nname='Q'\nsubjects=['q.>']\ndiscard='newest'\n" + GOOD_SERVICE,
     "nats.streams[0].discard", "must be one of 'old', 'new'"),
    ("[[nats.streams]]\nname='Q'\nsubjects=['q.>']\nmax_msgs=0\n" + GOOD_SERVICE,
     "nats.streams[0].max_msgs", "must be a positive integer"),
    ("[[nats.streams]]\nname='Q'\nsubjects=['q.>']\nmax_age='a week'\n" + GOOD_SERVICE,
     "nats.streams[0].max_age", "must be a duration"),
    ("[[nats.streams]]\nname='Q'\nsubjects=['q.>']\nretention='workqueue'\n[[nats.streams.consumers]]\n"
     "name='w'\nack_policy='none'\n" + GOOD_SERVICE, "nats.streams[0].consumers[0].ack_policy",
     "must be \"explicit\" on work-queue stream 'Q'"),
    ("[[nats.streams]]\nname='Q'\nsubjects=['q.>']\n[[nats.streams.consumers]]\nname='w'\nmax_delivr=3\n"
     + GOOD_SERVICE, "nats.streams[0].consumers[0].max_delivr", "did you mean 'max_deliver'"),
    ("[[nats.streams]]\nname='M'\nmirror='Q'\nsubjects=['q.>']\n" + GOOD_SERVICE,
     "nats.streams[0].subjects", "a mirror takes its subjects"),
    ("[[nats.streams]]\nname='Q'\nsubjects=['q.>']\n[[nats.streams]]\nname='Q'\nsubjects=['r.>']\n"
     + GOOD_SERVICE, "nats.streams", "stream 'Q' is declared twice"),
    # replicas
    (GOOD_SERVICE + "replicas = 0\n", "services.api.replicas", "must be between 1 and 64"),
    (GOOD_SERVICE + "replicas = [{ env = { A = 1.5 }, comand = ['x'] }]\n", "services.api.replicas[0].comand",
     "did you mean 'command'"),
    (GOOD_SERVICE + "replicas = 2\n[services.api-2]\ncommand = ['x']\n", "services.api.replicas",
     "service 'api-2' is declared too"),
    # workload headers
    (GOOD_SERVICE + "\n[workload]\nservice='api'\nheaders={ X-Request = '{requestid}' }\n",
     "workload.headers.X-Request", "unknown placeholder '{requestid}'"),
    (GOOD_SERVICE + "\n[workload]\nservice='api'\nidempotency_key='Idempotency Key'\n",
     "workload.idempotency_key", "must be the name of the header"),
]


@pytest.mark.parametrize("text,where,fix", CASES, ids=[c[1] for c in CASES])
def test_each_mistake_is_one_sentence_naming_file_key_and_fix(tmp_path: Path, text: str, where: str, fix: str):
    (tmp_path / "svc.py").write_text("")
    (tmp_path / "sagaproof.toml").write_text(text)
    with pytest.raises(ConfigError) as info:
        load_system_file(tmp_path)
    message = str(info.value)
    assert str(tmp_path / "sagaproof.toml") in message
    assert where in message
    assert fix in message
    assert "\n" not in message.strip()


def test_cli_exits_2_without_traceback(tmp_path: Path):
    (tmp_path / "sagaproof.toml").write_text("[services.api]\ncomand = ['x']\n")
    proc = subprocess.run([*SAGAPROOF, "run", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "services.api.comand" in proc.stderr and "did you mean 'command'" in proc.stderr


def test_cli_bad_option_exits_2(tmp_path: Path):
    proc = subprocess.run([*SAGAPROOF, "run", str(tmp_path), "--faults", "latncy"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2
    assert "unknown fault 'latncy'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_directory_exits_2(tmp_path: Path):
    proc = subprocess.run([*SAGAPROOF, "up", str(tmp_path / "nope")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "no such file or directory" in proc.stderr


def test_pyproject_tool_table_is_accepted(tmp_path: Path):
    (tmp_path / "svc.py").write_text("")
    (tmp_path / "pyproject.toml").write_text("[project]\nname='x'\n[tool.sagaproof.services.api]\n"
                                              "command = ['{python}', 'svc.py']\n")
    spec = load_system_file(tmp_path)
    assert list(spec.services) == ["api"]
    assert spec.services["api"].command == ("{python}", "svc.py")


def test_the_documented_example_loads():
    spec = load_system_file(Path(__file__).resolve().parents[1] / "fixtures" / "mini")
    assert set(spec.services) == {"alpha", "beta", "gamma", "delta"}
    assert spec.services["gamma"].ready.kind == "log"
    assert spec.nats.streams[0].subjects == ("work.>",)


@pytest.mark.parametrize("text,seconds", [("500ms", 0.5), ("30s", 30.0), ("2m", 120.0), (5, 5.0), ("1h", 3600.0),
                                          ("soon", None), (-1, None), (True, None)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


def test_missing_program_is_a_config_error_before_anything_starts(tmp_path: Path):
    (tmp_path / "sagaproof.toml").write_text('[services.api]\ncommand = ["no-such-program-xyz", "x"]\n'
                                             '[workload]\nservice = "api"\n')
    proc = subprocess.run([*SAGAPROOF, "up", str(tmp_path), "--report-dir", str(tmp_path / "r")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "services.api.command: the program 'no-such-program-xyz' was not found" in proc.stderr
    assert not (tmp_path / "r" / "logs" / "nats.log").exists(), "nothing may start for a config mistake"


def test_stream_settings_teams_use_are_read(tmp_path: Path):
    (tmp_path / "svc.py").write_text("")
    (tmp_path / "sagaproof.toml").write_text("""
[[nats.streams]]
name = "JOBS"
subjects = ["jobs.>"]
retention = "workqueue"
max_age = "1h"
max_msgs = 1000
max_bytes = 1048576
discard = "new"

[[nats.streams.consumers]]
name = "workers"
filter_subject = "jobs.requested"
max_deliver = 5
ack_wait = "30s"

[[nats.streams]]
name = "JOBS_COPY"
mirror = "JOBS"
""" + GOOD_SERVICE)
    jobs, copy = load_system_file(tmp_path).nats.streams
    assert (jobs.retention, jobs.max_age, jobs.max_msgs, jobs.max_bytes, jobs.discard) == (
        "workqueue", 3600.0, 1000, 1048576, "new")
    assert jobs.consumed_on_read and not copy.consumed_on_read
    (c,) = jobs.consumers
    assert (c.name, c.filter_subjects, c.max_deliver, c.ack_wait, c.ack_policy) == (
        "workers", ("jobs.requested",), 5, 30.0, "explicit")
    assert copy.mirror == "JOBS" and copy.subjects == ()


def test_replicas_are_processes_of_one_service(tmp_path: Path):
    (tmp_path / "svc.py").write_text("")
    (tmp_path / "sagaproof.toml").write_text(GOOD_SERVICE + """replicas = [{}, { env = { ZONE = "b" } }]

[services.solo]
command = ["{python}", "svc.py", "{replica}", "{shared_dir}"]
replicas = 3
""")
    spec = load_system_file(tmp_path)
    procs = spec.processes()
    assert list(procs) == ["api-1", "api-2", "solo-1", "solo-2", "solo-3"]
    assert procs["api-2"].env["ZONE"] == "b" and "ZONE" not in procs["api-1"].env
    assert {procs[p].service for p in procs} == {"api", "solo"} and procs["solo-3"].replica == 3
    assert spec.groups()["solo-2"] == "solo"
    assert list(spec.contract_sources()) == []  # contracts stay the service's, not each replica's


def test_workload_headers_keep_one_idempotency_key_per_request(tmp_path: Path):
    (tmp_path / "svc.py").write_text("")
    (tmp_path / "sagaproof.toml").write_text(GOOD_SERVICE + """
[workload]
service = "api"
headers = { X-Tenant = "t1", X-Request-Id = "req-{request_id}", X-Index = "{index}" }
idempotency_key = "Idempotency-Key"
""")
    w = load_system_file(tmp_path).workload
    assert w.request_headers(7, "abc") == {"X-Tenant": "t1", "X-Request-Id": "req-abc", "X-Index": "7",
                                           "Idempotency-Key": "abc"}


def test_chaos_phases_default_to_both_and_can_be_one(tmp_path: Path):
    (tmp_path / "svc.py").write_text("")
    (tmp_path / "sagaproof.toml").write_text(GOOD_SERVICE)
    assert load_system_file(tmp_path).chaos.phases == ("targeted", "random")
    (tmp_path / "sagaproof.toml").write_text(GOOD_SERVICE + "\n[chaos]\nphases = ['random']\n")
    assert load_system_file(tmp_path).chaos.phases == ("random",)
