"""The docs for sharded runs, merges and attach mode stay true: every `sagaproof` command line in sections 4 and 5
of docs/ci.md parses with the real CLI parser, and the attach-mode system files in docs/ load with the real
loader."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import pytest
from sagaproof.harness.config import parse_system
from sagaproof.harness.front.cli import build_parser

from tests.conftest import ROOT

CI_ALL = (ROOT / "docs" / "ci.md").read_text()
CI = CI_ALL[CI_ALL.index("## 4. Many seeds"):]  # sections 4 (sharded runs, merge) and 5 (attach mode)


def _blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, re.S)


def _command_lines(text: str) -> list[str]:
    lines = []
    for block in _blocks(text, "yaml") + _blocks(text, "sh"):
        block = block.replace("\\\n", " ")
        for line in block.splitlines():
            line = re.sub(r"^\s*(- )?(run: )?(\|\s*)?", "", line).split("  #")[0].split(" || ")[0]
            line = line.split(" > ")[0].strip()
            if line.startswith("sagaproof "):
                lines.append(line)
    return lines


def _shell_words(line: str) -> list[str]:
    line = re.sub(r"\$\(\(.*?\)\)", "1", line)           # $(( arithmetic ))
    line = re.sub(r"\$\{\{.*?\}\}", "1", line)           # ${{ github expressions }}
    line = re.sub(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?", "1", line)  # $VAR, ${VAR}
    return shlex.split(line)[1:]


COMMANDS = _command_lines(CI)


def test_the_ci_doc_shows_sharded_runs_merges_and_attach_runs():
    joined = "\n".join(COMMANDS)
    assert "--seeds" in joined and "--jobs" in joined and "sagaproof merge" in joined


@pytest.mark.parametrize("line", COMMANDS)
def test_every_command_line_in_the_ci_doc_parses(line: str):
    args = build_parser().parse_args(_shell_words(line))
    if args.command == "run" and args.seeds is not None:
        assert args.jobs is not None


def _files_named(toml: dict, root: Path) -> None:
    """Create the files an example system file names (secrets, contracts) so that it can be loaded."""
    nats = toml.get("nats", {})
    for key in ("creds", "nkey"):
        if key in nats:
            p = root / nats[key]
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text("SUAMLK2ZNL35WSMW37E7UD4VZ7ELPKW7DHC3BWBSD2GCZ7IUQQXZIORRBU\n")
    for value in nats.get("tls", {}).values():
        (root / value).parent.mkdir(parents=True, exist_ok=True)
        (root / value).write_text("pem\n")
    for svc in toml.get("services", {}).values():
        for c in svc.get("contracts", []):
            (root / c).parent.mkdir(parents=True, exist_ok=True)
            (root / c).write_text("asyncapi: 3.0.0\n")


@pytest.mark.parametrize("doc", ["ci.md", "system-file.md"])
def test_the_attach_mode_examples_are_valid_system_files(tmp_path: Path, doc: str):
    blocks = [b for b in _blocks((ROOT / "docs" / doc).read_text(), "toml") if 'url = "http' in b]
    assert blocks, f"docs/{doc} has no attach-mode example"
    for block in blocks:
        raw = tomllib.loads(block)
        root = tmp_path / "sys"
        root.mkdir(exist_ok=True)
        # absolute paths in the example (e.g. Kubernetes secret mounts) are re-rooted under tmp_path
        text = block.replace('"/secrets/', f'"{root}/secrets/')
        raw = tomllib.loads(text)
        _files_named(raw, root)
        spec = parse_system(raw, root / "sagaproof.toml")
        attached = [s for s in spec.services.values() if s.attached]
        assert attached and all(s.url and s.proxy for s in attached)
        assert all({"kill", "restart"} <= set(s.commands) for s in attached)
