"""`ServerOptions.from_env`: how the suite shrinks timings in real processes (ASISTENTE_<FIELD>), typed and
validated, with one clear line for a bad value; production defaults when nothing is set."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.settings import Settings
from server.options import ServerOptions
from tests.reliability.processes import ROOT


def test_nothing_set_means_the_production_defaults() -> None:
    assert ServerOptions.from_env({"ASISTENTE_RECORD": "1", "PATH": "/bin"}) == ServerOptions()


def test_values_take_their_fields_types() -> None:
    options = ServerOptions.from_env(
        {"ASISTENTE_POLL_SECONDS": "0.2", "ASISTENTE_MAX_CONCURRENT_TURNS": " 3 ", "ASISTENTE_LEASE_SECONDS": "15"}
    )
    assert options.poll_seconds == 0.2
    assert options.max_concurrent_turns == 3 and isinstance(options.max_concurrent_turns, int)
    assert options.lease_seconds == 15.0
    assert options.fold_quiet_seconds == ServerOptions().fold_quiet_seconds


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("ASISTENTE_POLL_SECONDS", "fast", "ASISTENTE_POLL_SECONDS must be a number, not 'fast'"),
        ("ASISTENTE_POLL_SECONDS", "-1", "ASISTENTE_POLL_SECONDS must be a finite number >= 0, not '-1'"),
        ("ASISTENTE_LEASE_SECONDS", "nan", "ASISTENTE_LEASE_SECONDS must be a finite number >= 0, not 'nan'"),
        ("ASISTENTE_MAX_CONCURRENT_TURNS", "2.5", "ASISTENTE_MAX_CONCURRENT_TURNS must be a whole number, not '2.5'"),
        (
            "ASISTENTE_ALLOW_UNSIGNED_WEBHOOKS",
            "true",
            "ASISTENTE_ALLOW_UNSIGNED_WEBHOOKS cannot be set from the environment; use --allow-unsigned-webhooks",
        ),
    ],
)
def test_a_bad_value_is_refused_by_name(name: str, value: str, message: str) -> None:
    with pytest.raises(ValueError) as refused:
        ServerOptions.from_env({name: value})
    assert str(refused.value) == message


@pytest.mark.parametrize("command", [["worker"], ["serve", "--no-worker", "--port", "1"]])
def test_the_commands_fail_in_one_line(command: list[str], tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields}
    env |= {
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'a.db'}",
        "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
        "ASISTENTE_POLL_SECONDS": "soon",
    }
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", *command],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.strip() == "ASISTENTE_POLL_SECONDS must be a number, not 'soon'"
    assert not (tmp_path / "a.db").exists()  # refused before anything was opened
