"""`asistente eval --live` and `--simulate --trials 2` end to end, against a local OpenAI-compatible server playing
the agent's model, the simulated customer and the judge; then `asistente eval compare` on the reports.

The agent's model is a rule-based policy (tests/evals/openai_double.py) good enough to book; the customer says the
scenario's lines and then the stop signal; the judge scores tone. Everything else is real: the CLI, the runner,
the graph, the tools, the SQLite store per case, the evaluators and the reports.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from core.settings import get_settings
from evals.report import load_report
from evals.results import RunReport
from evals.simulated_customer import CUSTOMER_MARKER
from tests.evals.openai_double import (
    API_KEY,
    MODEL,
    Json,
    OpenAIDouble,
    Policy,
    booking_agent,
    judge_scores,
    scripted_customer,
)

SCENARIO = "booking_en"  # James books a haircut for tomorrow at 17:00 (evals/scenarios/booking_en.yaml)
PERSONA = "James, a British customer living in Madrid"
LINES = {PERSONA: ["Hi! Can I book a haircut for tomorrow afternoon?", "5pm please", "Yes"]}
CUSTOMER_MODEL = "double-customer"
AGENT_REQUESTS = 4  # check_availability, the times offered, book_appointment, the booking confirmed
CUSTOMER_REQUESTS = 4  # three lines, then the stop signal once the booking is confirmed


def an_hour_late(body: Json) -> Json:
    """The booking agent, but every book_appointment call is one hour after the time the customer asked for."""
    message = booking_agent(body)
    for call in message.get("tool_calls") or []:
        arguments = json.loads(call["function"]["arguments"])
        if call["function"]["name"] == "book_appointment":
            late = datetime.fromisoformat(arguments["start_time"]) + timedelta(hours=1)
            call["function"]["arguments"] = json.dumps({**arguments, "start_time": late.isoformat()})
    return message


@dataclass
class Ran:
    """One `asistente eval` invocation: its output and exit code, the report it wrote, what the double received."""

    output: str
    exit_code: int
    report_path: Path
    report: RunReport
    data: Json
    double: OpenAIDouble


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[CliRunner, Path]]:
    """The CLI on a fresh machine (no .env, no LangSmith) whose models are served by the double of each run."""
    home = tmp_path_factory.mktemp("eval-cli")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(home)
        for key in ("DATABASE_URL", "BUSINESS_CONFIG", "LANGSMITH_API_KEY", "LANGCHAIN_API_KEY", "OPENAI_MODEL"):
            patch.delenv(key, raising=False)
        for key in ("EVAL_JUDGE_MODEL", "EVAL_JUDGE_BASE_URL", "EVAL_JUDGE_API_KEY"):
            patch.delenv(key, raising=False)  # the judge defaults to the customer's model
        patch.setenv("LANGSMITH_TRACING", "false")
        yield CliRunner(), home
    get_settings.cache_clear()


def run_eval(cli: tuple[CliRunner, Path], name: str, *args: str, agent: Policy = booking_agent) -> Ran:
    """`asistente eval SCENARIO ARGS` with every model served by a fresh double; reports in their own directory."""
    runner, home = cli
    reports = home / name
    with OpenAIDouble(agent=agent, customer=scripted_customer(LINES), judge=judge_scores(1.0)) as double:
        env = {
            "OPENAI_BASE_URL": double.url,
            "OPENAI_API_KEY": API_KEY,
            "OPENAI_MODEL": MODEL,
            "OPENAI_MAX_RETRIES": "0",
            "EVAL_CUSTOMER_MODEL": CUSTOMER_MODEL,
            "EVAL_CUSTOMER_BASE_URL": double.url,
            "EVAL_CUSTOMER_API_KEY": API_KEY,
        }
        get_settings.cache_clear()
        result = runner.invoke(app, ["eval", SCENARIO, *args, "--report-dir", str(reports)], env=env)
        get_settings.cache_clear()
    [path] = reports.glob("*.json")
    return Ran(result.output, result.exit_code, path, load_report(path), json.loads(path.read_text("utf-8")), double)


@pytest.fixture(scope="module")
def live(cli: tuple[CliRunner, Path]) -> Ran:
    return run_eval(cli, "live", "--live")


@pytest.fixture(scope="module")
def simulated(cli: tuple[CliRunner, Path]) -> Ran:
    return run_eval(cli, "simulate", "--simulate", "--trials", "2")


def checks_of(case: Json) -> dict[str, Json]:
    return {check["name"]: check for check in case["checks"]}


def test_live_books_through_the_double_and_reports_pass_hat(live: Ran) -> None:
    assert live.exit_code == 0, live.output
    assert "mode: live (the configured model answers the scripted turns; cassettes untouched)" in live.output
    assert f"agent model: {MODEL} at {live.double.url}" in live.output
    assert f"judge model: {CUSTOMER_MODEL} at {live.double.url}" in live.output
    meta = live.data["meta"]
    assert (meta["mode"], meta["agent_model"], meta["judge_model"], meta["customer_model"]) == (
        "live",
        MODEL,
        CUSTOMER_MODEL,
        None,
    )
    [case] = live.data["cases"]
    checks = checks_of(case)
    assert case["passed"] and checks["final_state"]["passed"] and checks["final_state"]["decisive"]
    assert checks["final_state"]["reason"] == "customer has: Corte y Peinado 2026-11-25 17:00 confirmed"
    assert checks["judge_tone"] == {
        "name": "judge_tone",
        "passed": True,
        "reason": "Friendly, short and clear. Thus, the score should be: 1.0.",
        "decisive": False,
        "score": 1.0,
    }
    assert live.report.aggregate().pass_hat == {1: 1.0}


def test_live_asks_the_agent_model_and_the_judge_never_a_customer(live: Ran) -> None:
    double = live.double
    agent, judge = double.of("agent"), double.of("judge")
    assert (len(agent), len(double.of("customer")), len(judge), len(double.of("unknown"))) == (AGENT_REQUESTS, 0, 1, 0)
    assert all(r.body["model"] == MODEL and r.body["tools"] for r in agent)
    assert judge[0].body["model"] == CUSTOMER_MODEL
    assert "customer: Hi! Can I book a haircut for tomorrow afternoon?" in judge[0].body["messages"][-1]["content"]
    # The report counts the agent's tokens as the server answered them (customer and judge not included).
    [case] = live.data["cases"]
    assert case["usage"] == {
        "model_calls": AGENT_REQUESTS,
        "input_tokens": sum(r.prompt_tokens for r in agent),
        "output_tokens": sum(r.completion_tokens for r in agent),
    }


def test_simulate_runs_two_trials_with_the_customer_model(simulated: Ran) -> None:
    assert simulated.exit_code == 0, simulated.output
    assert "mode: simulate (a model plays the customer from each persona and goal)" in simulated.output
    assert f"customer model: {CUSTOMER_MODEL} at {simulated.double.url}" in simulated.output
    meta = simulated.data["meta"]
    assert (meta["mode"], meta["trials"], meta["customer_model"], meta["judge_model"]) == (
        "simulate",
        2,
        CUSTOMER_MODEL,
        CUSTOMER_MODEL,
    )
    cases = simulated.data["cases"]
    assert [(c["scenario"], c["trial"], c["passed"]) for c in cases] == [(SCENARIO, 1, True), (SCENARIO, 2, True)]
    for case in cases:
        assert checks_of(case)["final_state"]["passed"] and checks_of(case)["judge_tone"]["score"] == 1.0
        said = [line["text"] for line in case["transcript"] if line["who"] == "customer"]
        assert said == LINES[PERSONA]
    assert simulated.report.aggregate().pass_hat == {1: 1.0, 2: 1.0}
    assert simulated.report.by_tag()["intent:book"].pass_hat == {1: 1.0, 2: 1.0}
    summary = simulated.data["summary"]  # the JSON carries the aggregates for its readers too
    assert summary["pass_hat"]["pass_hat"] == {"1": 1.0, "2": 1.0} and summary["ok"] is True
    assert summary["tags"]["intent:book"]["pass_hat"] == {"1": 1.0, "2": 1.0}
    assert "pass^1 100.0%  pass^2 100.0%" in simulated.report_path.with_suffix(".md").read_text("utf-8")


def test_simulate_asks_each_model_its_own_part(simulated: Ran) -> None:
    double = simulated.double
    customer, agent, judge = double.of("customer"), double.of("agent"), double.of("judge")
    assert (len(customer), len(agent), len(judge), len(double.of("unknown"))) == (
        2 * CUSTOMER_REQUESTS,
        2 * AGENT_REQUESTS,
        2,
        0,
    )
    for request in customer:
        system = request.body["messages"][0]["content"]
        assert request.body["model"] == CUSTOMER_MODEL and "tools" not in request.body
        assert system.startswith(CUSTOMER_MARKER) and PERSONA in system and "Write in English only" in system
    assert all(r.body["model"] == MODEL for r in agent)
    # Each trial's customer starts again from the opening instruction (fresh conversation, fresh database).
    openings = [r for r in customer if len(r.body["messages"]) == 2]
    assert len(openings) == 2


def test_compare_on_the_two_reports(cli: tuple[CliRunner, Path], live: Ran, simulated: Ran) -> None:
    runner, _ = cli
    result = runner.invoke(app, ["eval", "compare", str(live.report_path), str(simulated.report_path)])

    assert result.exit_code == 0, result.output
    assert f"{MODEL} (live, " in result.output and f"{MODEL} (simulate, " in result.output
    assert "Regressions: passed every trial in A, not in B (0)" in result.output
    assert "pass^1  100.0% -> 100.0% (+0.0 pts)" in result.output
    assert "no regressions" in result.output


def test_compare_shows_a_regression_from_an_agent_booking_an_hour_late(
    cli: tuple[CliRunner, Path], simulated: Ran
) -> None:
    late = run_eval(cli, "late", "--simulate", "--trials", "2", agent=an_hour_late)
    assert late.exit_code == 1, late.output
    assert all(not checks_of(c)["final_state"]["passed"] for c in late.data["cases"])
    assert late.report.aggregate().pass_hat == {1: 0.0, 2: 0.0}

    runner, _ = cli
    result = runner.invoke(app, ["eval", "compare", str(simulated.report_path), str(late.report_path)])

    assert result.exit_code == 1, result.output
    assert "Regressions: passed every trial in A, not in B (1)" in result.output
    assert f"{SCENARIO}  pass^1 100.0% -> 0.0% (-100.0 pts)  B: final_state:" in result.output
    assert "pass^2  100.0% -> 0.0% (-100.0 pts)" in result.output
    assert "REGRESSED: 1 scenario(s) no longer pass" in result.output
