"""What runs where: one small TOML file per environment (``deployments/ENV.toml``), kept in the repository
so that a deploy is reviewed and diffed like code. ``sagaproof contracts record-deployment`` writes it and
``sagaproof contracts can-i-deploy`` reads it; no broker is involved.

The file::

    # Which commit of the contracts each service runs in prod.
    # Written by `sagaproof contracts record-deployment`; commit it with the deploy.

    [services.order]
    ref = "3c1f0e2d9a..."        # the commit that runs now
    ref_name = "v1.4.0"          # the ref it was recorded with
    previous = "9ab01cd4e1..."   # the commit it replaced: its messages may still be in the streams
    recorded_at = "2025-06-01T12:00:00Z"
"""

from __future__ import annotations

import datetime as _dt
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from sagaproof.contracts.errors import ContractSourceError

__all__ = ["Deployment", "Environment", "environment_names", "read_environment", "valid_environment_name"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_SHA = re.compile(r"^[0-9a-f]{7,64}$")


def valid_environment_name(name: str) -> bool:
    """Letters, digits, ``.``, ``_`` and ``-``, starting with a letter or digit (it becomes a file name)."""
    return bool(_NAME.match(name)) and name not in (".", "..")


@dataclass
class Deployment:
    """The commit a service runs in an environment, and the one it replaced."""

    service: str
    ref: str
    previous: str | None = None
    ref_name: str | None = None
    recorded_at: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        return {"service": self.service, "ref": self.ref, "ref_name": self.ref_name, "previous": self.previous,
                "recorded_at": self.recorded_at}


@dataclass
class Environment:
    """The deployments of one environment, read from and written to ``<dir>/<name>.toml``."""

    name: str
    path: Path
    services: dict[str, Deployment] = field(default_factory=dict)

    def record(self, service: str, sha: str, *, ref_name: str | None = None, clear_previous: bool = False,
               now: _dt.datetime | None = None) -> Deployment:
        """*service* now runs commit *sha*; what ran before becomes ``previous`` (unless it is the same).

        With *clear_previous*, no previous version is kept: the streams hold no message of it any more.
        """
        old = self.services.get(service)
        previous = old.previous if old is not None and old.ref == sha else (old.ref if old is not None else None)
        if clear_previous:
            previous = None
        when = (now or _dt.datetime.now(_dt.UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
        dep = Deployment(service, sha, previous, ref_name, when)
        self.services[service] = dep
        return dep

    def undeploy(self, service: str) -> Deployment:
        """Remove *service*; ``ContractSourceError`` if it is not recorded here."""
        if service not in self.services:
            known = ", ".join(sorted(self.services)) or "none"
            raise ContractSourceError(f"{service} is not recorded in {self.name} ({self.path}; recorded: {known}); "
                                      f"there is nothing to undeploy.")
        return self.services.pop(service)

    def dumps(self) -> str:
        """The file's text (stable: services sorted, one table each)."""
        lines = [f"# Which commit of the contracts each service runs in {self.name}.",
                 "# Written by `sagaproof contracts record-deployment`; commit it with the deploy.",
                 "# `previous` is the commit it replaced: its messages may still be in the streams."]
        for name in sorted(self.services):
            d = self.services[name]
            lines += ["", f"[services.{_key(name)}]", f"ref = {json.dumps(d.ref)}"]
            if d.ref_name:
                lines.append(f"ref_name = {json.dumps(d.ref_name)}")
            if d.previous:
                lines.append(f"previous = {json.dumps(d.previous)}")
            if d.recorded_at:
                lines.append(f"recorded_at = {json.dumps(d.recorded_at)}")
        return "\n".join(lines) + "\n"

    def write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(self.dumps(), encoding="utf-8")


def _key(name: str) -> str:
    return name if re.match(r"^[A-Za-z0-9_-]+$", name) else json.dumps(name)


def environment_names(directory: Path) -> list[str]:
    """The environments recorded in *directory* (one ``NAME.toml`` each)."""
    if not directory.is_dir():
        return []
    return sorted(p.stem for p in directory.glob("*.toml") if valid_environment_name(p.stem))


def read_environment(directory: str | Path, name: str, *, missing_ok: bool = False) -> Environment:
    """Read ``<directory>/<name>.toml``.

    Args:
        missing_ok: return an empty environment when the file does not exist (for recording the first
            deployment) instead of raising.

    Raises:
        ContractSourceError: the name is not valid, the file does not exist (unless *missing_ok*) or is not a
            deployments file.
    """
    d = Path(directory)
    if not valid_environment_name(name):
        raise ContractSourceError(f"{name!r} is not an environment name; use letters, digits, '.', '_' and '-' "
                                  f"(it becomes the file {d}/NAME.toml).")
    path = d / f"{name}.toml"
    if not path.is_file():
        if missing_ok:
            return Environment(name, path)
        known = environment_names(d)
        also = f"; the recorded environments are {', '.join(known)}" if known else ""
        raise ContractSourceError(f"No deployments are recorded for environment {name!r} ({path} does not exist){also}; "
                                  f"record one with `sagaproof contracts record-deployment SERVICE --env {name}`.")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ContractSourceError(f"{path} is not a readable TOML file ({exc}); fix it or record the deployments "
                                  f"again.") from exc
    services = raw.get("services", {})
    if not isinstance(services, dict) or set(raw) - {"services"}:
        raise ContractSourceError(f"{path} is not a deployments file: it must hold only [services.NAME] tables "
                                  f"with ref = \"<commit>\".")
    env = Environment(name, path)
    for svc, t in services.items():
        if not isinstance(t, dict) or not isinstance(t.get("ref"), str) or not _SHA.match(t["ref"]):
            raise ContractSourceError(f"{path}: [services.{svc}] needs ref = \"<commit id>\"; record it with "
                                      f"`sagaproof contracts record-deployment {svc} --env {name} --ref REF`.")
        prev = t.get("previous")
        if prev is not None and (not isinstance(prev, str) or not _SHA.match(prev)):
            raise ContractSourceError(f"{path}: [services.{svc}] previous must be a commit id.")
        env.services[svc] = Deployment(svc, t["ref"], prev, t.get("ref_name") if isinstance(t.get("ref_name"), str)
                                       else None, str(t["recorded_at"]) if "recorded_at" in t else None)
    return env
