"""Where contracts are read from: the work tree, a directory, a commit of a git repository (read with
``git show``, nothing is checked out), or a git repository elsewhere (cloned into a temporary directory).

A :class:`Source` is a tree of files addressed by paths relative to its root (a repository's top level, or
a directory). A :class:`Tree` is one system's contracts inside a source: the system's directory in it and a
:class:`Layout` (which files hold which service's contracts, where the message pacts are, which subjects
JetStream keeps). The harness builds layouts from system files; this module knows no system file.

Every problem is a :class:`~sagaproof.contracts.errors.ContractSourceError` (or a ``ContractError`` for an
invalid document) with one sentence that names the ref or directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from sagaproof.contracts.errors import ContractError, ContractSourceError
from sagaproof.contracts.loader import load
from sagaproof.contracts.model import Channel, ContractSet, SubjectSchema

__all__ = ["DirSource", "GitSource", "Layout", "PactMessage", "Source", "Tree", "clone_source", "git_toplevel",
           "restrict"]

_SUFFIXES = (".yaml", ".yml", ".json")
_ASYNCAPI_KEY = re.compile(r'(^|[{,])\s*["\']?asyncapi["\']?\s*:', re.MULTILINE)
_GIT_TIMEOUT = 60


class Source(Protocol):
    """A tree of files addressed by POSIX paths relative to its root."""

    label: str
    """How the source is named in messages and reports: ``work tree``, a short commit id, a directory."""

    def read(self, rel: str) -> str:
        """The text of the file; ``ContractSourceError`` if it does not exist here."""
        ...

    def exists(self, rel: str) -> bool:
        """True if *rel* is a file of this source."""
        ...

    def files(self, rel_dir: str) -> list[str]:
        """Every file under *rel_dir* (recursively), as paths relative to the root, sorted."""
        ...


def _norm(rel: str | PurePosixPath) -> str:
    text = os.path.normpath(str(rel)).replace(os.sep, "/")
    return "" if text == "." else text


class DirSource:
    """Files of a directory on disk (the work tree, or a base directory)."""

    def __init__(self, root: str | Path, label: str | None = None) -> None:
        self.root = Path(root).resolve()
        self.label = label or str(root)

    def __repr__(self) -> str:
        return f"DirSource({self.root})"

    def read(self, rel: str) -> str:
        path = self.root / _norm(rel)
        try:
            return path.read_text(encoding="utf-8")
        except FileNotFoundError as err:
            raise ContractSourceError(f"{_norm(rel)} does not exist in {self.label}.") from err
        except (OSError, UnicodeDecodeError) as exc:
            raise ContractSourceError(f"{path} cannot be read ({getattr(exc, 'strerror', None) or exc}).") from exc

    def exists(self, rel: str) -> bool:
        return (self.root / _norm(rel)).is_file()

    def files(self, rel_dir: str) -> list[str]:
        base = self.root / _norm(rel_dir)
        if not base.is_dir():
            return []
        return sorted(p.relative_to(self.root).as_posix() for p in base.rglob("*")
                      if p.is_file() and ".git" not in p.relative_to(self.root).parts)


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                              timeout=_GIT_TIMEOUT)
    except FileNotFoundError as err:
        raise ContractSourceError("git is not installed; contracts at git refs are read with git.") from err
    except subprocess.TimeoutExpired as err:
        raise ContractSourceError(f"git {' '.join(args[:2])} in {repo} did not finish in {_GIT_TIMEOUT}s.") from err


def git_toplevel(path: str | Path) -> Path | None:
    """The top directory of the git work tree that holds *path*, or None when it is not in one."""
    p = Path(path)
    d = p if p.is_dir() else p.parent
    if not d.is_dir():
        return None
    try:
        proc = _git(d, "rev-parse", "--show-toplevel")
    except ContractSourceError:
        return None
    return Path(proc.stdout.strip()).resolve() if proc.returncode == 0 and proc.stdout.strip() else None


class GitSource:
    """Files of one commit of a git repository, read with ``git show`` (nothing is checked out).

    Attributes:
        repo: the repository's top directory.
        ref: the ref as given (``HEAD``, ``main``, ``v1.2``, a commit id).
        sha: the commit it names.
    """

    def __init__(self, repo: Path, ref: str, sha: str, where: str | None = None) -> None:
        self.repo, self.ref, self.sha = repo, ref, sha
        self.label = sha[:7]
        self.where = where or str(repo)
        self._files: set[str] | None = None
        self._texts: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"GitSource({self.where}@{self.sha[:7]})"

    @classmethod
    def resolve(cls, repo: str | Path, ref: str, *, where: str | None = None) -> GitSource:
        """The commit *ref* names in the repository at *repo*.

        Raises:
            ContractSourceError: *repo* is not in a git repository, or *ref* names no commit there.
        """
        top = git_toplevel(repo)
        if top is None:
            raise ContractSourceError(f"{repo} is not in a git repository, so git ref {ref!r} cannot be read; "
                                      f"run it inside a clone.")
        if not ref or ref.startswith("-"):
            raise ContractSourceError(f"{ref!r} is not a git ref; pass a branch, tag or commit.")
        proc = _git(top, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
        if proc.returncode != 0 or not proc.stdout.strip():
            shallow = _git(top, "rev-parse", "--is-shallow-repository").stdout.strip() == "true"
            hint = " (this clone is shallow: fetch the whole history, e.g. fetch-depth: 0)" if shallow else ""
            raise ContractSourceError(f"Git ref {ref!r} does not exist in {where or top}{hint}; pass a branch, tag "
                                      f"or commit that does.")
        return cls(top, ref, proc.stdout.strip(), where)

    def _listing(self) -> set[str]:
        if self._files is None:
            proc = _git(self.repo, "ls-tree", "-r", "--name-only", "-z", self.sha)
            if proc.returncode != 0:
                raise ContractSourceError(f"git ls-tree {self.sha[:7]} failed in {self.where}: "
                                          f"{proc.stderr.strip()[:200]}")
            self._files = {f for f in proc.stdout.split("\0") if f}
        return self._files

    def exists(self, rel: str) -> bool:
        return _norm(rel) in self._listing()

    def read(self, rel: str) -> str:
        rel = _norm(rel)
        if rel not in self._texts:
            if rel not in self._listing():
                raise ContractSourceError(f"{rel} does not exist at {self.ref} ({self.sha[:7]}).")
            proc = _git(self.repo, "show", f"{self.sha}:{rel}")
            if proc.returncode != 0:
                raise ContractSourceError(f"{rel} cannot be read at {self.ref} ({self.sha[:7]}): "
                                          f"{proc.stderr.strip()[:200]}")
            self._texts[rel] = proc.stdout
        return self._texts[rel]

    def files(self, rel_dir: str) -> list[str]:
        prefix = _norm(rel_dir)
        if not prefix:
            return sorted(self._listing())
        return sorted(f for f in self._listing() if f.startswith(prefix + "/"))


@contextlib.contextmanager
def clone_source(url: str, ref: str) -> Iterator[GitSource]:
    """A commit of a remote git repository, fetched into a temporary directory removed on exit.

    Raises:
        ContractSourceError: the repository cannot be fetched or *ref* does not exist there.
    """
    tmp = Path(tempfile.mkdtemp(prefix="sagaproof-peer-"))
    try:
        init = _git(tmp, "init", "-q")
        if init.returncode != 0:
            raise ContractSourceError(f"git init failed in {tmp}: {init.stderr.strip()[:200]}")
        fetched = _git(tmp, "fetch", "--quiet", "--depth", "1", url, ref)
        if fetched.returncode != 0:
            # Some servers refuse a shallow fetch of a commit id: fetch everything and look the ref up.
            fetched = _git(tmp, "fetch", "--quiet", url, "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")
            if fetched.returncode != 0:
                last = (fetched.stderr.strip().splitlines() or ["?"])[-1]
                raise ContractSourceError(f"git repository {url} cannot be fetched ({last}); check the URL.")
            yield GitSource.resolve(tmp, ref, where=url)
            return
        sha = _git(tmp, "rev-parse", "FETCH_HEAD^{commit}").stdout.strip()
        yield GitSource(tmp, ref, sha, url)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@dataclass(frozen=True)
class Layout:
    """Where a system's contracts are, relative to the system's directory.

    Attributes:
        services: service name -> its AsyncAPI files; ``None`` means "every AsyncAPI document under the
            directory" (the service of each is ``info.x-service``, else the file name).
        schemas: plain JSON Schema files mapped to subjects (``schema_path`` relative to the directory).
        pacts_dir: the directory of the consumers' message pacts, if any.
        stored_subjects: subject filters of the JetStream streams; ``None`` when not known (then every
            subject may be stored).
    """

    services: Mapping[str, tuple[str, ...]] | None = None
    schemas: tuple[SubjectSchema, ...] = ()
    pacts_dir: str | None = None
    stored_subjects: tuple[str, ...] | None = None


@dataclass
class PactMessage:
    """One message of a consumer's message pact: what the consumer expects the provider to send."""

    consumer: str
    provider: str
    description: str
    subject: str | None
    content: Any
    file: str
    readable: bool = True


def restrict(cs: ContractSet, service: str) -> ContractSet:
    """The part of *cs* that is *service*'s: the channels it sends or receives on, with only its side."""
    out = ContractSet(services=[service], files=list(cs.files))
    for pat, ch in cs.channels.items():
        if service not in ch.producers and service not in ch.consumers:
            continue
        new = Channel(pat, declared_in=list(ch.declared_in))
        if service in ch.producers:
            new.producers[service] = list(ch.producers[service])
        if service in ch.consumers:
            new.consumers[service] = list(ch.consumers[service])
        for msgs in (*new.producers.values(), *new.consumers.values()):
            for m in msgs:
                new.messages.setdefault(m.name, m)
        out.channels[pat] = new
    return out


def _read_pact(text: str, file: str) -> list[PactMessage]:
    """The messages of a pact file (V4 asynchronous interactions or V3 ``messages``); [] if not a pact."""
    try:
        doc = json.loads(text)
    except ValueError as err:
        raise ContractSourceError(f"{file} is not a JSON pact file; regenerate it with the consumer's pact tests "
                                  f"or remove it.") from err
    if not isinstance(doc, dict) or not isinstance(doc.get("consumer"), dict) \
            or not isinstance(doc.get("provider"), dict):
        return []
    consumer, provider = doc["consumer"].get("name"), doc["provider"].get("name")
    if not isinstance(consumer, str) or not isinstance(provider, str):
        return []
    out = []
    items = [i for i in doc.get("interactions") or [] if isinstance(i, dict)
             and "Asynchronous" in str(i.get("type", "Asynchronous/Messages"))]
    items += [m for m in doc.get("messages") or [] if isinstance(m, dict)]
    for item in items:
        contents = item.get("contents")
        readable = True
        if isinstance(contents, dict) and "content" in contents:
            content = contents.get("content")
            if contents.get("encoded") not in (None, False):
                readable = False  # base64 or other encoded bodies are not JSON we can check
            elif isinstance(content, str) and "json" in str(contents.get("contentType", "")):
                try:
                    content = json.loads(content)
                except ValueError:
                    readable = False
        else:
            content = contents
        meta: dict[str, Any] = item["metadata"] if isinstance(item.get("metadata"), dict) else {}
        if not meta and isinstance(contents, dict) and isinstance(contents.get("metadata"), dict):
            meta = contents["metadata"]
        subject = meta.get("subject") if isinstance(meta.get("subject"), str) else None
        out.append(PactMessage(consumer, provider, str(item.get("description", "")), subject, content, file,
                               readable))
    return out


@dataclass
class Tree:
    """One system's contracts inside a :class:`Source`.

    Attributes:
        source: where the files are.
        system_dir: the system's directory in the source (POSIX, relative to its root; ``""`` for the root).
        layout: which files hold what, relative to *system_dir*.
    """

    source: Source
    system_dir: str
    layout: Layout
    _all: ContractSet | None = field(default=None, repr=False)

    @property
    def label(self) -> str:
        return self.source.label

    def _rel(self, path: str | Path) -> str:
        return _norm(PurePosixPath(self.system_dir) / Path(path).as_posix())

    def _vroot(self) -> Path:
        # The loader addresses files by absolute paths; these stand for paths inside the source.
        return Path("/__sagaproof_source__")

    def _reader(self) -> Any:
        root = self._vroot()

        def read(p: Path) -> str:
            ap = Path(os.path.normpath(p))
            try:
                rel = ap.relative_to(root).as_posix()
            except ValueError as err:
                raise ContractSourceError(f"{p} is outside {self.label}.") from err
            return self.source.read(rel)
        return read

    def _load(self, sources: Mapping[str | None, list[str]], schemas: list[SubjectSchema]) -> ContractSet:
        root = self._vroot()
        files = {svc: [root / rel for rel in rels] for svc, rels in sources.items()}
        plain = [SubjectSchema(s.subject, root / self._rel(s.schema_path), list(s.producers), list(s.consumers))
                 for s in schemas]
        try:
            return load(files, plain, reader=self._reader())  # type: ignore[arg-type]  # None: x-service or name
        except ContractError as exc:
            where = exc.file
            with contextlib.suppress(ValueError):
                where = f"{self.label}:{Path(exc.file).relative_to(root).as_posix()}"
            raise ContractError(where, exc.pointer, exc.problem) from exc

    def asyncapi_files(self) -> list[str]:
        """Every AsyncAPI document under the system's directory (what a directory without layout means)."""
        found = []
        for rel in self.source.files(self.system_dir):
            if not rel.lower().endswith(_SUFFIXES) or "/pacts/" in f"/{rel}":
                continue
            try:
                text = self.source.read(rel)
            except ContractSourceError:
                continue
            if _ASYNCAPI_KEY.search(text):
                found.append(rel)
        return found

    def contract_files(self, service: str) -> list[str]:
        """The files (relative to the source root) that hold *service*'s contracts by the layout."""
        if self.layout.services is None:
            return []
        files = [self._rel(f) for f in self.layout.services.get(service, ())]
        files += [self._rel(s.schema_path) for s in self.layout.schemas
                  if service in s.producers or service in s.consumers]
        return files

    def services(self) -> list[str]:
        """The services that have contracts here (by the layout, or the documents found)."""
        if self.layout.services is None:
            return list(self.load_all().services)
        names = [s for s, files in self.layout.services.items() if files]
        for s in self.layout.schemas:
            names += [n for n in (*s.producers, *s.consumers) if n not in names]
        return names

    def load_all(self) -> ContractSet:
        """Every service's contracts.

        Raises:
            ContractSourceError: no contract is found at all, or a file the layout names does not exist.
        """
        if self._all is None:
            if self.layout.services is None:
                files = self.asyncapi_files()
                if not files:
                    raise ContractSourceError(f"No AsyncAPI document found in {self.where()}.")
                self._all = self._load({None: files}, [])
            else:
                sources: dict[str | None, list[str]] = {s: [self._rel(f) for f in fs]
                                                        for s, fs in self.layout.services.items() if fs}
                if not sources and not self.layout.schemas:
                    raise ContractSourceError(f"No service has a contract in {self.where()}.")
                for svc, rels in sources.items():
                    self._require(str(svc), rels)
                self._all = self._load(dict(sources), list(self.layout.schemas))
        return self._all

    def where(self) -> str:
        """The system's directory in the source, for messages."""
        d = self.system_dir or "."
        if isinstance(self.source, GitSource):
            return f"{d} at {self.source.ref} ({self.source.sha[:7]})"
        if isinstance(self.source, DirSource):
            return str(self.source.root / self.system_dir) if self.system_dir else str(self.source.root)
        return f"{d} in {self.label}"

    def _require(self, service: str, rels: list[str]) -> None:
        for rel in rels:
            if not self.source.exists(rel):
                raise ContractSourceError(f"{service} has no contract in {self.where()} ({rel} does not exist "
                                          f"there); pass a ref or directory in which it has its contracts.")

    def load_service(self, service: str) -> ContractSet | None:
        """*service*'s contracts here (only its side of each channel), or None when it has none.

        Raises:
            ContractSourceError: a file the layout names for it does not exist here.
            ContractError: a document is invalid (the file is named as ``REF:path``).
        """
        if self.layout.services is None:
            if not self.asyncapi_files():
                return None
            cs = self.load_all()
            return restrict(cs, service) if service in cs.services else None
        rels = [self._rel(f) for f in self.layout.services.get(service, ())]
        schemas = [s for s in self.layout.schemas if service in s.producers or service in s.consumers]
        if not rels and not schemas:
            return None
        self._require(service, rels)
        self._require(service, [self._rel(s.schema_path) for s in schemas])
        return restrict(self._load({service: rels} if rels else {}, schemas), service)

    def pact_messages(self, consumer: str) -> list[PactMessage]:
        """The messages of *consumer*'s message pacts here (files ``*.json`` in the layout's pact directory)."""
        if not self.layout.pacts_dir:
            return []
        out = []
        for rel in self.source.files(self._rel(self.layout.pacts_dir)):
            if rel.endswith(".json") and "/" not in rel[len(self._rel(self.layout.pacts_dir)) + 1:]:
                out += [m for m in _read_pact(self.source.read(rel), f"{self.label}:{rel}") if m.consumer == consumer]
        return out
