"""The LLM-as-judge rubrics through a local OpenAI-compatible server: what the judge is shown, how its answer becomes
a diagnostic check, and how a judge that fails or answers nonsense becomes a failed check instead of a crash."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from langchain_openai import ChatOpenAI
from pydantic import SecretStr

from evals.judges import CHOICES, SPANISH, TONE, judge_run, transcript
from evals.record import ScenarioRun, SentMessage, TurnRecord
from evals.scenario import CalendlyCancelled, Message
from prompts import PROMPTS_DIR
from tests.evals.openai_double import (
    API_KEY,
    MODEL,
    Json,
    OpenAIDouble,
    booking_agent,
    judge_scores,
    scripted_customer,
    text,
)
from tests.evals.test_simulated_customer import scenario

CUSTOMER = "whatsapp:+34600111222"


def run_of(language: str = "es", *, replies: bool = True) -> ScenarioRun:
    """A short recorded conversation: a customer turn, then a Calendly cancellation told to the customer."""
    answer = ("¡Hola! Mañana tengo hueco a las 17:00. ¿Te lo reservo?",) if replies else ()
    turns = [
        TurnRecord("customer", messages=(Message(text="hola, ¿hay hueco mañana?"),), replies=answer),
        TurnRecord(
            "event",
            event=CalendlyCancelled(kind="calendly_cancelled", appointment="apt_0000abcd"),
            event_text="(internal) the appointment was cancelled on Calendly",
            sent=(
                SentMessage(CUSTOMER, "Tu cita del miércoles se ha cancelado.", "cancellation"),
                SentMessage("whatsapp:+34911000000", "Aviso al equipo: cita cancelada.", "staff"),
            )
            if replies
            else (),
        ),
    ]
    return ScenarioRun(scenario(language), "simulate", 1, "sqlite://", ZoneInfo("Europe/Madrid"), "", turns=turns)


@pytest.fixture
def judged_by() -> Iterator[Any]:
    """Start a double whose judge plays the given policy; stopped at the end of the test."""
    started: list[OpenAIDouble] = []

    def start(judge: Any) -> OpenAIDouble:
        double = OpenAIDouble(agent=booking_agent, customer=scripted_customer({}), judge=judge).__enter__()
        started.append(double)
        return double

    yield start
    for double in started:
        double.__exit__(None, None, None)


def judge_model(double: OpenAIDouble, **extra: Any) -> ChatOpenAI:
    return ChatOpenAI(model=MODEL, base_url=double.url, api_key=SecretStr(API_KEY), max_retries=0, **extra)


def per_rubric(body: Json) -> Json:
    """Tone gets 1.0 and Spanish 0.75, so each check is seen to carry its own judge's answer."""
    prompt = body["messages"][-1]["content"]
    score = 0.75 if "native speaker of Spanish" in prompt else 1.0
    return text(json.dumps({"reasoning": f"Clear and kind. Thus, the score should be: {score}.", "score": score}))


async def test_a_spanish_conversation_is_judged_for_tone_and_spanish(judged_by: Any) -> None:
    double = judged_by(per_rubric)

    checks = await judge_run(run_of("es"), judge_model(double))

    assert [(c.name, c.passed, c.score, c.decisive) for c in checks] == [
        ("judge_tone", True, 1.0, False),
        ("judge_spanish", True, 0.75, False),
    ]
    assert checks[0].reason == "Clear and kind. Thus, the score should be: 1.0."
    requests = double.of("judge")
    assert len(requests) == 2 and not double.of("agent") and not double.of("customer")
    prompts = sorted(r.body["messages"][-1]["content"] for r in requests)
    assert prompts[0].startswith("You are a native speaker of Spanish") and prompts[1].startswith("You are reviewing")
    for prompt in prompts:
        assert "The customer writes in: Spanish (as spoken in Spain)" in prompt
        assert "customer: hola, ¿hay hueco mañana?" in prompt
        assert "assistant: ¡Hola! Mañana tengo hueco a las 17:00. ¿Te lo reservo?" in prompt
        assert "[calendar event: calendly_cancelled]" in prompt
        assert "assistant (cancellation): Tu cita del miércoles se ha cancelado." in prompt
        assert "Aviso al equipo" not in prompt and "(internal)" not in prompt  # staff messages, model-only texts
    schema = requests[0].body["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["score"]["enum"] == CHOICES and schema["required"] == ["reasoning", "score"]


async def test_an_english_conversation_gets_only_the_tone_judge(judged_by: Any) -> None:
    double = judged_by(judge_scores(1.0))

    checks = await judge_run(run_of("en"), judge_model(double))

    assert [c.name for c in checks] == ["judge_tone"]
    assert "The customer writes in: English" in double.of("judge")[0].body["messages"][-1]["content"]


async def test_a_low_score_fails_the_diagnostic(judged_by: Any) -> None:
    double = judged_by(judge_scores(0.25, "Cold and far too long."))

    checks = await judge_run(run_of("es"), judge_model(double))

    assert [(c.name, c.passed, c.score) for c in checks] == [
        ("judge_tone", False, 0.25),
        ("judge_spanish", False, 0.25),
    ]
    assert checks[0].reason.startswith("Cold and far too long.")


async def test_a_judge_answering_garbage_is_a_failed_diagnostic_not_a_crash(judged_by: Any) -> None:
    double = judged_by(lambda body: text("I would say it is quite good overall."))

    checks = await judge_run(run_of("en"), judge_model(double))

    [check] = checks
    assert (check.name, check.passed, check.score, check.decisive) == ("judge_tone", False, None, False)
    assert check.reason.startswith("judge failed: OutputParserException")


async def test_a_score_off_the_scale_is_a_failed_diagnostic(judged_by: Any) -> None:
    double = judged_by(lambda body: text(json.dumps({"reasoning": "Great.", "score": 7})))

    [check] = await judge_run(run_of("en"), judge_model(double))

    assert not check.passed and check.score is None
    assert check.reason.startswith("judge gave no score on the scale:") and "'score': 7" in check.reason


async def test_a_judge_the_server_refuses_is_a_failed_diagnostic(judged_by: Any) -> None:
    double = judged_by(judge_scores(1.0))
    # The agent's model factory binds parallel_tool_calls; reused bare as a judge, OpenAI refuses every request.
    refused = judge_model(double, model_kwargs={"parallel_tool_calls": True})

    [check] = await judge_run(run_of("en"), refused)

    assert not check.passed
    assert check.reason.startswith("judge failed: OpenAIInvalidRequestError: Error code: 400")
    assert "'parallel_tool_calls' is only allowed when 'tools' are specified" in check.reason


async def test_nothing_to_judge_without_replies(judged_by: Any) -> None:
    double = judged_by(judge_scores(1.0))

    checks = await judge_run(run_of("es", replies=False), judge_model(double))

    assert [(c.name, c.passed, c.reason) for c in checks] == [
        ("judge_tone", False, "no assistant reply to judge"),
        ("judge_spanish", False, "no assistant reply to judge"),
    ]
    assert not double.received


def test_the_transcript_is_customer_and_assistant_lines() -> None:
    assert transcript(run_of("es")) == [
        "customer: hola, ¿hay hueco mañana?",
        "assistant: ¡Hola! Mañana tengo hueco a las 17:00. ¿Te lo reservo?",
        "[calendar event: calendly_cancelled]",
        "assistant (cancellation): Tu cita del miércoles se ha cancelado.",
    ]


@pytest.mark.parametrize("rubric", [TONE, SPANISH])
def test_the_rubrics_live_in_prompts_and_take_the_conversation(rubric: Any) -> None:
    assert (PROMPTS_DIR / rubric.prompt).is_file()
    filled = rubric.text().format(inputs="English", outputs="customer: hi\nassistant: hello")
    assert "<conversation>\ncustomer: hi\nassistant: hello\n</conversation>" in filled
    assert all(str(choice) in filled for choice in CHOICES)
