"""Plugins: a user project's own check and fault kind, in every front-end (run, --seeds, replay, pytest); a
plugin that cannot be imported; the installed-plugin entry points; a plugin's fault kind in the nemesis.

The user project is tests/fixtures/userproject (docs/extending.md walks through it), copied into a temporary
directory with the mini system's service: ``flag_fault.py`` (named by its ``[plugins]``) registers the fault
kind "flag" backed by commands that log to ``flags.log``; ``no_flag_check.py`` (given with ``--plugin``)
registers the check "no flag raised", which fails for every flag fault it sees.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sagaproof.chaos.nemesis import Fault, NemesisRunner, Schedule, generate_schedule

from sagaproof.faultkinds import CustomFault, FaultKindError, register_fault_kind, unregister_fault_kind
from tests.conftest import MINI, ROOT, SAGAPROOF

PROJECT = ROOT / "tests" / "fixtures" / "userproject"
CHECK = "no flag raised"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    d = tmp_path / "project"
    shutil.copytree(PROJECT, d)
    shutil.copy(MINI / "svc.py", d / "svc.py")
    return d


def _sagaproof(*args: str, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SAGAPROOF, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def _check(report: Path) -> dict[str, object]:
    data = json.loads((report / "report.json").read_text())
    [found] = [c for c in data["checks"] if c["name"] == CHECK]
    return dict(found)


def _flags(project: Path) -> list[str]:
    return (project / "flags.log").read_text().splitlines() if (project / "flags.log").exists() else []


def test_run_seeds_and_replay_run_the_projects_check_and_fault(project: Path):
    run = _sagaproof("run", ".", "--seed", "1", "--sagas", "6", "--plugin", "no_flag_check.py",
                     "--report-dir", "out", cwd=project)
    assert run.returncode == 1, run.stdout + run.stderr
    check = _check(project / "out")
    assert check["status"] == "failed" and "had a flag raised by fault" in str(check["summary"]), check
    raised = [line for line in _flags(project) if line.startswith("raise ")]
    assert raised and len(raised) == len([line for line in _flags(project) if line.startswith("clear ")])
    options = json.loads((project / "out" / "report.json").read_text())["options"]
    assert options["plugins"] == [str(project / "no_flag_check.py")]

    before = len(_flags(project))
    replay = _sagaproof("replay", "out", cwd=project)
    assert replay.returncode == 1, replay.stdout + replay.stderr
    again = _check(project / "out-replay")
    assert again["status"] == "failed" and "had a flag raised by fault" in str(again["summary"])
    assert len(_flags(project)) > before, "the replay injected the plugin's faults again"

    before = len(_flags(project))
    seeds = _sagaproof("run", ".", "--seeds", "1-2", "--jobs", "2", "--sagas", "6", "--plugin", "no_flag_check.py",
                       "--report-dir", "seeds", cwd=project)
    assert seeds.returncode == 1, seeds.stdout + seeds.stderr
    merged = json.loads((project / "seeds" / "report.json").read_text())
    assert merged["failed_checks"] == {CHECK: [1, 2]}
    for entry in merged["seeds"]:
        assert "had a flag raised by fault" in entry["summaries"][CHECK]
    assert len(_flags(project)) > before


def test_pytest_runs_the_projects_check_and_fault(project: Path):
    shutil.copy(project / "usertest.py", project / "test_flags.py")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_flags.py",
                           "--sagaproof-system", ".", "--sagaproof-plugin", "no_flag_check.py"],
                          cwd=project, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "no flag raised: 1 flag(s) raised: service alpha had a flag raised by fault t1" in proc.stdout
    assert _flags(project) == ["raise t1 alpha", "clear t1 alpha"]
    check = _check(project / ".sagaproof" / "report")
    assert check["status"] == "failed" and "had a flag raised" in str(check["summary"])


@pytest.mark.parametrize("where", ["cli", "system file"])
def test_a_plugin_that_cannot_be_imported_is_exit_2_with_one_sentence(project: Path, where: str):
    (project / "broken.py").write_text("import sagaproof\nraise RuntimeError('the flag table is missing')\n")
    if where == "cli":
        proc = _sagaproof("run", ".", "--plugin", "broken.py", cwd=project, timeout=60)
        named = "named in --plugin"
    else:
        toml = project / "sagaproof.toml"
        toml.write_text(toml.read_text().replace('modules = ["flag_fault"]', 'modules = ["flag_fault", "nowhere"]'))
        proc = _sagaproof("run", ".", cwd=project, timeout=60)
        named = "[plugins] modules"
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "could not be imported" in lines[0] and named in lines[0], lines[0]
    assert ("the flag table is missing" if where == "cli" else "No module named 'nowhere'") in lines[0]


@pytest.mark.parametrize("where", ["--sagaproof-plugin", "system file"])
def test_pytest_ends_with_exit_2_and_one_sentence_when_a_plugin_cannot_be_imported(project: Path, where: str):
    shutil.copy(project / "usertest.py", project / "test_flags.py")
    (project / "broken.py").write_text("import sagaproof\nraise RuntimeError('the flag table is missing')\n")
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_flags.py", "--sagaproof-system", "."]
    if where == "--sagaproof-plugin":
        args += ["--sagaproof-plugin", "broken.py"]
        cause = "RuntimeError: the flag table is missing"
    else:
        toml = project / "sagaproof.toml"
        toml.write_text(toml.read_text().replace('modules = ["flag_fault"]', 'modules = ["flag_fault", "nowhere"]'))
        where, cause = "sagaproof.toml [plugins] modules", "No module named 'nowhere'"
    proc = subprocess.run(args, cwd=project, capture_output=True, text=True, timeout=240)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "Traceback" not in out and "UsageError" not in out and " passed" not in out and " error" not in out, out
    said = {line.split("Exit: ", 1)[-1].rstrip(" !") for line in out.splitlines() if "could not be imported" in line}
    assert len(said) == 1, out  # one sentence (pytest shows it on the terminal, and on stderr before the session)
    [sentence] = said
    assert sentence.startswith("plugin ") and f"named in {where}" in sentence and cause in sentence, sentence
    assert sentence.endswith(f"fix the module or remove it from {where}."), sentence
    assert _flags(project) == []  # no test ran: no fault was raised


def test_an_unknown_fault_in_the_menu_names_the_plugins_kinds_too(project: Path):
    proc = _sagaproof("run", ".", "--faults", "flag,flog", cwd=project, timeout=60)
    assert proc.returncode == 2 and "unknown fault 'flog'" in proc.stderr and "flag" in proc.stderr, proc.stderr


def test_an_installed_plugin_is_loaded_through_its_entry_point(tmp_path: Path):
    site = tmp_path / "site"
    (site / "acme_checks-1.0.dist-info").mkdir(parents=True)
    (site / "acme_checks-1.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-checks\n"
                                                                 "Version: 1.0\n")
    (site / "acme_checks-1.0.dist-info" / "entry_points.txt").write_text("[sagaproof.plugins]\nacme = acme_checks\n")
    (site / "acme_checks.py").write_text(
        "import sagaproof\n\n@sagaproof.register_check\ndef acme(ctx):\n    return []\n")
    code = ("from sagaproof.harness.plugins import load_entry_points, loaded_plugins\n"
            "from sagaproof.harness.checks import registered_checks\n"
            "load_entry_points()\n"
            "print([fn.__name__ for fn in registered_checks()], loaded_plugins())\n")
    proc = subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "['acme'] ['entry point acme = acme_checks']"


# ---------------------------------------------------------------------------- the nemesis, no environment


@pytest.fixture
def doors() -> Iterator[list[tuple[str, str, str]]]:
    """A fault kind "door" backed by a callable: it logs (stage, fault id, target)."""
    log: list[tuple[str, str, str]] = []
    lock = threading.Lock()

    @contextmanager
    def door(fault: CustomFault) -> Iterator[None]:
        if fault.target == "locked":
            raise RuntimeError("the door is locked")
        with lock:
            log.append(("open", fault.id, fault.target))
        yield
        with lock:
            log.append(("close", fault.id, fault.target))

    register_fault_kind("door", door, summary="open a door")
    yield log
    unregister_fault_kind("door")


def test_the_nemesis_draws_and_carries_out_a_plugins_kind(doors: list[tuple[str, str, str]]):
    schedule = generate_schedule(3, ["door"], 0.9, 1.0, ["a", "b"])
    assert schedule.faults and {f.kind for f in schedule} == {"door"} and {f.target for f in schedule} == {"a", "b"}
    events: list[tuple[str, str]] = []
    runner = NemesisRunner(None, {}, on_event=lambda kind, fault, t: events.append((kind, fault.id)))
    runner.run(schedule)
    assert sorted(f for s, f, _ in doors if s == "open") == sorted(schedule.ids())
    assert sorted(f for s, f, _ in doors if s == "close") == sorted(schedule.ids())
    assert [k for k, _ in events].count("fault_start") == len(schedule) == [k for k, _ in events].count("fault_end")


def test_a_plugins_fault_that_raises_is_a_fault_not_carried_out(doors: list[tuple[str, str, str]]):
    failed: list[tuple[str, str, str]] = []
    runner = NemesisRunner(None, {}, on_failure=lambda fault, stage, error: failed.append((fault.id, stage, error)))
    runner.run(Schedule(1, 1.0, (Fault("f001", "door", "locked", 0.0, 0.1),)))
    assert failed == [("f001", "inject", "f001 door on locked: the door is locked")]
    assert doors == []


def test_a_fault_kind_is_backed_by_exactly_one_of_a_callable_and_a_command():
    with pytest.raises(FaultKindError, match="built-in kind"):
        register_fault_kind("kill", inject=["true"])
    with pytest.raises(FaultKindError, match="either a callable"):
        register_fault_kind("nothing")
    with pytest.raises(FaultKindError, match="plain name"):
        register_fault_kind("two words", inject=["true"])


def test_a_command_fault_is_run_in_a_group_the_reaper_is_told_of_and_a_failed_one_says_why(tmp_path: Path):
    from sagaproof.faultkinds import watch_process_groups

    added: list[int] = []
    removed: list[int] = []
    register_fault_kind("mark", inject=[sys.executable, "-c", "open('marks', 'a').write('{fault_id} {target}\\n')"],
                        heal=[sys.executable, "-c", "import sys; print('the disk is full'); sys.exit(3)"], cwd=tmp_path)
    watch_process_groups(added.append, removed.append)
    failed: list[tuple[str, str, str]] = []
    try:
        runner = NemesisRunner(None, {}, on_failure=lambda fault, stage, error: failed.append((fault.id, stage, error)))
        runner.run(Schedule(1, 1.0, (Fault("f001", "mark", "alpha", 0.0, 0.05),)))
    finally:
        watch_process_groups(None)
        unregister_fault_kind("mark")
    assert (tmp_path / "marks").read_text() == "f001 alpha\n"
    assert len(added) == 2 and added == removed, (added, removed)
    [(fid, stage, error)] = failed
    assert (fid, stage) == ("f001", "heal") and "exited with code 3 (the disk is full)" in error, error


def test_a_fault_command_that_outlives_its_timeout_is_killed_with_everything_it_started(tmp_path: Path):
    from sagaproof.faultkinds import run_command
    from tests.conftest import pid_alive

    script = "import subprocess, sys, time; p = subprocess.Popen(['sleep', '60']); print(p.pid, flush=True); time.sleep(60)"
    log = tmp_path / "cmd.log"
    with open(log, "wb") as out:
        code, _ = run_command([sys.executable, "-c", script], cwd=tmp_path, timeout=5.0, log=out)
    assert code is None
    child = int(log.read_text().split()[0])
    for _ in range(600):  # SIGKILL was sent to the group; its delivery is the kernel's (at most 30 s here)
        if not pid_alive(child):
            break
        time.sleep(0.05)
    assert not pid_alive(child), "the command's own child was killed with its group"


def test_a_check_module_imported_under_two_names_registers_its_check_once(tmp_path: Path):
    (tmp_path / "twice.py").write_text("import sagaproof\n\n@sagaproof.register_check\ndef twice(ctx):\n    return []\n")
    code = ("import importlib.util, sys\n"
            "sys.path.insert(0, sys.argv[1])\n"
            "import twice\n"
            "from sagaproof.harness.plugins import load_plugin\n"
            "from pathlib import Path\n"
            "load_plugin('twice.py', base=Path(sys.argv[1]), where='--plugin')\n"
            "from sagaproof.harness.checks import registered_checks\n"
            "print(len(registered_checks()), len(sys.modules) > 0)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[0] == "1"


def test_checks_a_factory_makes_are_each_registered():
    from sagaproof.harness import checks

    def make(name: str) -> checks.CheckFn:
        def check(ctx: checks.CheckContext) -> list[checks.CheckOutcome]:
            return [checks.CheckOutcome(name)]  # each made check judges its own thing

        return check

    made = [make("one"), make("two")]
    try:
        for fn in made:
            checks.register_check(fn)
        assert all(fn in checks.CHECKS for fn in made)
    finally:
        for fn in made:
            if fn in checks.CHECKS:
                checks.CHECKS.remove(fn)
