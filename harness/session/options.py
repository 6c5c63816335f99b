"""The options of one run (:class:`RunOptions`: the command line's, a replay's or a test's), the commands that
repeat a run, and the environment a run's services inherit (secrets masked in what is recorded)."""

from __future__ import annotations

import os
import random
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sagaproof.harness.config import SystemSpec
from sagaproof.harness.env.system import (
    MACHINE_VARS,  # not recorded, never replayed: the machine, not the system
)

DEFAULT_REPORT_DIR = Path("sagaproof-report")

# --------------------------------------------------------------------------------------------- options


@dataclass
class RunOptions:
    """Options of one run (the command line's, a replay's, or a test's)."""

    seed: int | None = None
    sagas: int | None = None
    duration: float | None = None
    faults: tuple[str, ...] | None = None
    intensity: float | None = None
    report_dir: Path = DEFAULT_REPORT_DIR
    shrink: bool = False
    shrink_runs: int = 8
    chaos: bool = True
    env: dict[str, str] = field(default_factory=dict)
    quiet: float = 1.0
    system_arg: str = "."
    schedule: list[dict[str, Any]] | None = None  # a fixed fault schedule (shrinking re-runs, replay)
    replayed_env: dict[str, str] = field(default_factory=dict)  # inherited variables a replay sets again
    replay_of: str | None = None
    reports: bool = True
    phases: tuple[str, ...] | None = None  # the nemesis's phases ("targeted", "random"); None: [chaos] phases
    targeted: list[dict[str, Any]] | None = None  # a fixed plan of targeted windows (replay)
    plugins: tuple[str, ...] = ()  # --plugin modules (resolved), loaded again by a replay (harness.plugins)

    def resolved_seed(self) -> int:
        if self.seed is None:
            self.seed = random.SystemRandom().randrange(1, 2**31)
        return self.seed

    def to_dict(self) -> dict[str, Any]:
        """What a replay needs (report.json's ``options``; secret-looking --env values masked)."""
        return {"system_arg": self.system_arg, "seed": self.seed, "sagas": self.sagas, "duration": self.duration,
                "faults": list(self.faults) if self.faults is not None else None, "intensity": self.intensity,
                "chaos": self.chaos, "env": mask_secrets(self.env), "replay_of": self.replay_of,
                "phases": list(self.phases) if self.phases is not None else None, "plugins": list(self.plugins)}


def run_command(opts: RunOptions) -> str:
    """The ``sagaproof run ...`` command equivalent to these options (seed, size, faults, --env)."""
    parts = ["sagaproof", "run", opts.system_arg, "--seed", str(opts.seed)]
    if opts.duration is not None:
        parts += ["--duration", f"{opts.duration:g}s"]
    elif opts.sagas is not None:
        parts += ["--sagas", str(opts.sagas)]
    if opts.faults is not None:
        parts += ["--faults", ",".join(opts.faults) or "none"]
    if opts.intensity is not None:
        parts += ["--intensity", f"{opts.intensity:g}"]
    if not opts.chaos:
        parts += ["--no-chaos"]
    if opts.phases is not None:
        parts += ["--phases", ",".join(opts.phases)]
    if Path(opts.report_dir) != DEFAULT_REPORT_DIR:
        parts += ["--report-dir", str(opts.report_dir)]
    for k, v in sorted(mask_secrets(opts.env).items()):
        parts += ["--env", f"{k}={v}"]
    for plugin in opts.plugins:
        parts += ["--plugin", plugin]
    return " ".join(shlex.quote(p) for p in parts)


def replay_command(report_dir: str | Path) -> str:
    """The one command that reproduces a recorded run."""
    return f"sagaproof replay {shlex.quote(str(report_dir))}"


# --------------------------------------------------------------------------------------------- environment


SECRET_NAME = re.compile(r"SECRET|TOKEN|PASSW|PASSPHRASE|CREDENTIAL|PRIVATE|API_?KEY|ACCESS_?KEY|AUTH|COOKIE"
                         r"|SESSION|(^|_)KEY$|_PW$|^PW_|SIGNATURE|CERT", re.I)
MASKED = "***"
def mask_secrets(env: dict[str, str]) -> dict[str, str]:
    """The same variables, with the values of secret-looking names replaced by ``***``."""
    return {k: (MASKED if SECRET_NAME.search(k) else v) for k, v in env.items()}


def inherited_env(spec: SystemSpec, extra: dict[str, str], environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment variables the services inherit that neither the system file nor ``--env`` sets (the
    machine's own, like PATH and HOME, left out), with secret-looking values masked: what a replay needs."""
    if not any(s.inherit_env for s in spec.services.values()):
        return {}
    environ = dict(os.environ if environ is None else environ)
    set_by_file = {k for s in spec.services.values() for k in s.env} | set(extra)
    return mask_secrets({k: v for k, v in sorted(environ.items())
                         if k not in set_by_file and not MACHINE_VARS.match(k) and not k.startswith("SAGAPROOF_")})
