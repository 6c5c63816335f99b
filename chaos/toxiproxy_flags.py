"""The flags of the Toxiproxy-compatible server (``sagaproof toxiproxy``), apart from the server itself.

A parser that offers the ``toxiproxy`` command among others (``sagaproof --help``) adds these flags without
loading the server (asyncio, the event loop, TLS): this module imports only :mod:`argparse`.
:mod:`chaos.toxiproxy` re-exports :func:`add_arguments`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

__all__ = ["add_arguments", "go_bool", "port_number"]


def go_bool(text: str) -> bool:
    """A boolean flag value as Go's flag package takes it (`-proxy-metrics=false`)."""
    lowered = text.strip().lower()
    if lowered in ("1", "t", "true"):
        return True
    if lowered in ("0", "f", "false"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean value {text!r}; use true or false")


def port_number(text: str) -> int:
    """A TCP port argument, 0 to 65535 (0 picks a free one)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"'{text}' is not a TCP port (0 to 65535; 0 picks a free one)")
    return value


def add_arguments(parser: argparse.ArgumentParser, *, port_type: Callable[[str], int] = port_number) -> None:
    """The server's flags, in both spellings: `--port` and the reference server's `-port`."""
    parser.add_argument("--host", "-host", default="127.0.0.1", help="API listen address (default 127.0.0.1)")
    parser.add_argument(
        "--port", "-port", type=port_type, default=8474, help="API port (default 8474, 0 = any free port)"
    )
    parser.add_argument("--seed", "-seed", type=int, default=None, help="seed for toxicity and message faults")
    for flag, what in (
        ("proxy-metrics", "serve the proxies' byte counters on /metrics (Prometheus text)"),
        ("runtime-metrics", "serve process and Python runtime metrics on /metrics (Prometheus text)"),
    ):
        parser.add_argument(
            f"--{flag}",
            f"-{flag}",
            dest=flag.replace("-", "_"),
            nargs="?",
            const=True,
            default=False,
            type=go_bool,
            metavar="BOOL",
            help=what,
        )
