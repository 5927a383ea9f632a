"""`asistente demo` replays the quick-start booking as a chat and shows the row it wrote; `asistente chat` without a
model points to it."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import evals.agent_model
from cli.main import app
from core.settings import Settings


def test_cli_demo_shows_the_chat_and_the_booked_row(fresh_cli: CliRunner, tmp_path: Path) -> None:
    result = fresh_cli.invoke(app, ["demo", "--keep", str(tmp_path / "demo")])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "model replayed from evals/cassettes/demo_booking_es.yaml (4/4 answers; no API key, no network)" in out
    assert "María       › Hola, ¿tenéis hueco el jueves para corte?" in out
    assert "⚙ book_appointment(" in out and "⏸ waits for a yes" in out
    assert "¿Confirmo esta cita?" in out and "✔ the customer confirmed: book_appointment ran" in out
    assert "queda reservada para el jueves 26 de noviembre a las 10:00" in out
    [row] = [line for line in out.splitlines() if line.startswith("apt_")]
    assert row.split()[1:11] == [
        "Corte",
        "y",
        "Peinado",
        "2026-11-26",
        "10:00",
        "10:45",
        "confirmed",
        "agent",
        "25",
        "€",
    ]
    assert row.split()[-1] == "whatsapp:+34600123456"
    assert (tmp_path / "demo" / "asistente.db").is_file()
    assert "(a temporary database" not in out
    assert list(tmp_path.glob(".env*")) == [] and not (tmp_path / "data").exists()


def test_cli_demo_without_keep_uses_a_temporary_database(fresh_cli: CliRunner, tmp_path: Path) -> None:
    result = fresh_cli.invoke(app, ["demo"])
    assert result.exit_code == 0, result.output
    assert "(a temporary database, deleted now; `asistente demo --keep DIR` keeps it)" in result.output
    assert list(tmp_path.iterdir()) == []  # nothing left in the working directory


def test_cli_demo_that_does_not_replay_as_recorded_fails(
    fresh_cli: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = Settings.model_construct().model_copy(update={"openai_max_retries": 0, "openai_model": "gpt-4.1"})
    monkeypatch.setattr(evals.agent_model, "replay_settings", lambda: settings)
    result = fresh_cli.invoke(app, ["demo", "--keep", str(tmp_path / "demo")])
    assert result.exit_code == 1
    assert (
        "the demo did not replay as recorded (0/4 model answers): stale cassette: re-record demo_booking_es "
        "(model gpt-5-mini -> gpt-4.1)"
    ) in result.output
    assert "(no appointments)" in result.output and "Traceback" not in result.output


def test_cli_chat_without_a_model_points_to_the_demo(fresh_cli: CliRunner) -> None:
    result = fresh_cli.invoke(app, ["chat"], input="Hola\n")
    assert result.exit_code == 1
    assert "OPENAI_API_KEY" in result.output and "asistente demo" in result.output
