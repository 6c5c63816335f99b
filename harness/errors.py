"""The harness's exception tree, the exit codes they map to, and the one boundary to contracts and chaos.

Every error a user can cause derives from :class:`SagaproofError` and carries one sentence that says
what was wrong and what to do. The CLI prints that sentence and exits with ``exit_code``; no traceback::

    SagaproofError            exit 2 unless a subclass says otherwise
    ├── ConfigError           the system file, a command-line option or a contract document is wrong (2)
    └── EnvironmentStartError NATS, a fault proxy or a service could not be started (3)
        ├── ServiceCrashed    a service exited or failed its readiness probe during start-up
        └── FaultError        a fault could not be injected or healed

The packages the harness uses raise their own errors (``contracts.ContractsError``, ``chaos.ChaosError``).
They are translated here, in one place: :func:`translate` maps one to the harness's error for what the
harness was doing (``during``), and :func:`boundary` is the context manager every call into those packages
goes through. No call site translates on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Literal

__all__ = ["EXIT_CHECK_FAILED", "EXIT_ENVIRONMENT", "EXIT_OK", "EXIT_USAGE", "ConfigError",
           "EnvironmentStartError", "FaultError", "SagaproofError", "ServiceCrashed", "boundary", "translate"]

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2
EXIT_ENVIRONMENT = 3


class SagaproofError(Exception):
    """Base class of every error the harness reports to a user."""

    exit_code = EXIT_USAGE


class ConfigError(SagaproofError):
    """The system file (or a command-line option, or a contract document) is wrong: exit code 2."""

    exit_code = EXIT_USAGE


class EnvironmentStartError(SagaproofError):
    """NATS, a proxy or a service could not be started: exit code 3."""

    exit_code = EXIT_ENVIRONMENT


class ServiceCrashed(EnvironmentStartError):
    """A service exited or failed its readiness probe during start-up."""

    def __init__(self, message: str, *, service: str, log_path: str | None = None, tail: list[str] | None = None):
        super().__init__(message)
        self.service = service
        self.log_path = log_path
        self.tail = tail or []


class FaultError(EnvironmentStartError):
    """A fault could not be injected or healed (the fault proxy or a process refused)."""

    def __init__(self, message: str, *, fault: dict[str, object] | None = None):
        super().__init__(message)
        self.fault = fault or {}


During = Literal["config", "environment", "fault"]


def translate(exc: BaseException, during: During) -> SagaproofError | None:
    """The harness error for an error of ``contracts`` or ``chaos``; None for anything else.

    Contract documents are user input, whatever the harness was doing: :class:`ConfigError`. A chaos error
    is a :class:`ConfigError` while the run is being set up from the system file (an unknown fault, an
    intensity out of range), an :class:`EnvironmentStartError` while the environment starts (the fault proxy
    cannot be reached), and a :class:`FaultError` while a fault is injected or healed.
    """
    if isinstance(exc, SagaproofError):
        return exc
    from sagaproof.chaos.errors import ChaosError
    from sagaproof.contracts.errors import ContractsError

    if isinstance(exc, ContractsError):
        return ConfigError(str(exc))
    if isinstance(exc, ChaosError):
        if during == "config":
            return ConfigError(str(exc))
        if during == "fault":
            return FaultError(str(exc))
        return EnvironmentStartError(f"the fault proxies could not be set up: {exc}")
    return None


@contextmanager
def boundary(during: During, say: Callable[[BaseException], str] | None = None) -> Iterator[None]:
    """Run a call into ``contracts`` or ``chaos``; their errors leave as the harness's (see :func:`translate`).

    ``say(exc)``, when given, words the sentence for this call site (what it was doing and what to do); which
    harness error it becomes is still decided here.
    """
    try:
        yield
    except Exception as exc:
        err = translate(exc, during)
        if err is None or err is exc:
            raise
        if say is not None:
            err = type(err)(say(exc))
        raise err from exc
