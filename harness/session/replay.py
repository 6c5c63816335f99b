"""``sagaproof replay REPORT_DIR``: the options that re-run a recorded run exactly.

A run's report directory holds what a replay needs: ``report.json`` (its ``options``: system, seed, size,
fault menu, ``--env``; and its ``faults`` as carried out) and ``system.json`` (``inherited_env``: the
variables the services inherited that neither the system file nor ``--env`` sets, secret-looking values
masked). The replay uses the same seed, the schedule as it was actually carried out (each fault at its
actual start and for its actual length; faults that failed or never started are left out), the same
``--env`` and the inherited variables again; a masked value must be given again (exported, or ``--env``).
It writes into a new directory and never over the original.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from sagaproof.harness.config import SystemSpec, load_system_file
from sagaproof.harness.errors import ConfigError
from sagaproof.harness.plugins import load_plugins
from sagaproof.harness.session.engine import MASKED, RunOptions
from sagaproof.harness.session.shrink import carried_out

__all__ = ["new_report_dir", "replay_options"]


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ConfigError(f"{path.parent}: no {path.name} here; pass the report directory of a sagaproof run "
                          f"(it holds report.json and system.json).") from err
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot be read as {what} ({exc}); pass an intact report directory.") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: is not {what}; pass the report directory of a sagaproof run.")
    return data


def new_report_dir(original: Path) -> Path:
    """``ORIGINAL-replay``, or ``-replay-2``, ``-replay-3``... whichever does not exist yet."""
    base = original.parent / f"{original.name}-replay"
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = original.parent / f"{original.name}-replay-{n}"
    return candidate


def _unmask(env: dict[str, str], given: dict[str, str], where: str) -> dict[str, str]:
    out = {}
    for k, v in env.items():
        if v != MASKED:
            out[k] = v
        elif k in given:
            out[k] = given[k]
        elif k in os.environ:
            out[k] = os.environ[k]
        else:
            raise ConfigError(f"{where}: the run's services saw {k}, whose value was masked because it looks like a "
                              f"secret; export {k} again (or pass --env {k}=VALUE) and run the replay again.")
    return out


def replay_options(report: str | Path, *, new_dir: str | Path | None = None, env: dict[str, str] | None = None,
                   schedule: list[dict[str, Any]] | None = None,
                   plugins: list[str] | None = None) -> tuple[SystemSpec, RunOptions]:
    """The system and the options that replay the run recorded in ``report``: its plugins loaded again
    (``options.plugins``; the system file's load with it), and *plugins* besides."""
    report = Path(report)
    if not report.is_dir():
        raise ConfigError(f"{report}: no such report directory; pass the directory a sagaproof run wrote "
                          f"(--report-dir, default sagaproof-report).")
    data = _read_json(report / "report.json", "a run's report")
    manifest = _read_json(report / "system.json", "a run's system manifest")
    options = data.get("options")
    if not isinstance(options, dict) or "seed" not in options:
        raise ConfigError(f"{report / 'report.json'}: was written by a sagaproof without what a replay needs "
                          f"(options); run the original command again with this version.")
    dest = Path(new_dir) if new_dir is not None else new_report_dir(report)
    if dest.resolve() == report.resolve():
        raise ConfigError(f"--report-dir {dest} is the report being replayed; a replay never overwrites the "
                          f"original, so give another directory (or leave --report-dir out).")
    recorded = [str(p) for p in options.get("plugins") or []]
    load_plugins(recorded, base=report, where=f"{report / 'report.json'} (options.plugins)")
    run_plugins = tuple(dict.fromkeys([*recorded, *(plugins or [])]))
    system_file = options.get("system_file") or data.get("system_path")
    location = system_file if system_file and Path(system_file).exists() else options.get("system_arg", ".")
    spec = load_system_file(location)
    given = dict(env or {})
    where = str(report / "system.json")
    replayed = _unmask(dict(manifest.get("inherited_env") or {}), given, where)
    run_env = _unmask(dict(options.get("env") or {}), given, str(report / "report.json"))
    run_env.update(given)
    faults = options.get("faults")
    chaos = bool(options.get("chaos", True))
    if schedule is None and chaos:
        schedule = carried_out(list(data.get("faults") or []))
    coverage = data.get("coverage")
    targeted = coverage.get("plan") if isinstance(coverage, dict) and isinstance(coverage.get("plan"), list) else None
    if targeted is not None:  # aimed at the delivery each window took in the run (it may have moved on from its plan's)
        targeted = [{**{k: v for k, v in w.items() if k != "landed_nth"}, "nth": w.get("landed_nth", w.get("nth"))}
                    for w in targeted if isinstance(w, dict)]
    phases = options.get("phases")
    opts = RunOptions(seed=int(options["seed"]), sagas=options.get("sagas"), duration=options.get("duration"),
                      faults=tuple(faults) if faults is not None else None, intensity=options.get("intensity"),
                      report_dir=dest, chaos=chaos, env=run_env, system_arg=str(options.get("system_arg", ".")),
                      schedule=schedule, replayed_env=replayed, replay_of=str(report),
                      phases=tuple(phases) if isinstance(phases, list) else None, targeted=targeted,
                      plugins=run_plugins)
    return spec, opts
