"""A Toxiproxy-compatible fault proxy server (asyncio), with NATS message-level toxics.

It speaks the HTTP API of Toxiproxy 2.x (proxies, toxics, /populate, /reset, /version) so
any Toxiproxy client works against it. Embedded use:

    server = await chaos.toxiproxy.serve(host="127.0.0.1", port=0, seed=7)
    ...  # point a client at server.url
    await server.close()

Standalone: `sagaproof toxiproxy --port 8474 [--proxy-metrics] [--runtime-metrics]` (see `main` /
`run_standalone`; it runs on uvloop). With a metrics flag, `/metrics` serves Prometheus text with the
reference server's metric names.
The OpenAPI 3.1 description of the API is `openapi.json` in this package (`openapi_path()`).
"""

from __future__ import annotations

from pathlib import Path

from sagaproof.chaos.toxiproxy import (
    _nats,  # noqa: F401  (registers the NATS message toxics)
    _windows,  # noqa: F401  (registers nats_windows)
)
from sagaproof.chaos.toxiproxy._api import VERSION
from sagaproof.chaos.toxiproxy._nats import subject_matches
from sagaproof.chaos.toxiproxy._proxy import hold_dials, release_dials
from sagaproof.chaos.toxiproxy._server import (
    ToxiproxyServer,
    add_arguments,
    event_loop_factory,
    main,
    run_standalone,
    serve,
)
from sagaproof.chaos.toxiproxy._toxics import REGISTRY
from sagaproof.chaos.toxiproxy._windows import (
    WINDOW_KINDS,
    Window,
    WindowPlan,
    register_plan,
    unregister_plan,
)


def toxic_types() -> list[str]:
    """Names of every toxic type the server accepts."""
    return sorted(REGISTRY)


def openapi_path() -> Path:
    """Path of the OpenAPI 3.1 description of the API."""
    return Path(__file__).with_name("openapi.json")


__all__ = [
    "VERSION",
    "WINDOW_KINDS",
    "Window",
    "WindowPlan",
    "ToxiproxyServer",
    "add_arguments",
    "event_loop_factory",
    "hold_dials",
    "main",
    "openapi_path",
    "register_plan",
    "release_dials",
    "run_standalone",
    "serve",
    "subject_matches",
    "toxic_types",
    "unregister_plan",
]
