"""Every mistake a user can make on the command line gets one sentence and an exit code, never a traceback.

One table drives the real `sagaproof` command (a subprocess, as a user or a CI job runs it) over bad flags,
bad system files, bad contract documents, bad schedule and pact files, a busy port, an unwritable report
directory and a missing nats-server. Each row says the exit code and a phrase the sentence must contain.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import MINI, SAGAPROOF, SHOP, copy_example


@dataclass(frozen=True)
class Case:
    id: str
    args: Callable[[Path], list[str]]  # given a scratch directory, the arguments after `sagaproof`
    code: int
    says: str  # a phrase the one sentence must contain (case-insensitive)
    setup: Callable[[Path], None] | None = None
    env: Callable[[Path], dict[str, str]] | None = None


def _mini(tmp: Path, toml: str | None = None) -> Path:
    d = tmp / "sys"
    shutil.copytree(MINI, d)
    if toml is not None:
        (d / "sagaproof.toml").write_text(toml)
    return d


def _shop(tmp: Path) -> Path:
    d = tmp / "shop"
    copy_example(SHOP, d, "__pycache__", ".hypothesis")
    return d


def _write(rel: str, text: str) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp / rel).write_text(text)
    return setup


def _bad_contract(tmp: Path) -> None:
    shop = _shop(tmp)
    (shop / "contracts" / "payment.yaml").write_text("asyncapi: 3.0.0\ninfo: {title: payment\nchannels: [\n")


def _invalid_schema_contract(tmp: Path) -> None:
    shop = _shop(tmp)
    text = (shop / "contracts" / "payment.yaml").read_text()
    (shop / "contracts" / "payment.yaml").write_text(text.replace("type: object", "type: objekt", 1))


def _bad_pacts(tmp: Path) -> None:
    (tmp / "pacts").mkdir()
    (tmp / "pacts" / "order-payment.json").write_text('{"consumer": {"name": "order"}, "messages": [')


def _busy_port(tmp: Path) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    _HELD.append(sock)
    (tmp / "port").write_text(str(sock.getsockname()[1]))


_HELD: list[socket.socket] = []

CASES = [
    # flags
    Case("no-command", lambda t: [], 2, "required"),
    Case("unknown-command", lambda t: ["deploy"], 2, "invalid choice"),
    Case("seed-not-a-number", lambda t: ["run", str(MINI), "--seed", "abc"], 2, "--seed"),
    Case("negative-sagas", lambda t: ["run", str(MINI), "--sagas", "-3"], 2, "at least 1"),
    Case("zero-shrink-runs", lambda t: ["run", str(MINI), "--shrink-runs", "0"], 2, "at least 1"),
    Case("bad-duration", lambda t: ["run", str(MINI), "--duration", "5x"], 2, "duration"),
    Case("unknown-fault", lambda t: ["run", str(MINI), "--faults", "latncy"], 2, "unknown fault"),
    Case("intensity-out-of-range", lambda t: ["run", str(MINI), "--intensity", "2"], 2, "between 0 and 1"),
    Case("env-without-equals", lambda t: ["run", str(MINI), "--env", "SHOP_BUG"], 2, "KEY=VALUE"),
    Case("port-out-of-range", lambda t: ["toxiproxy", "--port", "70000"], 2, "not a TCP port"),
    # the system file
    Case("no-system-file", lambda t: ["run", str(t)], 2, "sagaproof.toml"),
    Case("system-file-syntax", lambda t: ["run", str(_mini(t, "[nats\n"))], 2, "sagaproof.toml"),
    Case("system-file-unknown-key", lambda t: ["up", str(_mini(t, (MINI / "sagaproof.toml").read_text()
                                                               + "\n[workload]\nsgas = 3\n"))], 2, "sagaproof.toml"),
    # contract documents
    Case("contract-yaml-syntax", lambda t: ["contracts", "check", str(t / "shop")], 2, "payment.yaml",
         setup=_bad_contract),
    Case("contract-invalid-schema", lambda t: ["contracts", "check", str(t / "shop")], 2, "payment.yaml",
         setup=_invalid_schema_contract),
    Case("diff-unknown-ref", lambda t: ["contracts", "diff", "--base", "no-such-ref-xyz", str(SHOP)], 2,
         "no-such-ref-xyz"),
    # schedule files: both used to print a traceback
    Case("schedule-missing", lambda t: ["run", str(MINI), "--schedule", str(t / "nope.json")], 2, "cannot be read"),
    Case("schedule-not-json", lambda t: ["run", str(MINI), "--schedule", str(t / "s.json")], 2, "not valid JSON",
         setup=_write("s.json", "{")),
    Case("schedule-malformed-fault", lambda t: ["run", str(MINI), "--schedule", str(t / "s.json")], 2, "lacks id",
         setup=_write("s.json", json.dumps([{"kind": 5}]))),
    Case("schedule-unknown-kind", lambda t: ["run", str(MINI), "--schedule", str(t / "s.json")], 2, "unknown kind",
         setup=_write("s.json", json.dumps([{"id": "f1", "kind": "meteor", "target": "alpha", "start": 0,
                                              "duration": 1}]))),
    Case("schedule-unknown-target", lambda t: ["run", str(MINI), "--schedule", str(t / "s.json")], 2,
         "not a service", setup=_write("s.json", json.dumps([{"id": "f1", "kind": "kill", "target": "omega",
                                                               "start": 0, "duration": 1}]))),
    Case("schedule-not-a-list", lambda t: ["run", str(MINI), "--schedule", str(t / "s.json")], 2, "JSON list",
         setup=_write("s.json", json.dumps({"faults": []}))),
    # pact files
    Case("pacts-malformed", lambda t: ["contracts", "verify-pacts", str(SHOP), "--pacts", str(t / "pacts"),
                                       "--report-dir", str(t / "r")], 2, "order-payment.json", setup=_bad_pacts),
    Case("pacts-dir-missing", lambda t: ["contracts", "verify-pacts", str(SHOP), "--pacts", str(t / "nopacts"),
                                         "--report-dir", str(t / "r")], 2, "nopacts"),
    # a busy port for the fault proxy: used to print a traceback
    Case("toxiproxy-port-busy", lambda t: ["toxiproxy", "--port", (t / "port").read_text()], 2, "cannot listen",
         setup=_busy_port),
    # report directories that cannot be written
    Case("report-dir-under-a-file", lambda t: ["run", str(MINI), "--report-dir", str(t / "afile" / "r")], 2,
         "cannot write", setup=_write("afile", "")),
    Case("up-report-dir-under-a-file", lambda t: ["up", str(MINI), "--report-dir", str(t / "afile" / "r")], 2,
         "cannot write", setup=_write("afile", "")),
    # many seeds, merges, attach mode (issue 14)
    Case("seeds-backwards", lambda t: ["run", str(MINI), "--seeds", "5-1"], 2, "backwards"),
    Case("jobs-without-seeds", lambda t: ["run", str(MINI), "--jobs", "2"], 2, "needs --seeds"),
    Case("merge-not-a-report", lambda t: ["merge", str(t), "--report-dir", str(t / "out")], 2,
         "not a sagaproof report directory"),
    # replaying a recorded run (issue 11)
    Case("replay-no-such-dir", lambda t: ["replay", str(t / "nope")], 2, "no such report directory"),
    Case("replay-not-a-report", lambda t: ["replay", str(t)], 2, "no report.json here"),
    Case("replay-broken-report", lambda t: ["replay", str(t / "r")], 2, "cannot be read as a run's report",
         setup=_write("r/report.json", "{")),
    Case("attached-service-without-nats-url", lambda t: ["run", str(_mini(t, '[services.api]\nurl = '
                                                                        '"http://127.0.0.1:9"\n'))], 2, "set nats.url"),
    # the deploy gate's own subcommands
    Case("can-i-deploy-no-deployments", lambda t: ["contracts", "can-i-deploy", "payment", "--to", "prod", "--dir",
                                                   str(SHOP)], 2, "no deployments are recorded"),
    Case("record-deployment-unknown-service", lambda t: ["contracts", "record-deployment", "nosuch", "--env", "prod",
                                                         "--dir", str(SHOP)], 2, "has no contract"),
    # no nats-server to start: the environment cannot start (3)
    Case("nats-server-missing", lambda t: ["run", str(MINI), "--sagas", "1", "--report-dir", str(t / "r")], 3,
         "SAGAPROOF_NATS_SERVER", env=lambda t: {"SAGAPROOF_NATS_SERVER": str(t / "no-nats-server")}),
]


@pytest.fixture
def scratch(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    while _HELD:
        _HELD.pop().close()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gets_one_sentence_and_an_exit_code(case: Case, scratch: Path) -> None:
    if case.setup is not None:
        case.setup(scratch)
    env = {**os.environ, "COLUMNS": "200", **(case.env(scratch) if case.env else {})}
    proc = subprocess.run([*SAGAPROOF, *case.args(scratch)], cwd=scratch, env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=300)
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out, out
    assert proc.returncode == case.code, f"exit {proc.returncode}, expected {case.code}:\n{out}"
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("sagaproof:")]
    assert len(errors) == 1, f"expected one error sentence on stderr, got:\n{proc.stderr}"
    assert case.says.lower() in errors[0].lower(), errors[0]
    assert not (scratch / ".hypothesis").exists(), "a failing command must not leave a .hypothesis/ folder behind"


def _command_paths(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Every command the parser defines, as its words: ("run",), ("contracts",), ("contracts", "check")..."""
    paths: set[tuple[str, ...]] = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                paths.add((*prefix, name))
                paths |= _command_paths(sub, (*prefix, name))
    return paths


def test_the_table_covers_every_command_and_subcommand(scratch: Path) -> None:
    from sagaproof.harness.front.cli import build_parser

    defined = _command_paths(build_parser())
    assert ("contracts", "can-i-deploy") in defined and ("run",) in defined  # the walk sees both levels
    covered: set[tuple[str, ...]] = set()
    for i, case in enumerate(CASES):
        d = scratch / str(i)
        d.mkdir()
        if case.setup is not None:
            case.setup(d)
        args = case.args(d)
        covered |= {tuple(args[:n]) for n in range(1, len(args) + 1)}
    missing = sorted(" ".join(p) for p in defined - covered)
    assert not missing, f"commands without a bad-input row: {missing}"
