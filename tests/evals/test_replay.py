"""Replay, the default mode: every scenario through the real graph, tools and SQLite with the model answering from
its cassette; and the three ways a change must make it fail (a new prompt, a wrong tool, no confirmation gate)."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from pathlib import Path

import pytest
from langchain_core.messages import SystemMessage
from typer.testing import CliRunner

import agent.nodes
import agent.prompting
from booking.calendar import BookingRequest
from booking.local_calendar import LocalCalendar
from cli.main import app
from evals.results import CaseResult
from evals.runner import runnable
from evals.scenario import load_scenarios
from store.models import Appointment
from tests.evals.helpers import failed, replay, replay_all, scenario

PIRATE = "Eres un pirata. Responde siempre en alemán y nunca uses herramientas."
BOOKINGS = ("booking_en", "demo_booking_es")


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, CaseResult]:
    """Every scripted scenario replayed once, as CI runs `asistente eval`."""
    scripted, _ = runnable(load_scenarios(), "replay")
    results = replay_all(scripted, tmp_path_factory.mktemp("replay"))
    return {r.scenario: r for r in results}


def test_every_scripted_scenario_passes_in_replay(replayed: dict[str, CaseResult]) -> None:
    failures = {name: r.reason for name, r in replayed.items() if not r.passed}
    assert failures == {}
    assert len(replayed) >= 40


def test_every_replay_plays_its_whole_cassette_and_checks_the_end_state(replayed: dict[str, CaseResult]) -> None:
    for result in replayed.values():
        checks = {c.name: c for c in result.checks}
        assert checks["completed"].passed and "recorded answers" in checks["completed"].reason, result.scenario
        assert checks["final_state"].decisive and checks["final_state"].passed
        assert result.usage.model_calls > 0 and result.usage.input_tokens > 0


@pytest.fixture
def pirate_prompt(monkeypatch: pytest.MonkeyPatch) -> None:
    """The system prompt replaced, as a developer's edit would (the cached prefix dropped)."""
    monkeypatch.setattr(agent.prompting, "_render_prefix", lambda business: SystemMessage(PIRATE, id="static-prefix"))
    monkeypatch.setattr(agent.prompting, "_PREFIXES", {})


@pytest.mark.usefixtures("pirate_prompt")
async def test_the_pirate_prompt_fails_replay_as_a_stale_cassette(tmp_path: Path) -> None:
    result = await replay(scenario("booking_en"), tmp_path)
    assert not result.passed
    assert result.reason == "completed: stale cassette: re-record booking_en (the system prompt changed)"
    assert result.usage.model_calls == 0  # the first request was refused: no recorded answer was played
    assert [c.name for c in result.checks if not c.passed and c.decisive][:2] == ["completed", "final_state"]


@pytest.mark.usefixtures("pirate_prompt")
def test_the_pirate_prompt_fails_every_scripted_scenario_in_the_cli(fresh_cli: CliRunner, tmp_path: Path) -> None:
    result = fresh_cli.invoke(app, ["eval", "cancel_es", "booking_en", "--report-dir", str(tmp_path / "reports")])
    assert result.exit_code == 1
    assert "stale cassette: re-record cancel_es" in result.output
    assert "stale cassette: re-record booking_en" in result.output
    [report] = (tmp_path / "reports").glob("*.json")
    cases = json.loads(report.read_text(encoding="utf-8"))["cases"]
    assert {c["scenario"]: c["passed"] for c in cases} == {"cancel_es": False, "booking_en": False}


@pytest.fixture
def booking_an_hour_late(monkeypatch: pytest.MonkeyPatch) -> None:
    """A calendar whose book() writes the appointment one hour after the time it was asked for."""
    original = LocalCalendar.book

    async def late(self: LocalCalendar, request: BookingRequest) -> Appointment:
        return await original(self, dataclasses.replace(request, start=request.start + timedelta(hours=1)))

    monkeypatch.setattr(LocalCalendar, "book", late)


@pytest.mark.usefixtures("booking_an_hour_late")
async def test_a_tool_booking_an_hour_late_fails_the_booking_scenarios_on_the_end_state(tmp_path: Path) -> None:
    english = await replay(scenario("booking_en"), tmp_path / "en")
    assert not english.passed
    assert failed(english)["final_state"] == (
        "missing Corte y Peinado 2026-11-25 17:00 confirmed; unexpected Corte y Peinado 2026-11-25 18:00 confirmed "
        "(customer has: Corte y Peinado 2026-11-25 18:00 confirmed)"
    )
    spanish = await replay(scenario("demo_booking_es"), tmp_path / "es")
    assert spanish.reason.startswith("final_state: missing Corte y Peinado 2026-11-26 10:00 confirmed")
    untouched = await replay(scenario("cancel_es"), tmp_path / "cancel")  # no booking in it: still passes
    assert untouched.passed, untouched.reason


@pytest.fixture
def no_confirmation_gate(monkeypatch: pytest.MonkeyPatch) -> None:
    """The graph with its confirmation gate switched off: write calls run at once, like reads."""
    monkeypatch.setattr(agent.nodes, "WRITE_TOOLS", {})


@pytest.mark.usefixtures("no_confirmation_gate")
@pytest.mark.parametrize("name", [*BOOKINGS, "cancel_es", "reschedule_es"])
async def test_without_the_confirmation_gate_writes_fail_confirmed_first(name: str, tmp_path: Path) -> None:
    result = await replay(scenario(name), tmp_path)
    assert not result.passed
    assert result.reason == (
        "confirmed_first: turn 2: appointments changed without a confirmation question in the turn before"
        if name != "cancel_es"
        else "confirmed_first: turn 1: appointments changed without a confirmation question in the turn before"
    )


def test_the_cli_replays_every_scenario_prints_the_table_and_writes_both_reports(
    fresh_cli: CliRunner, tmp_path: Path
) -> None:
    reports = tmp_path / "reports"
    result = fresh_cli.invoke(app, ["eval", "--report-dir", str(reports)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "mode: replay (model answers from evals/cassettes; offline)" in result.output
    names = [s.name for s in load_scenarios()]
    table = {
        line.split()[0]: line.split()[1]
        for line in result.output.splitlines()
        if line.split()[:1] in [[n] for n in names]
    }
    assert table == dict.fromkeys(names, "1/1")  # one row per scenario, each passed
    assert "pass^1 100.0%" in result.output and "FAIL" not in result.output
    [json_report] = reports.glob("*-replay.json")
    data = json.loads(json_report.read_text(encoding="utf-8"))
    assert [c["scenario"] for c in data["cases"]] == names and len(names) >= 40
    assert data["meta"]["prompt_version"].startswith("p_") and data["meta"]["agent_model"] == "gpt-5-mini"
    assert data["summary"]["pass_hat"]["pass_hat"] == {"1": 1.0}
    assert json_report.with_suffix(".md").is_file()


@pytest.mark.usefixtures("no_confirmation_gate")
def test_the_threshold_decides_the_exit_code(fresh_cli: CliRunner, tmp_path: Path) -> None:
    names = ["booking_en", "calendly_cancellation_event"]  # the first fails without a gate, the second does not
    half = fresh_cli.invoke(app, ["eval", *names, "--threshold", "0.5", "--report-dir", str(tmp_path)])
    assert half.exit_code == 0, half.output
    full = fresh_cli.invoke(app, ["eval", *names, "--report-dir", str(tmp_path)])
    assert full.exit_code == 1


def test_an_unknown_scenario_is_one_clear_line(fresh_cli: CliRunner) -> None:
    result = fresh_cli.invoke(app, ["eval", "no_such_scenario"])
    assert result.exit_code == 1
    assert "unknown scenario(s): no_such_scenario" in result.output and "Traceback" not in result.output


def test_live_without_a_model_says_what_to_set(fresh_cli: CliRunner) -> None:
    result = fresh_cli.invoke(app, ["eval", "--live", "cancel_es"])
    assert result.exit_code == 1
    assert "--live needs a model: set OPENAI_API_KEY" in result.output


def test_record_without_a_model_refuses_and_leaves_the_cassette(fresh_cli: CliRunner) -> None:
    cassette = scenario("cancel_es").cassette
    before = cassette.read_bytes()
    result = fresh_cli.invoke(app, ["eval", "--record", "cancel_es"])
    assert result.exit_code == 1 and "--record needs a model" in result.output
    assert cassette.read_bytes() == before


def test_live_and_simulate_are_exclusive(fresh_cli: CliRunner) -> None:
    result = fresh_cli.invoke(app, ["eval", "--live", "--simulate", "cancel_es"])
    assert result.exit_code == 1 and "choose one of --live (--record) and --simulate" in result.output
