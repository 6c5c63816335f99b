"""The one exception class of the chaos package.

Every mistake a caller can make (an unknown fault name, a proxy that does not exist, a
Toxiproxy server that cannot be reached or answers with an error) is raised as
`ChaosError` with one sentence that names what was wrong and what to do.
"""

from __future__ import annotations

__all__ = ["ChaosError"]


class ChaosError(Exception):
    """A fault could not be set up, changed or healed; the message says why and what to do.

    Attributes:
        status: the HTTP status of the Toxiproxy answer that caused it, if any.
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
