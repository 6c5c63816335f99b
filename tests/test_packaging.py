"""The distribution installs one top-level import name, `sagaproof`, and works beside a user's own folders.

A user's repository often has folders called `contracts/`, `harness/` or `chaos/`; installing sagaproof must
not take those names, and those folders must not break sagaproof. These tests build the real wheel, install
it into a fresh virtual environment, and run the command and the pytest plugin from inside a user project
that has all three folders as Python packages that refuse to be imported.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

import sagaproof
from tests.conftest import MINI, ROOT

SITE = Path(sysconfig.get_paths()["purelib"])
NATS_BIN = Path(sys.executable).parent / "nats-server"


def test_every_package_folder_is_in_the_package_list() -> None:
    mapping = {"harness": "sagaproof.harness", "contracts": "sagaproof.contracts", "chaos": "sagaproof.chaos",
               "sagaproof": "sagaproof"}
    on_disk = set()
    for top, name in mapping.items():
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / top)
            on_disk.add(".".join([name, *rel.parts]))
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    assert on_disk == listed, f"add to or remove from pyproject's packages: {sorted(on_disk ^ listed)}"


def test_public_api_is_complete_and_resolves() -> None:
    exports = sagaproof._EXPORTS
    assert sorted(sagaproof.__all__) == sorted([*exports, "__version__"])
    for name in sagaproof.__all__:
        assert getattr(sagaproof, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        sagaproof.nope  # noqa: B018


def test_python_dash_m_sagaproof_is_the_command() -> None:
    proc = subprocess.run([sys.executable, "-m", "sagaproof", "--help"], capture_output=True, text=True, check=True)
    assert "usage: sagaproof" in proc.stdout
    for command in ("run", "up", "contracts", "toxiproxy"):
        assert command in proc.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    src = tmp_path_factory.mktemp("src") / "sagaproof"
    # Build from a clean copy so the work tree's caches and virtualenv stay out of it.
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".venv", ".git", "__pycache__", "*.egg-info", "build",
                                                              "sagaproof-report*", ".sagaproof"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(out), str(src)], check=True, capture_output=True, text=True)
    (found,) = out.glob("sagaproof-*.whl")
    return found


@pytest.mark.slow
def test_wheel_holds_one_top_level_package(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
        assert tops == {"sagaproof"}, tops
        top_level = [n for n in names if n.endswith(".dist-info/top_level.txt")]
        if top_level:
            assert zf.read(top_level[0]).decode().split() == ["sagaproof"]
        assert "sagaproof/harness/front/cli.py" in names and "sagaproof/chaos/toxiproxy/openapi.json" in names
        assert "sagaproof/py.typed" in names, "PEP 561: without it users' type checkers ignore our hints"
        entry_points = zf.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
        assert "sagaproof.harness.front.cli:main" in entry_points and "sagaproof.harness.front.pytest_plugin" in entry_points


@pytest.mark.slow
def test_installed_wheel_runs_beside_a_users_own_contracts_harness_and_chaos(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--target",
                    str(site), str(wheel)], check=True, capture_output=True, text=True)
    # The dependencies come from this virtualenv's site-packages, appended after the fresh one; the editable
    # install of this checkout is not activated there (its .pth file is only read in a site directory).
    (site / "zz-deps.pth").write_text(str(SITE) + "\n")

    project = tmp_path / "user-project"
    shutil.copytree(MINI, project)
    for folder in ("contracts", "harness", "chaos"):
        (project / folder).mkdir(exist_ok=True)
        (project / folder / "__init__.py").write_text(
            f"raise ImportError('this is the user project\\'s own {folder} package')\n")
    (project / "test_user.py").write_text(
        "def test_up(sagaproof_system):\n"
        "    assert sagaproof_system.services['alpha'].http.get('/health').status == 200\n")
    (project / "pytest.ini").write_text("[pytest]\nsagaproof_system = .\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["SAGAPROOF_NATS_SERVER"] = str(NATS_BIN)

    where = subprocess.run([str(python), "-c", "import sagaproof.harness, sys; print(sagaproof.harness.__file__)"],
                           cwd=project, env=env, capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(site)), f"sagaproof came from {where}, not from the installed wheel"

    run = subprocess.run([str(python), "-m", "sagaproof", "run", ".", "--sagas", "3", "--no-chaos",
                          "--report-dir", str(tmp_path / "report")], cwd=project, env=env, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert (tmp_path / "report" / "report.json").exists()

    tests = subprocess.run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=project, env=env,
                           capture_output=True, text=True, timeout=600)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "1 passed" in tests.stdout
