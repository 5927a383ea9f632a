"""Packaging: evaluations are an extra (openevals); the serving install has neither it nor vcrpy, and the demo
still runs without the extra, while `asistente eval` says in one line what to install."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WITHOUT_OPENEVALS = (
    "import sys; sys.modules['openevals'] = None; from cli.main import main; sys.argv[0] = 'asistente'; main()"
)


def project() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]  # type: ignore[no-any-return]


def test_the_serving_install_has_no_evaluation_machinery() -> None:
    spec = project()
    serving = " ".join(spec["dependencies"])  # type: ignore[arg-type]
    assert "openevals" not in serving and "vcrpy" not in serving
    extras = spec["optional-dependencies"]
    assert any(d.startswith("openevals") for d in extras["evals"])  # type: ignore[index]
    assert "asistente[evals]" in extras["dev"]  # type: ignore[index]


def run_without_openevals(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_OPENEVALS, *args],
        check=False,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(cwd)},
    )


def test_the_demo_runs_without_the_evals_extra(tmp_path: Path) -> None:
    result = run_without_openevals("demo", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "queda reservada para el jueves 26 de noviembre a las 10:00" in result.stdout


def test_eval_without_the_extra_says_what_to_install(tmp_path: Path) -> None:
    result = run_without_openevals("eval", "cancel_es", cwd=tmp_path)
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        == "evaluations need the evals extra: pip install 'asistente[evals]' (make install has it)"
    )
