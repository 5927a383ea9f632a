"""The runner beyond replay: `--record` rewrites a cassette from an OpenAI-compatible server (which then replays
and goes stale like any other), cases run at once up to `--concurrency`, and a case past `--timeout` fails alone."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from langchain_core.messages import SystemMessage
from typer.testing import CliRunner

import agent.prompting
import evals.scenario
from cli.main import app
from core.settings import Settings, get_settings
from evals.cassette import Cassette
from evals.runner import RunOptions, run_cases
from evals.scenario import load_scenarios
from tests.evals.helpers import replay
from tests.evals.openai_double import (
    API_KEY,
    Json,
    OpenAIDouble,
    Policy,
    booking_agent,
    judge_scores,
    scripted_customer,
)

DEFAULT_MODEL = Settings.model_fields["openai_model"].default


@pytest.fixture
def cassettes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Cassettes are read and written under tmp_path, never in the repository."""
    directory = tmp_path / "cassettes"
    monkeypatch.setattr(evals.scenario, "CASSETTES_DIR", directory)
    return directory


def served(double: OpenAIDouble, model: str = DEFAULT_MODEL) -> dict[str, str]:
    return {
        "OPENAI_BASE_URL": double.url,
        "OPENAI_API_KEY": API_KEY,
        "OPENAI_MODEL": model,
        "OPENAI_MAX_RETRIES": "0",
        "EVAL_JUDGE_MODEL": "judge",
    }


def record(cli: CliRunner, tmp_path: Path, model: str = DEFAULT_MODEL) -> tuple[str, int, OpenAIDouble]:
    with OpenAIDouble(agent=booking_agent, customer=scripted_customer({}), judge=judge_scores()) as double:
        get_settings.cache_clear()
        args = ["eval", "--record", "booking_en", "--report-dir", str(tmp_path / "r")]
        result = cli.invoke(app, args, env=served(double, model))
    return result.output, result.exit_code, double


def test_record_writes_a_cassette_from_the_server_that_then_replays(
    fresh_cli: CliRunner, cassettes: Path, tmp_path: Path
) -> None:
    output, code, double = record(fresh_cli, tmp_path)
    assert code == 0, output
    assert "mode: record (the configured model answers; cassettes are REWRITTEN)" in output
    cassette = Cassette.load(cassettes / "booking_en.yaml")
    assert cassette.source == f"recorded from {double.url}"
    assert len(cassette.interactions) == len(double.of("agent")) == 4
    assert cassette.fingerprint is not None and cassette.fingerprint.model == DEFAULT_MODEL
    [case] = load_scenarios(["booking_en"])
    replayed = asyncio.run(replay(case, tmp_path / "replay"))  # offline, from what was just recorded
    assert replayed.passed, replayed.reason
    assert replayed.usage.model_calls == 4


def test_recording_with_another_model_says_replay_will_find_it_stale(
    fresh_cli: CliRunner, cassettes: Path, tmp_path: Path
) -> None:
    output, code, _ = record(fresh_cli, tmp_path, model="local-llama")
    assert code == 0, output
    assert f"recording with local-llama: replay runs the default model {DEFAULT_MODEL}" in output
    result = fresh_cli.invoke(app, ["eval", "booking_en", "--report-dir", str(tmp_path / "r2")])
    assert result.exit_code == 1
    assert f"stale cassette: re-record booking_en (model local-llama -> {DEFAULT_MODEL})" in result.output


def test_a_recorded_cassette_goes_stale_with_the_prompt(
    fresh_cli: CliRunner, cassettes: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert record(fresh_cli, tmp_path)[1] == 0
    monkeypatch.setattr(agent.prompting, "_render_prefix", lambda business: SystemMessage("Arr.", id="static-prefix"))
    monkeypatch.setattr(agent.prompting, "_PREFIXES", {})
    [case] = load_scenarios(["booking_en"])
    result = asyncio.run(replay(case, tmp_path / "replay"))
    assert result.reason == "completed: stale cassette: re-record booking_en (the system prompt changed)"


def held_agent(gate: threading.Barrier) -> Policy:
    """The booking agent, but each first request waits until `gate.parties` cases are asking at the same time."""
    waited: set[str] = set()

    def policy(body: Json) -> Json:
        context = str(body["messages"][1]["content"])
        if context not in waited:
            waited.add(context)
            gate.wait(timeout=30)  # broken (BrokenBarrierError) unless the cases really run at once
        return booking_agent(body)

    return policy


def live_options(tmp_path: Path, double: OpenAIDouble, concurrency: int, time_limit: float = 60) -> RunOptions:
    settings = Settings.model_validate(
        {"openai_base_url": double.url, "openai_api_key": API_KEY, "openai_max_retries": 0}
    )
    return RunOptions(
        mode="live", workdir=tmp_path, agent_settings=settings, concurrency=concurrency, time_limit=time_limit
    )


async def test_cases_run_at_once_up_to_the_concurrency(tmp_path: Path) -> None:
    scenarios = load_scenarios(["booking_en", "demo_booking_es"])
    gate = threading.Barrier(2)
    with OpenAIDouble(agent=held_agent(gate), customer=scripted_customer({}), judge=judge_scores()) as double:
        results = await run_cases(scenarios, live_options(tmp_path, double, concurrency=2))
    assert not gate.broken  # both cases were waiting at the gate together
    assert [r.scenario for r in results] == ["booking_en", "demo_booking_es"]
    assert all(r.usage.model_calls > 0 for r in results)


async def test_with_concurrency_one_cases_run_one_after_the_other(tmp_path: Path) -> None:
    scenarios = load_scenarios(["booking_en", "demo_booking_es"])
    gate = threading.Barrier(2)
    with OpenAIDouble(agent=held_agent(gate), customer=scripted_customer({}), judge=judge_scores()) as double:
        gate_timeout = threading.Timer(2, gate.abort)  # never two at once: the first waiter is released by abort
        gate_timeout.start()
        results = await run_cases(scenarios, live_options(tmp_path, double, concurrency=1))
        gate_timeout.cancel()
    assert gate.broken
    assert len(results) == 2


async def test_a_case_past_its_time_limit_fails_alone(tmp_path: Path) -> None:
    release = threading.Event()

    def stuck(body: Json) -> Json:
        if "Hi! Can I book" in str(body["messages"]):
            release.wait(timeout=30)  # the English case hangs until the test ends
        return booking_agent(body)

    scenarios = load_scenarios(["booking_en", "demo_booking_es"])
    with OpenAIDouble(agent=stuck, customer=scripted_customer({}), judge=judge_scores()) as double:
        try:
            results = await run_cases(scenarios, live_options(tmp_path, double, concurrency=2, time_limit=1))
        finally:
            release.set()
    english, spanish = results
    assert not english.passed and english.error == "timed out after 1 s"
    assert english.reason == "completed: stopped: timed out after 1 s"
    # The other case ran to its end (the double's simple agent books "tomorrow", so only its end state is wrong).
    assert spanish.error is None and {c.name: c.passed for c in spanish.checks}["completed"]
