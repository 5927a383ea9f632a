"""Recorded conversations through the real graph, tools and SQLite with the model replayed from cassettes."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from cli.main import app
from core.settings import Settings, get_settings
from evals.dataset import Conversation, conversation_names, load_conversations
from evals.evaluators import ConfirmationBeforeWrite, EvaluationResult, detect_language
from evals.replay import CassetteNotFullyPlayed, model_cassette
from evals.runner import CaseReport, SuiteReport, format_report, run_case
from evals.session import run_conversation
from store import open_database
from store.clients import ClientRepository

EXPECTED_CONVERSATIONS = {
    "demo_booking_es",
    "booking_en",
    "cancel_es",
    "reschedule_es",
    "calendly_cancellation_event",
}


def conversation(name: str) -> Conversation:
    """One shipped conversation."""
    return load_conversations([name])[0]


async def run(name: str, tmp_path: Path, **changes: Any) -> CaseReport:
    """Run a shipped conversation (optionally with fields replaced) and evaluate it."""
    conv = conversation(name)
    if changes:
        conv = conv.model_copy(update=changes)
    return await run_case(conv, tmp_path)


def failures(case: CaseReport) -> list[str]:
    """`evaluator: reason` for every failed evaluator."""
    return [f"{r.evaluator}: {r.reason}" for r in case.results if not r.passed]


def test_every_required_conversation_ships_with_a_clean_cassette() -> None:
    assert set(conversation_names()) >= EXPECTED_CONVERSATIONS
    for conv in load_conversations():
        text = conv.cassette.read_text(encoding="utf-8")
        assert "ASISTENTE_RECORD=1" in text, f"{conv.name}: the header says how to re-record"
        assert "AUTHORED BY HAND" in text or "Recorded from the OpenAI API" in text, conv.name
        assert "Bearer " not in text, f"{conv.name}: a cassette must not carry credentials"
        interactions = yaml.safe_load(text)["interactions"]
        for interaction in interactions:
            request = interaction["request"]
            assert (request["method"], request["uri"]) == ("POST", "https://api.openai.com/v1/chat/completions")
            assert "authorization" not in {h.lower() for h in request["headers"]}
            assert interaction["response"]["status"]["code"] == 200


@pytest.mark.parametrize("name", sorted(EXPECTED_CONVERSATIONS))
async def test_conversation_passes_every_evaluator(name: str, tmp_path: Path) -> None:
    case = await run(name, tmp_path)
    assert case.passed, failures(case)
    assert case.run.fully_played and case.run.played == case.run.recorded > 0


async def test_demo_booking_writes_one_row_only_after_the_yes(tmp_path: Path) -> None:
    case = await run("demo_booking_es", tmp_path)
    first, question, yes = case.run.turns
    assert first.appointments_after == () and question.appointments_after == ()
    assert question.awaiting_confirmation and "¿Confirmo esta cita?" in question.replies[0]
    [booked] = yes.appointments_after
    assert (booked.service, booked.status, booked.source) == ("Corte y Peinado", "confirmed", "agent")
    assert booked.start_at == datetime(2026, 11, 26, 9, 0, tzinfo=UTC)  # 10:00 in Madrid
    assert booked.end_at == datetime(2026, 11, 26, 9, 45, tzinfo=UTC)
    assert booked.client_id == case.run.client_id
    assert case.run.sent == []  # customer-turn replies go back to the caller, not through send_whatsapp


async def test_english_booking_remembers_the_customer(tmp_path: Path) -> None:
    case = await run("booking_en", tmp_path)
    assert case.passed, failures(case)
    db = open_database(case.run.database_url)
    try:
        client = await ClientRepository(db).get("whatsapp:+447700900123")
    finally:
        await db.close()
    assert client is not None and (client.name, client.language) == ("James", "en")
    [booked] = case.run.customer_appointments()
    assert booked.start_at == datetime(2026, 11, 25, 16, 0, tzinfo=UTC)  # 17:00 in Madrid


async def test_cancellation_marks_the_seeded_row_cancelled(tmp_path: Path) -> None:
    case = await run("cancel_es", tmp_path)
    [row] = case.run.appointments
    assert (row.id, row.status, row.cancel_reason) == ("apt_5c1d2e3f", "cancelled", "La clienta no puede ir")
    assert row.cancelled_at == datetime.fromisoformat("2026-11-24T20:10:00+01:00")
    assert case.run.turns[0].appointments_after[0].status == "confirmed"  # untouched until the yes


async def test_reschedule_moves_the_same_row_and_its_seat_claims(tmp_path: Path) -> None:
    case = await run("reschedule_es", tmp_path)
    [row] = case.run.appointments
    assert (row.id, row.status) == ("apt_7a2b9c4d", "confirmed")
    assert (row.start_at, row.end_at) == (
        datetime(2026, 11, 27, 10, 30, tzinfo=UTC),
        datetime(2026, 11, 27, 11, 15, tzinfo=UTC),
    )
    db = open_database(case.run.database_url)
    try:
        claims = await db.fetch_all(
            "SELECT slot_start FROM calendar_claims WHERE appointment_id = :id ORDER BY slot_start", {"id": row.id}
        )
    finally:
        await db.close()
    assert [c["slot_start"][11:16] for c in claims] == ["10:30", "10:45", "11:00"]  # UTC, 15-minute grid


async def test_calendly_cancellation_event_sends_exactly_one_whatsapp(tmp_path: Path) -> None:
    case = await run("calendly_cancellation_event", tmp_path)
    [turn] = case.run.turns
    assert turn.replies == () and not turn.awaiting_confirmation
    [message] = case.run.sent
    assert (message.wa_id, message.kind) == ("whatsapp:+34633444555", "system")
    assert "Mechas" in message.body and "10:00" in message.body


async def test_a_run_that_leaves_answers_unplayed_fails(tmp_path: Path) -> None:
    conv = conversation("demo_booking_es")
    case = await run_case(conv.model_copy(update={"turns": conv.turns[:2]}), tmp_path)
    verdicts = {r.evaluator: r for r in case.results}
    assert not verdicts["cassette_played"].passed
    assert verdicts["cassette_played"].reason == "only 3/4 model answers played"
    assert SuiteReport([case], threshold=1.0).exit_code == 1


async def test_a_run_the_cassette_cannot_answer_fails_without_touching_the_network(tmp_path: Path) -> None:
    conv = conversation("demo_booking_es")
    longer = conv.model_copy(update={"turns": [*conv.turns, conv.turns[0]]})
    case = await run_case(longer, tmp_path)
    verdicts = {r.evaluator: r for r in case.results}
    assert not verdicts["completed"].passed
    assert "CannotOverwriteExistingCassetteException" in verdicts["completed"].reason


def test_replay_asserts_full_playback(tmp_path: Path) -> None:
    source = conversation("cancel_es").cassette
    with model_cassette(source) as replay:
        assert (replay.played, replay.recorded, replay.fully_played) == (0, 3, False)
        with pytest.raises(CassetteNotFullyPlayed, match="0 of 3"):
            replay.assert_fully_played()
    with pytest.raises(FileNotFoundError, match="ASISTENTE_RECORD"), model_cassette(tmp_path / "missing.yaml"):
        pass


@pytest.mark.parametrize(
    ("field", "value", "evaluator"),
    [
        ("confirmed", [{"service": "Corte y Peinado", "start": "2026-11-26T11:00"}], "confirmed"),
        ("cancelled", ["apt_00000000"], "cancelled"),
        ("tool_calls", ["book_appointment", "check_availability"], "tool_calls"),
        ("language", "en", "language"),
        ("send_whatsapp", 1, "send_whatsapp"),
        ("replies", [{"turn": 3, "contains": ["11:00"]}], "reply_text[3]"),
        ("replies", [{"contains": ["reservada"], "excludes": ["Calle Mayor"]}], "reply_text[last]"),
    ],
)
async def test_a_tampered_expectation_fails(tmp_path: Path, field: str, value: object, evaluator: str) -> None:
    conv = conversation("demo_booking_es")
    tampered = Conversation.model_validate({**conv.model_dump(), "expect": {**conv.expect.model_dump(), field: value}})
    case = await run_case(tampered, tmp_path)
    assert [r.evaluator for r in case.results if not r.passed] == [evaluator]
    report = SuiteReport([case], threshold=1.0)
    assert report.exit_code == 1 and "FAIL" in format_report(report) and "pass rate 0%" in format_report(report)


async def test_confirmation_evaluator_catches_a_write_without_a_question(tmp_path: Path) -> None:
    run_ = (await run("demo_booking_es", tmp_path)).run
    assert ConfirmationBeforeWrite().evaluate(run_).passed
    unasked = dataclasses.replace(run_.turns[1], awaiting_confirmation=False, replies=("Vale.",))
    forged = dataclasses.replace(run_, turns=[run_.turns[0], unasked, run_.turns[2]])
    verdict = ConfirmationBeforeWrite().evaluate(forged)
    assert not verdict.passed and "turn 3" in verdict.reason


async def test_recording_needs_a_real_key(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        await run_conversation(conversation("cancel_es"), tmp_path, record_with=Settings.model_construct())


def test_language_detection() -> None:
    assert detect_language("¿A qué hora te viene bien?") == "es"
    assert detect_language("What time suits you best?") == "en"
    assert detect_language("✅") is None


async def test_threshold_decides_the_exit_code(tmp_path: Path) -> None:
    run_ = (await run("cancel_es", tmp_path)).run
    passing = CaseReport(run_, [EvaluationResult("x", True, "ok")])
    failing = CaseReport(run_, [EvaluationResult("x", True, "ok"), EvaluationResult("y", False, "no")])
    assert SuiteReport([passing, failing], threshold=0.5).exit_code == 0
    assert SuiteReport([passing, failing], threshold=0.6).exit_code == 1
    assert SuiteReport([], threshold=0.0).exit_code == 1  # nothing ran is never a pass


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[CliRunner]:
    """The CLI on a fresh machine: empty working directory, no .env, no model configured."""
    monkeypatch.chdir(tmp_path)
    for key in ("OPENAI_BASE_URL", "DATABASE_URL", "BUSINESS_CONFIG", "ASISTENTE_RECORD"):
        monkeypatch.delenv(key, raising=False)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def test_cli_demo_shows_the_chat_and_the_booked_row(cli: CliRunner, tmp_path: Path) -> None:
    result = cli.invoke(app, ["demo", "--keep", str(tmp_path / "demo")])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "María       › Hola, ¿tenéis hueco el jueves para corte?" in out
    assert "¿Confirmo esta cita?" in out and "✔ the customer confirmed: book_appointment ran" in out
    assert "queda reservada para el jueves 26 de noviembre a las 10:00" in out
    [row] = [line for line in out.splitlines() if line.startswith("apt_")]
    assert row.split()[1:8] == ["Corte", "y", "Peinado", "2026-11-26", "10:00", "10:45", "confirmed"]
    assert (tmp_path / "demo" / "asistente.db").is_file()
    assert list(tmp_path.glob(".env*")) == [] and not (tmp_path / "data").exists()


def test_cli_eval_reports_a_full_pass_rate(cli: CliRunner) -> None:
    result = cli.invoke(app, ["eval", "demo_booking_es", "cancel_es"])
    assert result.exit_code == 0, result.output
    assert "conversations passed: 2/2" in result.output and "pass rate 100%" in result.output


def test_cli_eval_rejects_an_unknown_conversation(cli: CliRunner) -> None:
    result = cli.invoke(app, ["eval", "no_such_conversation"])
    assert result.exit_code == 1 and "unknown conversation(s): no_such_conversation" in result.output


def test_cli_chat_without_a_model_points_to_the_demo(cli: CliRunner) -> None:
    result = cli.invoke(app, ["chat"], input="Hola\n")
    assert result.exit_code == 1
    assert "OPENAI_API_KEY" in result.output and "asistente demo" in result.output


def test_cli_eval_record_without_a_key_refuses(cli: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASISTENTE_RECORD", "1")
    result = cli.invoke(app, ["eval", "cancel_es"])
    assert result.exit_code == 1 and "recording needs OPENAI_API_KEY" in result.output
    assert "AUTHORED BY HAND" in conversation("cancel_es").cassette.read_text(encoding="utf-8")  # not overwritten


def test_cli_chat_runs_customer_turns_from_stdin(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A configured model whose answers come from the demo cassette (first turn only), on a SQLite file of its own.
    monkeypatch.setenv("OPENAI_API_KEY", "sk-evals-console-0000")
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'chat.db'}")
    with model_cassette(conversation("demo_booking_es").cassette) as replay:
        result = cli.invoke(app, ["chat", "--name", "María"], input="Hola, ¿tenéis hueco el jueves para corte?\n")
    assert result.exit_code == 0, result.output
    assert "asistente › ¡Hola, María!" in result.output and "¿A qué hora te viene bien?" in result.output
    assert replay.played == 2
