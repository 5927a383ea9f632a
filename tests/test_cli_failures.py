"""Expected failures of the command line, run as a user runs them: a real process, exit code 1, one line on stderr
saying what went wrong and what to do, never a traceback, and quickly where waiting would be the bug.

Also here: which business a BUSINESS_CONFIG loads (a mistyped path is an error, never the sample salon), and
`asistente --version`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import pytest

from core.business import BusinessConfigError, configured_business, example_business, load_business
from core.settings import Settings
from tests.conftest import postgres_url

ROOT = Path(__file__).resolve().parents[1]
# A connection refused on loopback must be reported well within the 5 s connect timeout of `db migrate`; before,
# the pool retried for 10 s and printed a 137-line traceback.
QUICK_SECONDS = 5.0


@dataclass(frozen=True)
class Outcome:
    """What a command did: exit code, output, and how long it took."""

    code: int
    stdout: str
    stderr: str
    seconds: float


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> Outcome:
    """Run `asistente ARGS` in a fresh interpreter in `cwd`, with no configuration but `env`.

    `-m cli.main` with this checkout on PYTHONPATH runs the code under test, wherever the venv's editable install
    points; a directory in `cwd` named like a package (a copy of `evals`) comes first, so tests can break one.
    """
    clean = {k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields}
    clean |= {"PYTHONPATH": str(ROOT), "LANGSMITH_TRACING": "false", **(env or {})}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        cwd=cwd,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,  # a hang (e.g. a worker thread left running) fails the test instead of the suite
        check=False,
    )
    return Outcome(done.returncode, done.stdout, done.stderr, time.monotonic() - started)


def assert_one_line_failure(outcome: Outcome, *fragments: str) -> str:
    """Exit code 1, one line on stderr holding every fragment, and no traceback anywhere; return the line."""
    assert "Traceback" not in outcome.stderr + outcome.stdout, outcome.stderr
    assert outcome.code == 1, outcome
    lines = outcome.stderr.strip().splitlines()
    assert len(lines) == 1, outcome.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


# --- asistente db migrate ---------------------------------------------------------------------------------------


def test_db_migrate_with_postgres_unreachable_fails_fast_in_one_line(tmp_path: Path) -> None:
    outcome = run_cli(
        "db", "migrate", cwd=tmp_path, env={"DATABASE_URL": "postgresql://nobody:s3cret@127.0.0.1:1/nowhere"}
    )
    line = assert_one_line_failure(outcome, "DATABASE_URL", "127.0.0.1:1/nowhere", "Connection refused")
    assert "s3cret" not in line  # the password never reaches a terminal or a CI log
    assert outcome.seconds < QUICK_SECONDS


@pytest.mark.postgres
def test_db_migrate_with_the_database_missing_fails_fast_in_one_line(tmp_path: Path) -> None:
    base = postgres_url()
    if base is None:
        pytest.skip("TEST_DATABASE_URL not set (CI sets it; see .ci/run)")
    missing = f"asistente_missing_{uuid.uuid4().hex[:8]}"
    url = base.rsplit("/", 1)[0] + f"/{missing}"
    outcome = run_cli("db", "migrate", cwd=tmp_path, env={"DATABASE_URL": url})
    assert_one_line_failure(outcome, "DATABASE_URL", f'database "{missing}" does not exist')
    assert outcome.seconds < QUICK_SECONDS


def test_db_migrate_on_a_file_that_is_not_sqlite_fails_in_one_line(tmp_path: Path) -> None:
    # Opened by the store, this failure left aiosqlite's thread running and the process never exited.
    (tmp_path / "notes.txt").write_text("not a database, but long enough to have a header to read\n" * 4)
    outcome = run_cli("db", "migrate", cwd=tmp_path, env={"DATABASE_URL": "sqlite:///notes.txt"})
    assert_one_line_failure(outcome, "DATABASE_URL", "notes.txt", "file is not a database")
    assert outcome.seconds < QUICK_SECONDS


def test_db_migrate_where_a_directory_cannot_be_created_fails_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("a file where the database directory should be")
    outcome = run_cli("db", "migrate", cwd=tmp_path, env={"DATABASE_URL": "sqlite:///data/asistente.db"})
    assert_one_line_failure(outcome, "DATABASE_URL", "data/asistente.db")


# --- asistente demo ---------------------------------------------------------------------------------------------


def test_demo_keep_on_an_existing_file_fails_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "demo.db").write_text("mine, do not touch")
    outcome = run_cli("demo", "--keep", "demo.db", cwd=tmp_path)
    assert_one_line_failure(outcome, "--keep demo.db", "directory")
    assert (tmp_path / "demo.db").read_text() == "mine, do not touch"


def test_demo_keep_under_a_file_fails_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "demo.db").write_text("")
    outcome = run_cli("demo", "--keep", "demo.db/run1", cwd=tmp_path)
    assert_one_line_failure(outcome, "--keep demo.db/run1", "Not a directory")


# --- asistente eval, on a copy of `evals` that the test breaks --------------------------------------------------


@pytest.fixture
def evals_copy(tmp_path: Path) -> Path:
    """A copy of the `evals` package in the command's working directory, imported instead of the checkout's."""
    shutil.copytree(ROOT / "evals", tmp_path / "evals", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path / "evals"


def assert_case_failure(outcome: Outcome, *fragments: str) -> str:
    """A scenario that cannot run is a failed case (the others still run): exit 1, no traceback, and its one FAIL
    line naming every fragment."""
    assert "Traceback" not in outcome.stderr + outcome.stdout, outcome.stderr
    assert outcome.code == 1, outcome
    [line] = [line for line in outcome.stdout.splitlines() if line.startswith("FAIL ")]
    assert all(fragment in line for fragment in fragments), line
    return line


def test_eval_with_a_missing_cassette_fails_that_case_in_one_line(tmp_path: Path, evals_copy: Path) -> None:
    (evals_copy / "cassettes" / "cancel_es.yaml").unlink()
    outcome = run_cli("eval", "cancel_es", "booking_en", cwd=tmp_path)
    assert_case_failure(outcome, "cancel_es", "no cassette at", "cancel_es.yaml", "asistente eval --live --record")
    assert "booking_en" in outcome.stdout and "FAIL booking_en" not in outcome.stdout


def test_eval_with_a_cassette_directory_that_is_a_file_fails_in_one_line(tmp_path: Path, evals_copy: Path) -> None:
    shutil.rmtree(evals_copy / "cassettes")
    (evals_copy / "cassettes").write_text("")
    outcome = run_cli("eval", "cancel_es", cwd=tmp_path)
    assert_case_failure(outcome, "no cassette at")


def test_eval_with_a_cassette_that_is_not_yaml_fails_in_one_line(tmp_path: Path, evals_copy: Path) -> None:
    (evals_copy / "cassettes" / "cancel_es.yaml").write_text("interactions: [ {broken\n")
    outcome = run_cli("eval", "cancel_es", cwd=tmp_path)
    assert_case_failure(outcome, "cancel_es.yaml is not valid YAML (line 2)")


def test_eval_with_an_invalid_scenario_names_the_field(tmp_path: Path, evals_copy: Path) -> None:
    (evals_copy / "scenarios" / "broken.yaml").write_text(
        "description: x\nnow: 2026-11-24T10:00:00+01:00\ntags: {intent: book, language: es, difficulty: easy}\n"
        "customer: {wa_id: 'whatsapp:+34600000000', persona: p, goal: g}\nscript: []\nexpect: {apointments: []}\n"
    )
    outcome = run_cli("eval", "broken", cwd=tmp_path)
    assert_one_line_failure(outcome, "scenario", "expect.apointments: Extra inputs are not permitted")


def test_eval_with_no_scenarios_says_so(tmp_path: Path, evals_copy: Path) -> None:
    for path in (evals_copy / "scenarios").glob("*.yaml"):
        path.unlink()
    outcome = run_cli("eval", cwd=tmp_path)
    assert_one_line_failure(outcome, "no scenarios to run")


def test_eval_with_an_unknown_name_lists_the_available_ones(tmp_path: Path) -> None:
    outcome = run_cli("eval", "nope", cwd=tmp_path)
    assert_one_line_failure(outcome, "unknown scenario(s): nope", "demo_booking_es")


# --- BUSINESS_CONFIG --------------------------------------------------------------------------------------------


def test_a_mistyped_business_config_is_an_error_naming_the_key_and_path(tmp_path: Path) -> None:
    outcome = run_cli(
        "db", "migrate", cwd=tmp_path, env={"BUSINESS_CONFIG": "salon.yml", "DATABASE_URL": "sqlite:///a.db"}
    )
    assert_one_line_failure(outcome, "BUSINESS_CONFIG=salon.yml", str(tmp_path / "salon.yml"))
    assert not (tmp_path / "a.db").exists()  # nothing ran on the sample salon's behalf


@pytest.fixture
def in_empty_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with neither `business.yaml` nor `.env`, and no BUSINESS_CONFIG in the environment."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BUSINESS_CONFIG", raising=False)
    return tmp_path


def _salon(path: Path, name: str) -> Path:
    path.write_text((ROOT / "business.example.yaml").read_text(encoding="utf-8").replace("Peluquería RB", name))
    return path


def test_unset_and_without_business_yaml_the_example_runs(in_empty_dir: Path) -> None:
    assert configured_business(Settings()) == example_business()  # what `make demo` on a fresh clone runs
    assert load_business(Path("business.yaml")) == example_business()


def test_unset_the_default_business_yaml_is_used_when_present(in_empty_dir: Path) -> None:
    _salon(in_empty_dir / "business.yaml", "Salón Ana")
    assert configured_business(Settings()).name == "Salón Ana"


@pytest.mark.parametrize("value", ["salon.yml", "business.yaml"])
def test_a_set_business_config_naming_a_missing_file_is_an_error(
    in_empty_dir: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    # Even the default name: set explicitly, it promises a file.
    monkeypatch.setenv("BUSINESS_CONFIG", value)
    with pytest.raises(BusinessConfigError, match=f"BUSINESS_CONFIG={value}: no such file"):
        configured_business(Settings())


def test_business_config_from_dot_env_counts_as_set(in_empty_dir: Path) -> None:
    (in_empty_dir / ".env").write_text("BUSINESS_CONFIG=salon.yml\n")
    with pytest.raises(BusinessConfigError, match="BUSINESS_CONFIG=salon.yml"):
        configured_business(Settings())
    _salon(in_empty_dir / "salon.yml", "Salón Ana")
    assert configured_business(Settings()).name == "Salón Ana"


def test_load_business_refuses_a_missing_path_other_than_the_default(in_empty_dir: Path) -> None:
    with pytest.raises(BusinessConfigError, match="salon.yml: no such file"):
        load_business(Path("salon.yml"))


def test_a_business_config_that_is_a_directory_is_an_error(in_empty_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (in_empty_dir / "conf").mkdir()
    monkeypatch.setenv("BUSINESS_CONFIG", "conf")
    with pytest.raises(BusinessConfigError, match="BUSINESS_CONFIG=conf: cannot read"):
        configured_business(Settings())


# --- asistente --version ----------------------------------------------------------------------------------------


def test_version_prints_the_installed_version(tmp_path: Path) -> None:
    outcome = run_cli("--version", cwd=tmp_path)
    assert outcome.code == 0, outcome
    assert outcome.stdout.strip() == f"asistente {version('asistente')}"
