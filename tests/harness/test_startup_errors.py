"""Start-up failures the user's own configuration or service causes are exit 2 with one sentence saying what to
change (not exit 3, "the environment could not be started"); translated errors keep their cause.

Each case runs the real command on a one-service system (the mini system's service) and fails before any saga.
"""

from __future__ import annotations

import ast
import shutil
import socket
import stat
import subprocess
from pathlib import Path

import pytest
from sagaproof.chaos.errors import ChaosError
from sagaproof.harness.errors import FaultError, boundary

from tests.conftest import MINI, ROOT, SAGAPROOF

SYSTEM = """
[nats]
[services.alpha]
command = {command}
env = {{ PORT = "{port}", NATS_URL = "{{nats_url}}", DATA_DIR = "{{data_dir}}", SVC_NAME = "{{name}}" }}
ready = {{ http = "/health", timeout = "20s" }}

[workload]
via = "publish"
subject = "work.alpha"
"""


def _system(tmp_path: Path, command: str, port: str = "{port}") -> Path:
    d = tmp_path / "sys"
    d.mkdir()
    shutil.copy(MINI / "svc.py", d / "svc.py")
    (d / "sagaproof.toml").write_text(SYSTEM.format(command=command, port=port))
    return d


def _run(system: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SAGAPROOF, "run", str(system), "--no-chaos", "--sagas", "1", "--report-dir",
                           str(tmp_path / "report")], capture_output=True, text=True, timeout=120)


def _one_sentence(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_a_program_that_cannot_be_run_is_exit_2(tmp_path: Path):
    system = _system(tmp_path, '["./start.sh"]')
    (system / "start.sh").write_text("#!/bin/sh\nexec python3 svc.py\n")  # not executable
    (system / "start.sh").chmod(stat.S_IRUSR | stat.S_IWUSR)
    line = _one_sentence(_run(system, tmp_path))
    assert "services.alpha.command" in line and "Permission denied" in line and "fix the command" in line, line


def test_a_script_that_does_not_exist_is_exit_2(tmp_path: Path):
    system = _system(tmp_path, '["{python}", "svc_v2.py"]')
    line = _one_sentence(_run(system, tmp_path))
    assert "the script 'svc_v2.py' does not exist in" in line and "services.alpha.command" in line, line


def test_a_port_fixed_in_the_system_file_and_taken_is_exit_2(tmp_path: Path):
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        system = _system(tmp_path, '["{python}", "svc.py"]', port=str(port))
        line = _one_sentence(_run(system, tmp_path))
    assert "could not listen on its port, which another program holds" in line and "{port}" in line, line


def test_the_boundary_keeps_the_cause():
    refused = ChaosError("proxy 'payment' not found")
    with pytest.raises(FaultError) as info:
        with boundary("fault"):
            raise refused
    assert info.value.__cause__ is refused


# chaos/toxiproxy/ (the fault proxy server, another issue's) still drops causes: listed in the report.
NOT_YET = ("chaos/toxiproxy/",)


def test_no_translated_error_drops_its_cause():
    """`raise ... from None` inside an except clause hides what went wrong from the API's users and from a
    debugger; the CLI prints one sentence either way."""
    offenders = []
    for top in ("harness", "contracts", "chaos", "sagaproof"):
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel.startswith(NOT_YET):
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ExceptHandler):
                    offenders += [f"{rel}:{r.lineno}" for r in ast.walk(node) if isinstance(r, ast.Raise)
                                  and isinstance(r.cause, ast.Constant) and r.cause.value is None]
    assert offenders == [], "raise ... from exc instead: " + ", ".join(offenders)
