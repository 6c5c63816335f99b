"""sagaproof contracts: AsyncAPI 3.0 and JSON Schema event contracts for NATS.

Loading (:func:`load`, :func:`load_dir`, :func:`load_at_git_ref`; work trees, directories, git commits and
other repositories in :mod:`sagaproof.contracts.sources`), static checks (:func:`check`,
:func:`is_compatible`), the breaking-change gate (:func:`diff`), what runs where and can-i-deploy
(:func:`read_environment`, :func:`can_i_deploy`), live validation (:class:`LiveValidator`), Pact message
pacts (:func:`message_pact`, :func:`verify_pacts`) and HTTP fuzzing (:func:`fuzz_openapi`).
This package never imports ``harness`` or ``chaos``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sagaproof.contracts import render
from sagaproof.contracts.can_i_deploy import Matrix, Row, Version, can_i_deploy
from sagaproof.contracts.check import ChannelRow, CheckReport, Problem, check
from sagaproof.contracts.compat import Verdict, is_compatible
from sagaproof.contracts.deploy import Deployment, Environment, read_environment
from sagaproof.contracts.diff import Change, diff
from sagaproof.contracts.errors import ContractError, ContractsError, ContractSourceError
from sagaproof.contracts.git_refs import load_at_git_ref
from sagaproof.contracts.live import LiveValidator, Violation
from sagaproof.contracts.loader import load, load_dir
from sagaproof.contracts.model import Channel, ContractSet, Message, SubjectSchema

if TYPE_CHECKING:  # imported lazily at run time (see __getattr__); typed here for checkers
    from sagaproof.contracts.http_fuzz import fuzz_openapi
    from sagaproof.contracts.pacts import message_pact, verify_pacts

__all__ = [
    "Change",
    "Channel",
    "ChannelRow",
    "CheckReport",
    "ContractError",
    "ContractSet",
    "ContractSourceError",
    "ContractsError",
    "Deployment",
    "Environment",
    "LiveValidator",
    "Matrix",
    "Message",
    "Problem",
    "Row",
    "SubjectSchema",
    "Verdict",
    "Version",
    "Violation",
    "can_i_deploy",
    "check",
    "diff",
    "fuzz_openapi",
    "is_compatible",
    "load",
    "load_at_git_ref",
    "load_dir",
    "message_pact",
    "read_environment",
    "render",
    "verify_pacts",
]


def __getattr__(name: str) -> object:
    # pact-python and schemathesis are heavy: import them only when these are used.
    if name == "message_pact":
        from sagaproof.contracts.pacts import message_pact
        return message_pact
    if name == "verify_pacts":
        from sagaproof.contracts.pacts import verify_pacts
        return verify_pacts
    if name == "fuzz_openapi":
        from sagaproof.contracts.http_fuzz import fuzz_openapi
        return fuzz_openapi
    raise AttributeError(f"module 'contracts' has no attribute {name!r}")
