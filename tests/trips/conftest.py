"""Fixtures for the trips example's tests: ``make_trips(env)`` brings the five services up (through
sagaproof's System) on a fresh broker, and takes them down after the test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from trips_fixture import Trips


@pytest.fixture
def make_trips(tmp_path: Path) -> Iterator[Callable[..., Trips]]:
    made: list[Trips] = []

    def make(env: dict[str, str] | None = None) -> Trips:
        trips = Trips(tmp_path / f"run{len(made)}", env or {})
        made.append(trips)
        return trips

    yield make
    for trips in made:
        trips.close()
