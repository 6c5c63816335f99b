"""The harness's exception tree and the exit codes they map to.

Every error a user can cause derives from :class:`SagaproofError` and carries one sentence that says
what was wrong and what to do. The CLI prints that sentence and exits with ``exit_code``; no traceback.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2
EXIT_ENVIRONMENT = 3


class SagaproofError(Exception):
    """Base class of every error the harness reports to a user."""

    exit_code = EXIT_USAGE


class ConfigError(SagaproofError):
    """The system file (or a command-line option) is wrong: exit code 2."""

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
