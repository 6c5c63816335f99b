"""Helpers that run the trips example for real through sagaproof's own engine (a session): a nats-server with
JetStream and the five services as separate processes, started from ``examples/trips/sagaproof.toml``, with
the run's history recorded. Nothing is mocked; every test gets a fresh broker and fresh data directories."""

from __future__ import annotations

import importlib.util
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from sagaproof.harness.config import load_system_file
from sagaproof.harness.session.engine import Session
from sagaproof.harness.session.handle import SessionHandle

ROOT = Path(__file__).resolve().parents[2]
TRIPS_DIR = ROOT / "examples" / "trips"
SERVICES = ("trips", "risk", "payments", "flights", "hotels")
TERMINAL = ("CONFIRMED", "REJECTED", "CANCELLED")


def load_trips_module(name: str) -> ModuleType:
    """Import one of the example's plain modules (workload, invariants, bugs) under a ``trips_`` name."""
    if f"trips_{name}" not in sys.modules:
        spec = importlib.util.spec_from_file_location(f"trips_{name}", TRIPS_DIR / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    return sys.modules[f"trips_{name}"]


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy (a service's state has no change notification)."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)


class Trips:
    """The running trips system (``.system`` is sagaproof's handle), plus what the tests ask of it."""

    def __init__(self, tmp_path: Path, env: dict[str, str]) -> None:
        self.workload = load_trips_module("workload")
        self.session = Session(load_system_file(TRIPS_DIR), report_dir=tmp_path / "report", env=env).open()
        self.system = SessionHandle(self.session)

    def close(self) -> None:
        self.session.close()

    def __getitem__(self, name: str) -> Any:
        return self.system.services[name]

    def state(self, name: str) -> dict[str, Any]:
        return self[name].http.get("/state").json()

    def book(self, path: str, n: int = 0) -> str:
        """Book the n-th workload trip on ``path``; returns its trip_id."""
        index = self.workload.PATHS.index(path) + 10 * n
        body = self.workload.trip_body(index, random.Random(index))
        resp = self["trips"].http.post("/trips", json=body)
        assert resp.status == 201, resp.text
        return resp.json()["trip_id"]

    def trips(self) -> dict[str, dict[str, Any]]:
        return self.state("trips")["trips"]

    def wait_terminal(self, trip_ids: list[str], timeout: float = 15) -> dict[str, dict[str, Any]]:
        def done() -> dict[str, dict[str, Any]] | None:
            trips = self.trips()
            return trips if all(trips[t]["status"] in TERMINAL for t in trip_ids) else None

        return wait_for(done, timeout, f"trips {trip_ids} to end", interval=0.1)

    def subjects(self, trip_id: str) -> list[str]:
        """The subjects of the trip's events on the wire, in order."""
        return [r["subject"] for r in self.system.history() if r.get("kind") == "message"
                and isinstance(r.get("data"), dict) and r["data"].get("data", {}).get("trip_id") == trip_id]

    def wait_events(self, trip_id: str, *subjects: str, timeout: float = 15) -> list[str]:
        """Wait until the trip's events include every one of ``subjects``; returns its subjects in order."""
        def seen() -> list[str] | None:
            got = self.subjects(trip_id)
            return got if all(s in got for s in subjects) else None

        return wait_for(seen, timeout, f"{', '.join(subjects)} for {trip_id}", interval=0.1)

    def wait_idle(self, timeout: float = 15) -> None:
        """Wait until every consumer has worked through the stream and every outbox is empty."""
        wait_for(self._idle, timeout, "every consumer and outbox to drain", interval=0.1)

    def _idle(self) -> bool:
        if any(self.state(name)["outbox_unsent"] for name in SERVICES):
            return False
        return self.system.loop.run(_consumers_idle(self.system.nats_url), timeout=10)


async def _consumers_idle(url: str) -> bool:
    import nats

    nc = await nats.connect(url)
    try:
        infos = await nc.jetstream().consumers_info("TRIPS")
        return all(i.num_pending == 0 and i.num_ack_pending == 0 for i in infos
                   if i.config.durable_name)
    finally:
        await nc.close()
