"""The contracts as they were at a git ref (read with ``git show``, nothing checked out), or in a base directory:
the other side of ``contracts diff`` and ``contracts can-i-deploy``."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path

from sagaproof.contracts.errors import ContractSourceError
from sagaproof.contracts.loader import _build, _find_asyncapi, _read_disk
from sagaproof.contracts.model import ContractSet, SubjectSchema

__all__ = ["load_at_git_ref"]


def _git(repo: Path, *args: str) -> str:
    try:
        proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=30)
    except FileNotFoundError as err:
        raise ContractSourceError("git is not installed; pass a base directory instead of a git ref.") from err
    if proc.returncode != 0:
        raise ContractSourceError(f"git {' '.join(args)} failed in {repo}: {proc.stderr.strip().splitlines()[-1:] or ['?']}")
    return proc.stdout


def load_at_git_ref(repo_dir: str | Path, ref: str, sources: Mapping[str, Iterable[str | Path]] | str | Path,
                    schemas: Iterable[SubjectSchema] = ()) -> ContractSet:
    """Load the contracts as they were at git *ref* (or, if *ref* is a directory, from that base directory).

    *sources* is either the same mapping :func:`load` takes (paths as in the working tree) or a contracts
    directory (as :func:`load_dir`). Files that did not exist at *ref* are skipped (their services are new),
    but when none exists there it is a :class:`ContractSourceError`, not an empty set.
    """
    repo = Path(repo_dir).resolve()
    base_dir = Path(ref)
    if base_dir.is_dir():
        # A base directory mirrors the working tree: working-tree path repo/x -> base/x.
        def reader(p: Path) -> str:
            ap = Path(os.path.abspath(p))
            try:
                rel = ap.relative_to(repo)
            except ValueError:
                rel = Path(p)
            return _read_disk(base_dir / rel)
    else:
        try:
            _git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
        except ContractSourceError as err:
            raise ContractSourceError(f"Git ref {ref!r} does not exist in {repo}; pass a branch, tag, commit or directory.") from err
        top = Path(_git(repo, "rev-parse", "--show-toplevel").strip()).resolve()

        def reader(p: Path) -> str:
            rel = Path(os.path.abspath(p)).resolve().relative_to(top).as_posix()
            try:
                return _git(top, "show", f"{ref}:{rel}")
            except ContractSourceError as err:
                raise ContractSourceError(f"{rel} does not exist at {ref}.") from err

    def exists(p: Path) -> bool:
        try:
            reader(p)
            return True
        except ContractSourceError:
            return False

    if isinstance(sources, (str, Path)):
        d = Path(sources)
        if base_dir.is_dir():
            candidates = [p for p in (base_dir / Path(os.path.abspath(d)).relative_to(repo)).rglob("*")]
            candidates = [repo / p.relative_to(base_dir) for p in candidates]
        else:
            top = Path(_git(repo, "rev-parse", "--show-toplevel").strip()).resolve()
            rel = Path(os.path.abspath(d)).resolve().relative_to(top).as_posix()
            listing = _git(top, "ls-tree", "-r", "--name-only", ref, "--", rel)
            candidates = [top / line for line in listing.splitlines() if line]
        files = _find_asyncapi(candidates, reader)
        if not files:
            raise ContractSourceError(f"No AsyncAPI document found under {d} at {ref}; pass a ref or directory "
                                      f"that has the contracts.")
        return _build({None: files}, [], reader)
    srcs: dict[str | None, list[Path]] = {svc: [Path(p) for p in paths if exists(Path(p))]
                                          for svc, paths in sources.items()}
    plain = [s for s in schemas if exists(Path(s.schema_path))]
    if not any(srcs.values()) and not plain:
        # Fail closed: an empty base would make every change look like an addition.
        raise ContractSourceError(f"No contract file exists at {ref}; pass a ref or directory that has the contracts.")
    return _build(srcs, plain, reader)
