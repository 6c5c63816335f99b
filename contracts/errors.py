"""Exceptions raised by the contracts package.

Tree::

    ContractsError            base class of every error this package raises
    ├── ContractError         a contract document is invalid (file, JSON pointer, problem)
    └── ContractSourceError   a contract source cannot be read (missing file, bad git ref)

Both are user mistakes: the CLI prints the message (one sentence) and exits with code 2.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["ContractError", "ContractSourceError", "ContractsError"]


class ContractsError(Exception):
    """Base class of all errors raised by :mod:`contracts`."""


class ContractError(ContractsError):
    """A contract document is not valid.

    Attributes:
        file: the document that holds the problem.
        pointer: JSON pointer (RFC 6901) to the offending node, ``""`` for the whole document.
        problem: what is wrong, in words.
    """

    def __init__(self, file: str | Path, pointer: str, problem: str) -> None:
        self.file = str(file)
        self.pointer = pointer
        self.problem = problem
        where = f"{self.file}#{pointer}" if pointer else self.file
        super().__init__(f"{where}: {problem}")


class ContractSourceError(ContractsError):
    """A contract source (file, directory, git ref) could not be read."""
