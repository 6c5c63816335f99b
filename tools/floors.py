#!/usr/bin/env python3
"""Lay `harness/` out in floors: the mechanical part of the reorganisation, re-runnable.

The floors, from the top down (each imports only floors below it; tests/test_layering.py enforces it):

    front/    the CLI, the pytest plugin, the contracts commands: parse, call the engine, render its events
    session/  the engine of one run: session, recorder, workload, nemesis, quiescence, shrinking, replay, shards
    report/   JSON, JUnit, HTML (and merged shard reports): pure functions over the history and results
    checks/   the saga checker, the registered checks, consumption, findings, results: pure functions
    env/      NATS, processes, the reaper, links (fault proxies), HTTP, attach: up and down, knowing no run
    (top)     config, errors, events, history: the records everyone shares

What it does, on a tree still laid out flat (``harness/<module>.py``):

1. ``git mv`` every module of MOVES to its floor (a module already moved is skipped; one that does not exist is
   reported and skipped), creating each floor's ``__init__.py`` (with its docstring) if missing;
2. rewrites every reference to a moved module in harness/, contracts/, chaos/, sagaproof/, tests/,
   benchmarks/, examples/, tools/ (except this file), docs/, README.md, pyproject.toml, Makefile and .ci/:
   ``sagaproof.harness.X`` and ``harness.X`` (imports, ``_EXPORTS``, entry points, monkeypatch targets,
   docstrings), ``from sagaproof.harness import X``, and the paths ``harness/X.py``;
3. adds each floor to ``packages = [...]`` in pyproject.toml;
4. sorts the rewritten imports (``ruff --select I --fix``, when .venv has ruff);
5. lists what is left at the top of ``harness/`` that is not on the bottom floor.

Running it twice is harmless: the second run finds nothing to move and nothing to rewrite. Usage (from the
repository root, on a clean work tree)::

    python tools/floors.py            # do it
    python tools/floors.py --dry-run  # say what would move and which files would change

Then reinstall (``.venv/bin/pip install -q -e '.[test]'``: the entry points moved) and commit.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HARNESS = ROOT / "harness"

# old flat module name -> new dotted name under sagaproof.harness
MOVES: dict[str, str] = {
    # front: parse, call the engine, render its events
    "cli": "front.cli",
    "pytest_plugin": "front.pytest_plugin",
    "contracts_cmd": "front.contracts_cmd",
    "shards_cmd": "front.shards_cmd",
    # session: the engine of one run
    "session": "session.engine",
    "recorder": "session.recorder",
    "workload": "session.workload",
    "nemesis": "session.nemesis",
    "quiescence": "session.quiescence",
    "report_glue": "session.shrink",
    "replay": "session.replay",
    "shards": "session.shards",
    "contract_runs": "session.contract_runs",
    # report: merged shard reports join the reports
    "merge": "report.merge",
    # checks: pure functions over the history (checks.py becomes the package's face: register_check & co.)
    "checks": "checks",
    "checker": "checks.checker",
    "consumption": "checks.consumption",
    "findings": "checks.findings",
    "results": "checks.results",
    # env: up and down, knowing nothing of runs
    "system": "env.system",
    "nats_server": "env.nats_server",
    "process": "env.process",
    "reaper": "env.reaper",
    "http": "env.http",
    "aio": "env.aio",
    "broker_view": "env.broker_view",
    "attach": "env.attach",
    "links": "env.links",
    "wait": "env.wait",
}

BOTTOM = ("__init__", "config", "errors", "events", "history", "plugins")

FLOOR_DOCS = {
    "front": '"""The top floor: the `sagaproof` command, the pytest plugin and the contracts commands.\n\n'
             "Each parses its input, calls the engine (:mod:`harness.session`) or a floor below, and renders what "
             "comes back;\nnone has logic of its own. Nothing imports this floor.\n\"\"\"\n",
    "session": '"""The engine of one run: the session, the recorder, the workload, the nemesis wiring, quiescence,\n'
               "shrinking, replay and sharded runs. It starts the environment (:mod:`harness.env`), emits typed "
               "events\n(:mod:`harness.events`) and writes the history; checks and reports are functions it calls.\n"
               '"""\n',
    "checks": None,  # checks.py becomes checks/__init__.py
    "env": '"""The environment: NATS, service processes, the reaper, the links (fault proxies), HTTP, attach mode.\n\n'
           "Up and down, knowing nothing of runs: this floor imports only the bottom one (config, errors, events).\n"
           '"""\n',
}

TEXT_SUFFIXES = {".py", ".md", ".toml", ".yml", ".yaml", ".cfg", ".txt", ".ini"}
SCOPE = ["harness", "contracts", "chaos", "sagaproof", "tests", "benchmarks", "examples", "tools", "docs", ".ci",
         "README.md", "pyproject.toml", "Makefile"]


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout


def new_path(new: str) -> Path:
    parts = new.split(".")
    if parts[0] in FLOOR_DOCS and len(parts) == 1:  # a floor package itself (checks)
        return HARNESS.joinpath(*parts, "__init__.py")
    return HARNESS.joinpath(*parts[:-1], parts[-1] + ".py")


def move(dry: bool) -> list[str]:
    done = []
    for old, new in MOVES.items():
        src = HARNESS / f"{old}.py"
        dest = new_path(new)
        if not src.is_file():
            if not dest.is_file():
                print(f"  skip {old}: neither harness/{old}.py nor {dest.relative_to(ROOT)} exists")
            continue
        if dest.exists():
            sys.exit(f"floors: both harness/{old}.py and {dest.relative_to(ROOT)} exist; merge them by hand first.")
        print(f"  git mv harness/{old}.py {dest.relative_to(ROOT)}")
        done.append(old)
        if not dry:
            dest.parent.mkdir(parents=True, exist_ok=True)
            git("mv", str(src.relative_to(ROOT)), str(dest.relative_to(ROOT)))
    for floor, doc in FLOOR_DOCS.items():
        init = HARNESS / floor / "__init__.py"
        if doc is not None and not init.exists() and (HARNESS / floor).is_dir() and not dry:
            init.write_text(doc)
            git("add", str(init.relative_to(ROOT)))
            print(f"  created {init.relative_to(ROOT)}")
    return done


def _subnames(pkg: str) -> list[str]:
    """Names of the modules that live in the floor package `pkg` in the new layout."""
    return sorted({new.split(".")[1] for new in MOVES.values() if new.startswith(pkg + ".")} | {"__init__"})


def rewriters() -> list[tuple[re.Pattern[str], str]]:
    rules: list[tuple[re.Pattern[str], str]] = []
    for old, new in MOVES.items():
        if old == new:
            continue
        # a name that is a floor package in the new layout: not when a module of that package follows
        guard = ""
        if old in FLOOR_DOCS:
            subs = "|".join(_subnames(old))
            guard = r"(?!\.(?:" + subs + r")\b)(?!\s+import\s+\(?\s*(?:" + subs + r")\b)"
        rules.append((re.compile(r"(?<![\w.])((?:sagaproof\.)?harness)\." + old + r"(?!\w)" + guard), r"\1." + new))
        path = new_path(new).relative_to(HARNESS).as_posix()
        rules.append((re.compile(r"(?<![\w/])((?:sagaproof/)?harness)/" + old + r"\.py\b"), r"\1/" + path))
    return rules


FROM_IMPORT = re.compile(r"^(\s*)from (sagaproof\.)?harness import (\w+)(?: as (\w+))?\s*$", re.M)
FROM_IMPORT_MANY = re.compile(r"^\s*from (?:sagaproof\.)?harness import .*,", re.M)


def _from_import(m: re.Match[str]) -> str:
    indent, prefix, name, alias = m.group(1), m.group(2) or "", m.group(3), m.group(4)
    new = MOVES.get(name)
    if new is None or "." not in new:
        return m.group(0)
    pkg, leaf = new.rsplit(".", 1)
    bound = alias or name
    tail = f" as {bound}" if bound != leaf else ""
    return f"{indent}from {prefix}harness.{pkg} import {leaf}{tail}"


def files() -> list[Path]:
    out = []
    me = Path(__file__).resolve()
    for entry in SCOPE:
        p = ROOT / entry
        if p.is_file():
            out.append(p)
        elif p.is_dir():
            out.extend(f for f in sorted(p.rglob("*")) if f.is_file() and f.resolve() != me
                       and (f.suffix in TEXT_SUFFIXES or f.name in ("run", "Makefile")) and "__pycache__" not in f.parts)
    return out


def rewrite(dry: bool) -> list[Path]:
    rules = rewriters()
    changed = []
    for f in files():
        try:
            text = f.read_text()
        except UnicodeDecodeError:
            continue
        keep = ""
        if f.name == "pyproject.toml":  # the packages list names packages, never modules: step 3's business
            m = re.search(r"^packages = \[\n.*?^\]", text, re.S | re.M)
            if m is not None:
                keep = m.group(0)
                text_to_rewrite = text.replace(keep, "\0PACKAGES\0")
        new = text_to_rewrite if keep else text
        for pat, repl in rules:
            new = pat.sub(repl, new)
        if keep:
            new = new.replace("\0PACKAGES\0", keep)
        new = FROM_IMPORT.sub(_from_import, new)
        for m in FROM_IMPORT_MANY.finditer(new):
            names = re.findall(r"\w+", m.group(0).split(" import ", 1)[1])
            if any(n in MOVES and MOVES[n] != n for n in names):
                print(f"  !! {f.relative_to(ROOT)}: `{m.group(0).strip()}` names moved modules; split it by hand")
        if new != text:
            changed.append(f)
            if not dry:
                f.write_text(new)
    for f in changed:
        print(f"  rewrote {f.relative_to(ROOT)}")
    return changed


def packages(dry: bool) -> None:
    py = ROOT / "pyproject.toml"
    text = py.read_text()
    m = re.search(r"^packages = \[\n(.*?)^\]", text, re.S | re.M)
    if m is None:
        sys.exit("floors: no `packages = [` list in pyproject.toml")
    listed = re.findall(r'"([^"]+)"', m.group(1))
    want = [f"sagaproof.harness.{floor}" for floor in ("front", "session", "checks", "env", "report")
            if (HARNESS / floor / "__init__.py").exists() or (not dry and (HARNESS / floor).is_dir())]
    missing = [w for w in want if w not in listed]
    if not missing:
        return
    merged = listed[:]
    at = merged.index("sagaproof.harness") + 1
    for w in missing:
        merged.insert(at, w)
        at += 1
    body = "".join(f'    "{p}",\n' for p in merged)
    print(f"  pyproject packages += {missing}")
    if not dry:
        py.write_text(text[:m.start(1)] + body + text[m.end(1):])


def leftovers(dry: bool) -> list[str]:
    return sorted(p.stem for p in HARNESS.glob("*.py") if p.stem not in BOTTOM and not (dry and p.stem in MOVES))


def sort_imports(changed: list[Path], dry: bool) -> None:
    """Let ruff put the rewritten imports back in order (their sort keys changed); skipped without ruff."""
    ruff = ROOT / ".venv" / "bin" / "ruff"
    py = [str(f) for f in changed if f.suffix == ".py"]
    if dry or not py or not ruff.exists():
        return
    subprocess.run([str(ruff), "check", "--quiet", "--fix", "--select", "I", *py], cwd=ROOT, check=False)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dry-run", action="store_true", help="say what would be done; change nothing")
    args = ap.parse_args()
    if not args.dry_run and git("status", "--porcelain", "--untracked-files=no").strip():
        sys.exit("floors: the work tree has uncommitted changes; commit or stash them first.")
    print("moving:")
    move(args.dry_run)
    print("rewriting references:")
    changed = rewrite(args.dry_run)
    sort_imports(changed, args.dry_run)
    print("packages:")
    packages(args.dry_run)
    left = leftovers(args.dry_run)
    if left:
        print(f"left at the top of harness/ and on no floor (split or map them in MOVES): {', '.join(left)}")
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main())
