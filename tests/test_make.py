"""The Makefile installs once per virtualenv and again only when pyproject.toml changes.

Checked with `make -n` (print the commands, run none) on a copy of the Makefile and pyproject.toml in a scratch
directory, so nothing is installed and the checkout's own `.venv` is never touched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PIP_INSTALL = "pip install --quiet -e"

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A scratch directory holding the Makefile and pyproject.toml."""
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


def planned(project: Path, *targets: str, venv: str = "venv") -> str:
    """The commands `make TARGETS VENV=venv` would run."""
    done = subprocess.run(
        ["make", "-n", *targets, f"VENV={venv}"], cwd=project, capture_output=True, text=True, check=True
    )
    return done.stdout


def installed(project: Path, venv: str = "venv") -> Path:
    """Make `venv` look like a virtualenv the Makefile has installed into, after pyproject.toml was last changed."""
    (project / venv / "bin").mkdir(parents=True)
    (project / venv / "bin" / "python").touch()
    stamp = project / venv / ".installed"
    stamp.touch()
    a_minute_ago = time.time() - 60
    os.utime(project / "pyproject.toml", (a_minute_ago, a_minute_ago))
    return stamp


def test_a_fresh_venv_is_created_and_installed_into(project: Path) -> None:
    # CI: `make test VENV=<fresh dir>` (.ci/run).
    commands = planned(project, "test", venv="fresh/venv")
    assert "python3 -m venv fresh/venv" in commands
    assert f"fresh/venv/bin/python -m {PIP_INSTALL}" in commands
    assert "touch fresh/venv/.installed" in commands
    assert "fresh/venv/bin/pytest" in commands


@pytest.mark.parametrize("target", ["test", "demo", "lint", "install"])
def test_an_installed_venv_is_not_installed_again(project: Path, target: str) -> None:
    installed(project)
    commands = planned(project, target)
    assert "pip install" not in commands
    assert "python3 -m venv" not in commands


def test_a_changed_pyproject_installs_again_into_the_same_venv(project: Path) -> None:
    stamp = installed(project)
    an_hour_ago = time.time() - 3600
    os.utime(stamp, (an_hour_ago, an_hour_ago))  # pyproject.toml (a minute ago) is now newer than the install
    commands = planned(project, "demo")
    assert f"venv/bin/python -m {PIP_INSTALL}" in commands
    assert "python3 -m venv" not in commands
    assert commands.count(PIP_INSTALL) == 1
