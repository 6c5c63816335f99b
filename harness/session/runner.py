"""``sagaproof run`` as a function: the whole job, by the engine (:mod:`harness.session.engine`).

Kept for callers of earlier versions: :func:`run`, :class:`RunOptions`, :func:`eventually` and
:func:`repro_command` are the session's. The outcome is an exit code (0 pass, 1 a check failed; 2 bad
usage or input and 3 "the environment could not be started" are raised as errors) and a
:class:`harness.checks.results.RunResult`.
"""

from __future__ import annotations

from typing import Any

from sagaproof.harness.session.engine import RunOptions, eventually, replay_command, run, run_command

__all__ = ["RunOptions", "eventually", "repro_command", "run"]


def repro_command(opts: RunOptions, spec: Any = None) -> str:
    """The one command that reproduces a run: ``sagaproof replay REPORT_DIR``."""
    return replay_command(opts.report_dir)


run_command = run_command
