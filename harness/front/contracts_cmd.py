"""`sagaproof contracts check | diff | verify-pacts | record-deployment | can-i-deploy`: the CLI side of the
contracts package.

`check`, `diff`, `record-deployment` and `can-i-deploy` start nothing: they read the contracts named in
the system file (or every AsyncAPI document under a directory without one), in the work tree or at git refs
(read with `git show`, nothing is checked out). `check --http` and `verify-pacts` bring the system up (no
fault proxies) to fuzz HTTP entry points with schemathesis and to make providers emit the messages that
consumers' pacts describe, captured from NATS and judged by pact-python's verifier: those runs are
:mod:`harness.session.contract_runs`; this module parses and renders.

The system file is read here (the contracts package knows none): for the work tree with full validation,
at a git ref loosely (only the keys that say where the contracts are), into a ``contracts.sources.Layout``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from rich.console import Console
from sagaproof.harness.config import SystemSpec, find_system_file, load_system_file
from sagaproof.harness.errors import EXIT_CHECK_FAILED, EXIT_OK, ConfigError, boundary

if TYPE_CHECKING:  # the contracts package is imported when a command runs
    from sagaproof.contracts.can_i_deploy import Version
    from sagaproof.contracts.sources import Layout, Source, Tree

P = ParamSpec("P")
R = TypeVar("R")


def _has_system_file(d: str) -> bool:
    try:
        find_system_file(d)
        return True
    except ConfigError:
        return False


def _load_current(d: str) -> tuple[Any, SystemSpec | None]:
    from sagaproof import contracts

    if _has_system_file(d):
        spec = load_system_file(d)
        if not spec.contract_sources() and not spec.contract_schemas:
            raise ConfigError(f"{spec.path}: no service names a contract file; add contracts = [\"...yaml\"] to "
                              f"the services (see docs/system-file.md).")
        from sagaproof.harness.session.engine import contract_schemas

        return contracts.load(spec.contract_sources(), contract_schemas(spec)), spec
    if not Path(d).is_dir():
        raise ConfigError(f"{d}: no such directory; pass a directory with sagaproof.toml or AsyncAPI documents.")
    return contracts.load_dir(d), None


def _wrap_contract_errors(fn: Callable[P, R]) -> Callable[P, R]:
    def inner(*a: P.args, **kw: P.kwargs) -> R:
        with boundary("config"):  # the one translation of contracts' errors (harness.errors)
            return fn(*a, **kw)

    return inner


def _accepted(spec: SystemSpec | None, cs: Any) -> tuple[str, ...]:
    """[contracts] accept_undecided of the system file, each name checked against the contracts' channels."""
    if spec is None:
        return ()
    for name in spec.accept_undecided:
        if name not in cs.channels:
            known = ", ".join(sorted(cs.channels)) or "none"
            raise ConfigError(f"{spec.path}: [contracts] accept_undecided names channel '{name}', which no contract "
                              f"declares; give a channel address as the contracts write it (channels: {known}).")
    return spec.accept_undecided


@_wrap_contract_errors
def cmd_check(args: argparse.Namespace, console: Console) -> int:
    from sagaproof.contracts import render

    from sagaproof import contracts

    cs, spec = _load_current(args.dir)
    report = contracts.check(cs, accept_undecided=_accepted(spec, cs))
    code = report.exit_code
    fuzz: list[dict[str, Any]] = []
    if args.http:
        if spec is None:
            raise ConfigError("--http needs a system file (sagaproof.toml) that says how to start the services.")
        from sagaproof.harness.session.contract_runs import fuzz_http

        def show(svc_spec: Any, rep: Any) -> None:
            status = "[green]ok[/]" if rep.ok else "[bold red]FAILED[/]"
            console.print(f"http fuzz {svc_spec.name} {svc_spec.openapi}: {status} "
                          f"({getattr(rep, 'requests', '?')} requests over {len(getattr(rep, 'operations', []) or [])} "
                          f"operations)")
            for f in list(rep.failures)[:10]:
                console.print(f"  {f}", markup=False)

        fuzz = fuzz_http(spec, args.report_dir, None if args.json else show)
        if any(not f["ok"] for f in fuzz):
            code = EXIT_CHECK_FAILED
    if args.json:
        out = report.to_dict()
        if args.http:
            out["http"] = fuzz
        console.print_json(json.dumps(out, default=str))
    else:
        render.check_table(report, console)
    return code


# ---------------------------------------------------------------------------- where a system's contracts are


@dataclass
class _SystemDir:
    """The system named on the command line: its directory, system file and git repository."""

    dir: Path
    spec: SystemSpec | None
    file_name: str | None  # "sagaproof.toml" / "pyproject.toml", None for a directory of AsyncAPI documents
    top: Path | None  # the git repository's top directory
    rel: str  # the system's directory relative to top ("" at the top, or when not in git)
    layout: Layout

    def work_tree(self) -> Tree:
        from sagaproof.contracts.sources import DirSource, Tree

        return Tree(DirSource(self.top or self.dir, label="work tree"), self.rel, self.layout)

    def require_git(self, what: str) -> Path:
        if self.top is None:
            raise ConfigError(f"{self.dir} is not in a git repository; {what} records and reads git commits, so "
                              f"run it inside a clone of the repository.")
        return self.top


def _system_dir(d: str) -> _SystemDir:
    from sagaproof.contracts.sources import Layout, git_toplevel

    if _has_system_file(d):
        spec = load_system_file(d)
        if not spec.contract_sources() and not spec.contract_schemas:
            raise ConfigError(f"{spec.path}: no service names a contract file; add contracts = [\"...yaml\"] to "
                              f"the services (see docs/system-file.md).")
        root, layout, name = spec.root, _layout_from_spec(spec), spec.path.name
    else:
        if not Path(d).is_dir():
            raise ConfigError(f"{d}: no such directory; pass a directory with sagaproof.toml or AsyncAPI documents.")
        spec, root, layout, name = None, Path(d).resolve(), Layout(), None
    top = git_toplevel(root)
    rel = root.relative_to(top).as_posix() if top is not None else ""
    return _SystemDir(root, spec, name, top, "" if rel == "." else rel, layout)


def _rel(path: Path, root: Path) -> str:
    return Path(os.path.relpath(path, root)).as_posix()


def _layout_from_spec(spec: SystemSpec) -> Layout:
    from sagaproof.contracts.sources import Layout

    from sagaproof import contracts

    services = {n: tuple(_rel(c, spec.root) for c in s.contracts) for n, s in spec.services.items()}
    schemas = tuple(contracts.SubjectSchema(s["subject"], Path(_rel(s["schema"], spec.root)), list(s["producers"]),
                                            list(s["consumers"])) for s in spec.contract_schemas)
    stored: tuple[str, ...] | None
    if spec.nats.streams:
        stored = tuple(subj for st in spec.nats.streams for subj in st.subjects)
    else:
        stored = () if spec.nats.embedded else None  # embedded NATS without streams keeps nothing
    pacts = _rel(spec.pacts.dir, spec.root) if spec.pacts.dir is not None else None
    return Layout(services, schemas, pacts, stored)


def _strs(v: Any) -> tuple[str, ...]:
    if isinstance(v, str):
        return (v,)
    return tuple(x for x in v if isinstance(x, str)) if isinstance(v, list) else ()


def _layout_from_text(text: str, file_name: str) -> Layout | None:
    """The layout a system file at some git ref gives, read loosely (only the keys about contracts); None when
    the text is not a system file."""
    from sagaproof.contracts.sources import Layout

    from sagaproof import contracts

    try:
        data: Any = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return None
    if file_name == "pyproject.toml":
        tool = data.get("tool")
        data = tool.get("sagaproof") if isinstance(tool, dict) else None
    if not isinstance(data, dict) or not isinstance(data.get("services"), dict):
        return None
    services = {n: _strs(s.get("contracts")) for n, s in data["services"].items() if isinstance(s, dict)}
    schemas = tuple(contracts.SubjectSchema(s["subject"], Path(s["schema"]), list(_strs(s.get("producers"))),
                                            list(_strs(s.get("consumers"))))
                    for s in data.get("schemas") or [] if isinstance(s, dict)
                    and isinstance(s.get("subject"), str) and isinstance(s.get("schema"), str))
    nats: dict[str, Any] = data["nats"] if isinstance(data.get("nats"), dict) else {}
    streams = [s for s in nats.get("streams") or [] if isinstance(s, dict)]
    stored = tuple(x for s in streams for x in _strs(s.get("subjects"))) if streams else \
        (None if nats.get("url") else ())
    pacts: dict[str, Any] = data["pacts"] if isinstance(data.get("pacts"), dict) else {}
    return Layout(services, schemas, pacts.get("dir") if isinstance(pacts.get("dir"), str) else None, stored)


def _layout_at(system: _SystemDir, source: Source, rel: str) -> tuple[Layout, bool]:
    """(layout, found): the system file at *source* if there is one, else the work tree's layout."""
    from sagaproof.contracts.sources import Layout

    names = [system.file_name] if system.file_name else []
    for name in names:
        path = f"{rel}/{name}" if rel else name
        if source.exists(path):
            layout = _layout_from_text(source.read(path), name)
            if layout is not None:
                return layout, True
    return (system.layout if system.file_name else Layout()), False


def _tree_at(system: _SystemDir, source: Source, rel: str | None = None) -> tuple[Tree, bool]:
    from sagaproof.contracts.sources import Tree

    rel = system.rel if rel is None else rel
    layout, found = _layout_at(system, source, rel)
    return Tree(source, rel, layout), found


# ---------------------------------------------------------------------------- diff


def _base_tree(system: _SystemDir, base: str) -> tuple[Tree, bool]:
    """The contracts at --base: a directory (the system's directory or the repository root) or a git ref."""
    from sagaproof.contracts.sources import DirSource, GitSource, Tree

    p = Path(base)
    if p.is_dir():
        source = DirSource(p, label=str(p))
        # A base directory is either the system's directory or the repository's root (a checkout of the old
        # version): the system file, else the contract files, say which.
        options = ([system.rel] if system.rel else []) + [""]
        chosen = None
        if system.file_name:
            chosen = next((o for o in options if source.exists(f"{o}/{system.file_name}" if o else system.file_name)),
                          None)
        if chosen is None:
            def found(o: str) -> int:
                tree = Tree(source, o, system.layout)
                if system.file_name is None:
                    return len(tree.asyncapi_files())
                return sum(source.exists(f) for svc in tree.services() for f in tree.contract_files(svc))
            counts = {o: found(o) for o in options}
            chosen = max(options, key=lambda o: counts[o]) if any(counts.values()) else None
        if chosen is None:
            files = sorted({f for s in system.work_tree().services()
                            for f in Tree(source, "", system.layout).contract_files(s)})
            looked = [f"{o}/{system.file_name}" if o else system.file_name for o in options if system.file_name]
            looked += files[:2] + (["..."] if len(files) > 2 else [])
            what = ", ".join(looked) if looked else "an AsyncAPI document"
            raise ConfigError(f"--base {base}: no contract found in that directory (looked for {what}); give the "
                              f"system's directory or the repository root of the old version.")
        return _tree_at(system, source, chosen)
    if system.top is None:
        raise ConfigError(f"--base {base}: no such directory, and {system.dir} is not in a git repository, so it "
                          f"cannot be a git ref either; pass the old version's directory.")
    return _tree_at(system, GitSource.resolve(system.top, base))


def _load_base(system: _SystemDir, tree: Tree, layout_found: bool, base: str) -> Any:
    """The base contracts, failing closed: no contract there, or a service of the system without one, is a
    ConfigError (exit 2), never an empty base that makes every change look like an addition."""
    from sagaproof.contracts.sources import GitSource

    where = f"--base {base}: in {tree.where()}"
    hint = "a git ref at which the system has its contracts" if isinstance(tree.source, GitSource) else \
        "the system's directory or the repository root of the old version"
    if tree.layout.services is None:
        if not tree.asyncapi_files():
            raise ConfigError(f"{where} there is no AsyncAPI document; pass the ref or directory of the old "
                              f"version of {system.dir}.")
        return tree.load_all()
    head_services = system.work_tree().services()
    if layout_found:
        declared = set(tree.layout.services)
        for svc in head_services:
            if svc in declared and not tree.contract_files(svc):
                raise ConfigError(f"{where} service {svc} of the system has no contract (its system file names "
                                  f"none), so nothing can be compared; pass a base in which it has one.")
    else:
        missing = {svc: [f for f in tree.contract_files(svc) if not tree.source.exists(f)] for svc in head_services}
        if all(missing[s] and len(missing[s]) == len(tree.contract_files(s)) for s in head_services):
            looked = ", ".join(f for s in head_services for f in tree.contract_files(s))
            raise ConfigError(f"{where} no contract is found (looked for {looked}); pass {hint}.")
        for svc, files in missing.items():
            if files:
                raise ConfigError(f"{where} service {svc} of the system has no contract ({files[0]} does not "
                                  f"exist), so nothing can be compared; pass a base in which it has one.")
    if not tree.services():
        raise ConfigError(f"{where} no service has a contract; pass {hint}.")
    return tree.load_all()


@_wrap_contract_errors
def cmd_diff(args: argparse.Namespace, console: Console) -> int:
    from sagaproof.contracts import render

    from sagaproof import contracts

    head, spec = _load_current(args.dir)
    accepted = _accepted(spec, head)
    system = _system_dir(args.dir)
    tree, found = _base_tree(system, args.base)
    base = _load_base(system, tree, found, args.base)
    changes = contracts.diff(base, head, accept_undecided=accepted)
    breaking = [c for c in changes if c.breaking_for]
    undecided = [c for c in changes if c.undecided and not c.accepted]
    if args.json:
        out = render.diff_to_dict(changes)
        out["base"] = args.base
        console.print_json(json.dumps(out, default=str))
    else:
        render.diff_table(changes, console)
        if breaking:
            console.print(f"against {args.base}: do not deploy until every consumer/producer is updated.")
        elif undecided:
            console.print(f"against {args.base}: undecided is not shown safe; look at the schemas named above.")
    return EXIT_CHECK_FAILED if breaking or undecided else EXIT_OK


# ---------------------------------------------------------------------------- deployments


def _deployments_dir(d: str, given: Path | None) -> Path:
    """--deployments, else deployments/ next to the system file (as the user wrote the directory)."""
    if given is not None:
        return given
    return (Path(d) if Path(d).is_dir() else Path(d).parent) / "deployments"


def _services_hint(names: list[str]) -> str:
    return f"the services with contracts are {', '.join(sorted(names))}" if names else "no service has contracts"


@_wrap_contract_errors
def cmd_record_deployment(args: argparse.Namespace, console: Console) -> int:
    from sagaproof.contracts.deploy import read_environment
    from sagaproof.contracts.sources import GitSource

    system = _system_dir(args.dir)
    top = system.require_git("record-deployment")
    env = read_environment(_deployments_dir(args.dir, args.deployments), args.env, missing_ok=not args.undeploy)
    if args.undeploy:
        if args.ref is not None or args.clear_previous:
            raise ConfigError("--undeploy takes no --ref or --clear-previous: it removes the service from the "
                              "environment.")
        for svc in args.services:
            env.undeploy(svc)
        env.write()
        for svc in args.services:
            console.print(f"{args.env}: {svc} undeployed; commit {env.path}", markup=False, soft_wrap=True)
        return EXIT_OK
    ref = args.ref or "HEAD"
    source = GitSource.resolve(top, ref)
    tree, _ = _tree_at(system, source)
    known = tree.services()
    for svc in args.services:
        if svc not in known:
            raise ConfigError(f"{svc} has no contract at {ref} ({source.sha[:7]}) in {tree.where()}; "
                              f"{_services_hint(known)}.")
        if tree.load_service(svc) is None:  # pragma: no cover - services() lists only services with contracts
            raise ConfigError(f"{svc} has no contract at {ref}.")
    for svc in args.services:
        dep = env.record(svc, source.sha, ref_name=None if source.sha.startswith(ref) or ref == "HEAD" else ref,
                         clear_previous=args.clear_previous)
        was = f" (replacing {dep.previous[:7]})" if dep.previous else ""
        console.print(f"{args.env}: {svc} runs {source.sha[:7]}{was}", markup=False, soft_wrap=True)
    env.write()
    console.print(f"recorded in {env.path}; commit it with the deploy", markup=False, soft_wrap=True)
    return EXIT_OK


_SCP_URL = re.compile(r"^[\w.-]+@[\w.-]+:")


def _peer_versions(spec_values: list[str], system: _SystemDir, stack: contextlib.ExitStack,
                   candidates: set[str]) -> dict[str, Version]:
    """--peer-contracts NAME=PATH_OR_GIT_URL[@REF]: a peer's version read from another directory or repository."""
    from sagaproof.contracts.can_i_deploy import Version
    from sagaproof.contracts.sources import DirSource, GitSource, Layout, Tree, clone_source, git_toplevel

    out: dict[str, Version] = {}
    for value in spec_values:
        name, sep, loc = value.partition("=")
        if not sep or not name or not loc:
            raise ConfigError(f"--peer-contracts {value!r} must look like NAME=PATH_OR_GIT_URL@REF, e.g. "
                              f"billing=../billing@v1.4 or billing=https://git.example.com/billing.git@prod.")
        if name in candidates:
            raise ConfigError(f"--peer-contracts names {name}, which is being deployed; a peer is a service that "
                              f"already runs.")
        ref = None
        head, at, tail = loc.rpartition("@")
        if at and head and tail and ":" not in tail:
            loc, ref = head, tail
        is_url = "://" in loc or bool(_SCP_URL.match(loc))
        if is_url and not Path(loc).exists():
            if ref is None:
                raise ConfigError(f"--peer-contracts {value}: a git URL needs the ref that runs, e.g. "
                                  f"{name}={loc}@v1.4.")
            source: Any = stack.enter_context(clone_source(loc, ref))
            rel, shown = "", f"{loc}@{ref}"
        elif Path(loc).is_dir():
            d = Path(loc).resolve()
            if ref is None:
                source, rel, shown = DirSource(d, label=loc), "", loc
            else:
                top = git_toplevel(d)
                if top is None:
                    raise ConfigError(f"--peer-contracts {value}: {loc} is not in a git repository, so @{ref} "
                                      f"cannot be read; drop @{ref} to use the directory as it is.")
                source = GitSource.resolve(top, ref, where=loc)
                rel = d.relative_to(top).as_posix()
                rel, shown = ("" if rel == "." else rel), f"{loc}@{ref}"
        else:
            raise ConfigError(f"--peer-contracts {value}: {loc} is neither a directory nor a git URL.")
        layout = None
        for fname in ("sagaproof.toml", "pyproject.toml"):
            path = f"{rel}/{fname}" if rel else fname
            if source.exists(path):
                layout = _layout_from_text(source.read(path), fname)
                if layout is not None:
                    break
        tree = Tree(source, rel, layout or Layout())
        cs = tree.load_service(name)
        if cs is None:
            raise ConfigError(f"--peer-contracts {value}: no contract of {name} in {tree.where()}; "
                              f"{_services_hint(tree.services())}.")
        label = source.label if isinstance(source, GitSource) else "directory"
        out[name] = Version(name, shown, label, cs, tree.pact_messages(name))
    return out


def _stored(layout: Layout) -> Callable[[str, str], bool] | None:
    """Whether a message on a producer's and a consumer's subject pattern may be kept in a stream."""
    from sagaproof.contracts.subjects import overlaps

    subjects = layout.stored_subjects
    if subjects is None:
        return None
    return lambda p, c: any(overlaps(s, p) and overlaps(s, c) for s in subjects)


@_wrap_contract_errors
def cmd_can_i_deploy(args: argparse.Namespace, console: Console) -> int:
    from sagaproof.contracts import render
    from sagaproof.contracts.can_i_deploy import Version, can_i_deploy
    from sagaproof.contracts.deploy import read_environment
    from sagaproof.contracts.sources import GitSource

    system = _system_dir(args.dir)
    top = system.require_git("can-i-deploy")
    env = read_environment(_deployments_dir(args.dir, args.deployments), args.to)
    names = list(dict.fromkeys(args.services))
    if args.ref is None:
        cand_tree, label, ref_id = system.work_tree(), "work tree", "work tree"
    else:
        source = GitSource.resolve(top, args.ref)
        cand_tree, _ = _tree_at(system, source)
        label, ref_id = source.sha[:7], source.sha
    known = cand_tree.services()
    candidates = []
    for svc in names:
        if svc not in known:
            raise ConfigError(f"{svc} is not a service with contracts in {cand_tree.where()}; {_services_hint(known)}.")
        cs = cand_tree.load_service(svc)
        if cs is None:  # pragma: no cover - services() lists only services with contracts
            raise ConfigError(f"{svc} has no contract in {cand_tree.where()}.")
        candidates.append(Version(svc, ref_id, label, cs, cand_tree.pact_messages(svc)))

    trees: dict[str, Any] = {}

    def deployed(svc: str, sha: str, what: str) -> Any:
        if sha not in trees:
            def say(exc: BaseException) -> str:
                shallow = " (this clone is shallow)" if "shallow" in str(exc) else ""
                return (f"{env.path}: {svc}'s {what} commit {sha[:7]} is not in this repository{shallow}; "
                        f"fetch the whole history, or record a commit that is in it.")

            with boundary("config", say):
                source = GitSource.resolve(top, sha)
            trees[sha] = _tree_at(system, source)[0]
        tree = trees[sha]
        cs = tree.load_service(svc)
        if cs is None:
            raise ConfigError(f"{env.path}: {svc} runs {sha[:7]} in {args.to} ({what}), but {svc} has no contract "
                              f"at that commit ({tree.where()}); record the commit that holds its contracts.")
        return Version(svc, sha, sha[:7], cs, tree.pact_messages(svc))

    with contextlib.ExitStack() as stack:
        peers = _peer_versions(args.peer_contracts, system, stack, set(names))
        running = {svc: peers.get(svc) or deployed(svc, d.ref, "current") for svc, d in env.services.items()}
        running.update(peers)
        previous = {svc: deployed(svc, d.previous, "previous") for svc, d in env.services.items()
                    if d.previous and svc not in peers}
    accepted: tuple[str, ...] = ()
    if system.spec is not None and system.spec.accept_undecided:
        accepted = _accepted(system.spec, _load_current(args.dir)[0])
    matrix = can_i_deploy(candidates, running, previous, environment=args.to, stored=_stored(system.layout),
                          accept_undecided=accepted)
    if args.json:
        console.print_json(json.dumps(matrix.to_dict(), default=str))
    else:
        render.matrix_table(matrix, console)
    return matrix.exit_code


@_wrap_contract_errors
def cmd_verify_pacts(args: argparse.Namespace, console: Console) -> int:
    from sagaproof.harness.session.contract_runs import (
        find_trigger,
        mismatch_lines,
        read_pacts,
        verify_providers,
    )

    spec = load_system_file(args.dir)
    pact_dir = args.pacts or spec.pacts.dir
    if pact_dir is None:
        raise ConfigError(f"{spec.path}: no pact directory; set [pacts] dir = \"contracts/pacts\" or pass --pacts DIR.")
    pact_dir = Path(pact_dir)
    if not pact_dir.is_dir() or not any(pact_dir.glob("*.json")):
        raise ConfigError(f"{pact_dir}: no pact files (*.json) here; run the consumers' pact tests first, or pass "
                          f"--pacts DIR.")
    pacts = read_pacts(pact_dir)
    providers = sorted({doc["provider"].get("name") for _, doc in pacts} - {None})
    if not providers:
        raise ConfigError(f"{pact_dir}: the pact files name no provider; regenerate them with the consumers' pact "
                          f"tests.")
    unknown = [p for p in providers if p not in spec.services]
    if unknown:
        raise ConfigError(f"{pact_dir}: pacts name provider '{unknown[0]}', which is not a service of {spec.path}; "
                          f"rename the pact's provider or add the service.")
    # Every message needs a trigger: say so now, before anything starts (else it is one failed interaction).
    for _, doc in pacts:
        for inter in doc.get("interactions") or []:
            if isinstance(inter, dict):
                find_trigger(spec, str(inter.get("description", "")), list(inter.get("providerStates") or []))
    def render(provider: str, result: Any, problems: list[str], log: Path) -> None:
        passed = result.ok and not problems
        status = "[green]verified[/]" if passed else "[bold red]FAILED[/]"
        console.print(f"pacts for provider [bold]{provider}[/]: {status} "
                      f"({len(result.interactions)} interaction(s), {len(result.pact_files)} file(s))")
        for line in mismatch_lines(result.errors)[:20]:
            console.print(f"  {line}", markup=False, soft_wrap=True)
        for problem in problems[:10]:
            console.print(f"  trigger failed: {problem}", markup=False, soft_wrap=True)
        if not passed:
            console.print(f"  pact-python's full output: {log}", markup=False, soft_wrap=True)

    ok = verify_providers(spec, pact_dir, providers, Path(args.report_dir), render)
    return EXIT_OK if ok else EXIT_CHECK_FAILED


def run_contracts_command(args: argparse.Namespace, console: Console) -> int:
    """Dispatch `sagaproof contracts <command>`."""
    commands = {"check": cmd_check, "diff": cmd_diff, "verify-pacts": cmd_verify_pacts,
                "record-deployment": cmd_record_deployment, "can-i-deploy": cmd_can_i_deploy}
    return commands[args.contracts_command](args, console)
