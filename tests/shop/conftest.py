"""Fixtures for the example shop's tests: a fresh nats-server per test and ``make_shop`` to build
and start the four services on it (see shop_fixture.py for the helpers)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from shop_fixture import NatsServer, Shop


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def make_shop(tmp_path: Path, nats_server: NatsServer) -> Iterator[Callable[..., Shop]]:
    """``make_shop(env={...}, start=True)`` builds (and by default starts) the shop."""
    shops: list[Shop] = []

    def make(env: dict[str, str] | None = None, start: bool = True) -> Shop:
        shop = Shop(tmp_path, nats_server, env or {})
        shops.append(shop)
        if start:
            shop.start()
        return shop

    yield make
    for shop in shops:
        shop.stop()
