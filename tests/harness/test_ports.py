"""Service ports are reserved until the services start, so links bound to port 0 cannot take them."""

from __future__ import annotations

import errno
import socket

import pytest
from sagaproof.harness.env.nats_server import PortReservation


def _bind(port: int) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        s.close()
        raise
    return s


def test_a_reserved_port_cannot_be_taken_until_it_is_released() -> None:
    reserved = PortReservation(["orders", "payment"])
    try:
        assert len(set(reserved.ports.values())) == 2
        for port in reserved.ports.values():
            with pytest.raises(OSError) as exc:
                _bind(port)
            assert exc.value.errno == errno.EADDRINUSE
        # whatever binds port 0 meanwhile (a fault-proxy link, say) is given some other port
        others = [_bind(0) for _ in range(200)]
        try:
            assert not {s.getsockname()[1] for s in others} & set(reserved.ports.values())
        finally:
            for s in others:
                s.close()
    finally:
        reserved.release()
    for port in reserved.ports.values():  # released: the service can now bind its port
        _bind(port).close()
    reserved.release()  # idempotent
