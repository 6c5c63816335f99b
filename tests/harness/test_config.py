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
    (GOOD_SERVICE + "\n[chaos]\nfaults=['latncy']\n", "chaos.faults", "did you mean 'latency'"),
    (GOOD_SERVICE + "\n[workload]\nvia='http'\nservice='nope'\n", "workload.service", "not defined"),
    ("[nats]\ncluster = 2\n" + GOOD_SERVICE, "nats.cluster", "must be 1"),
    ("", "services", "no services are defined"),
    (GOOD_SERVICE + "\n[invariants]\nmoney = 'not a ref'\n", "invariants.money", "module:function"),
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
