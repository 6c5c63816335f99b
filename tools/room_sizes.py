#!/usr/bin/env python3
"""Readable rooms: no module of the package over 600 lines and no function over 80 (run by ``make lint``).

Complexity (C901, at most 20) and the size of a function's body in branches and statements (PLR0912,
PLR0915) are ruff's rules (pyproject.toml); ruff has no rule for a module's or a function's length in lines,
so this script measures those. The rooms not yet split are listed in ``LARGER`` with the size they may not
grow beyond; one that shrinks below the limit must leave the list (the script says so).

Usage: ``python tools/room_sizes.py`` (exit 1 and one line per offence when a room is too large).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ("sagaproof", "harness", "contracts", "chaos")
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80

# Rooms that other work in progress is changing: not measured until it lands (none now).
EXEMPT: tuple[str, ...] = ()

# Modules not split yet: path -> the most lines it may have.
LARGER: dict[str, int] = {}

# Functions longer than MAX_FUNCTION_LINES not split yet: "path:qualified name" -> the most lines it may have.
LONGER: dict[str, int] = {
    # the wire observer's data path: one loop per chunk, no call per frame
    "chaos/_wire_scan.py:_Downstream._scan": 89,
    "chaos/_wire_scan.py:_Upstream._scan": 111,
    # not reached yet
}


def _functions(tree: ast.AST) -> list[tuple[str, int]]:
    """(qualified name, length in lines) of every function and method, at any depth."""
    out: list[tuple[str, int]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = f"{prefix}{child.name}"
                start = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                out.append((name, (child.end_lineno or child.lineno) - start + 1))
                visit(child, f"{name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(tree, "")
    return out


def offences(root: Path = ROOT) -> list[str]:
    out: list[str] = []
    seen_larger: set[str] = set()
    seen_longer: set[str] = set()
    for top in PACKAGE:
        for path in sorted((root / top).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            if rel.startswith(EXEMPT):
                continue
            text = path.read_text(encoding="utf-8")
            lines = len(text.splitlines())
            allowed = LARGER.get(rel, MAX_MODULE_LINES)
            if rel in LARGER:
                seen_larger.add(rel)
                if lines <= MAX_MODULE_LINES:
                    out.append(f"{rel}: {lines} lines, within {MAX_MODULE_LINES} now: remove it from LARGER")
            if lines > allowed:
                out.append(f"{rel}: {lines} lines, more than {allowed}; split it into modules of at most "
                           f"{MAX_MODULE_LINES} lines")
            for name, length in _functions(ast.parse(text, filename=rel)):
                key = f"{rel}:{name}"
                limit = LONGER.get(key, MAX_FUNCTION_LINES)
                if key in LONGER:
                    seen_longer.add(key)
                    if length <= MAX_FUNCTION_LINES:
                        out.append(f"{key}: {length} lines, within {MAX_FUNCTION_LINES} now: remove it from LONGER")
                if length > limit:
                    out.append(f"{key}: {length} lines, more than {limit}; split it into functions of at most "
                               f"{MAX_FUNCTION_LINES} lines")
    out += [f"{rel}: listed in LARGER but not found" for rel in sorted(set(LARGER) - seen_larger)]
    out += [f"{key}: listed in LONGER but not found" for key in sorted(set(LONGER) - seen_longer)]
    return out


def main() -> int:
    found = offences()
    for line in found:
        print(f"room_sizes: {line}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
