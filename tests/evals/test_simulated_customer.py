"""The simulated customer through a local OpenAI-compatible server: what its model is asked (persona, goal, facts
to keep until asked, language, the stop signal), how the conversation reaches it, and how it ends."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_openai import ChatOpenAI
from pydantic import SecretStr

from evals.agent_model import open_agent_model, replay_settings
from evals.record import ScenarioRun
from evals.scenario import Message, Scenario
from evals.session import run_scenario
from evals.simulated_customer import CUSTOMER_MARKER, STOP, SimulatedCustomer, customer_prompt, split_stop
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

PERSONA = "Lucía, 34, writes fast and without capitals."


def scenario(language: str = "es", knows: list[str] | None = None, **changes: Any) -> Scenario:
    """A small booking scenario (the example business; Tuesday 24 November 2026, 11:05 in Madrid)."""
    data: dict[str, Any] = {
        "name": "simulated_booking",
        "description": "A customer books a haircut for tomorrow at 17:00.",
        "now": "2026-11-24T11:05:00+01:00",
        "tags": {"intent": "book", "language": language, "difficulty": "easy"},
        "customer": {
            "wa_id": "whatsapp:+34600111222",
            "profile_name": "Lucía",
            "persona": PERSONA,
            "goal": "Book a haircut for tomorrow at 17:00 and confirm when asked.",
            "knows": knows if knows is not None else ["Her email is lucia@example.com."],
        },
        "expect": {"appointments": [{"service": "Corte y Peinado", "start": "2026-11-25T17:00"}]},
        **changes,
    }
    return Scenario.model_validate(data)


def answers(*lines: str) -> Any:
    """A customer policy saying `lines` one per request, whatever it is asked."""
    queue = list(lines)
    return lambda body: text(queue.pop(0))


@pytest.fixture
def double_for() -> Iterator[Any]:
    """Start a double whose customer plays the given policy; stopped after the test (outside its event loop: the
    server's shutdown blocks)."""
    started: list[OpenAIDouble] = []

    def start(customer: Any) -> OpenAIDouble:
        double = OpenAIDouble(agent=booking_agent, customer=customer, judge=judge_scores()).__enter__()
        started.append(double)
        return double

    yield start
    for double in started:
        double.__exit__(None, None, None)


def chat_model(double: OpenAIDouble) -> ChatOpenAI:
    return ChatOpenAI(model=MODEL, base_url=double.url, api_key=SecretStr(API_KEY), max_retries=0)


async def simulate(
    the_scenario: Scenario, double: OpenAIDouble, directory: Path
) -> tuple[ScenarioRun, SimulatedCustomer]:
    """Run `the_scenario` through the real graph and store, the agent's and the customer's models on `double`."""
    settings = replay_settings().model_copy(
        update={"openai_base_url": double.url, "openai_api_key": SecretStr(API_KEY), "openai_model": MODEL}
    )
    agent = open_agent_model("simulate", the_scenario.cassette, settings)
    customer = SimulatedCustomer(the_scenario, chat_model(double))
    try:
        return await run_scenario(the_scenario, directory, agent, customer, mode="simulate"), customer
    finally:
        await agent.aclose()


def customer_messages(double: OpenAIDouble, index: int = -1) -> list[Json]:
    return list(double.of("customer")[index].body["messages"])


async def test_the_opening_message_comes_from_the_model(double_for: Any) -> None:
    double = double_for(answers("hola quería cita para mañana"))
    customer = SimulatedCustomer(scenario(), chat_model(double))

    assert await customer.next_turn(()) == [Message(text="hola quería cita para mañana")]

    [request] = double.of("customer")
    system, opening = request.body["messages"]
    assert system == {"role": "system", "content": customer_prompt(scenario())}
    assert opening["role"] == "user" and "initial query" in opening["content"]  # openevals' opening instruction
    assert "tools" not in request.body and "parallel_tool_calls" not in request.body


async def test_the_conversation_reaches_the_model_with_the_roles_swapped(double_for: Any) -> None:
    double = double_for(answers("hola quería cita para mañana", "a las 5"))
    customer = SimulatedCustomer(scenario(), chat_model(double))
    await customer.next_turn(())

    said = await customer.next_turn(["Tengo hueco de 16:00 a 19:15.", "¿A qué hora te viene bien?"])

    assert said == [Message(text="a las 5")]
    # openevals plays the customer as the model's own turns and the assistant's replies as what it answers.
    assert [(m["role"], m["content"]) for m in customer_messages(double)[1:]] == [
        ("assistant", "hola quería cita para mañana"),
        ("user", "Tengo hueco de 16:00 a 19:15."),
        ("user", "¿A qué hora te viene bien?"),
    ]


async def test_the_stop_signal_ends_the_conversation_after_the_last_words(double_for: Any) -> None:
    double = double_for(answers("hola, cita mañana a las 5", f"genial, gracias!\n{STOP}"))
    customer = SimulatedCustomer(scenario(), chat_model(double))
    await customer.next_turn(())

    assert await customer.next_turn(["Reservado ✅"]) == [Message(text="genial, gracias!")]
    assert customer.ended == "stop signal"
    assert await customer.next_turn(["¡Hasta mañana!"]) is None
    assert len(double.of("customer")) == 2  # nothing more is asked once the customer stopped


async def test_a_bare_stop_signal_sends_nothing(double_for: Any) -> None:
    double = double_for(answers(STOP))
    customer = SimulatedCustomer(scenario(), chat_model(double))

    assert await customer.next_turn(()) is None
    assert customer.ended == "stop signal"


async def test_an_answer_without_the_signal_goes_on(double_for: Any) -> None:
    double = double_for(answers("hola", "¿tenéis hueco a las 5?"))
    customer = SimulatedCustomer(scenario(), chat_model(double))
    await customer.next_turn(())

    assert await customer.next_turn(["¡Hola! ¿En qué te ayudo?"]) == [Message(text="¿tenéis hueco a las 5?")]
    assert customer.ended is None


async def test_an_empty_line_is_double_texting(double_for: Any) -> None:
    double = double_for(answers("hola\n\nquería cita para mañana"))
    customer = SimulatedCustomer(scenario(), chat_model(double))

    assert await customer.next_turn(()) == [Message(text="hola"), Message(text="quería cita para mañana")]


def test_the_prompt_holds_persona_goal_facts_language_time_and_signal() -> None:
    prompt = customer_prompt(scenario(knows=["Her email is lucia@example.com.", "She prefers Marta."]))

    assert prompt.startswith(CUSTOMER_MARKER)
    assert PERSONA in prompt and "Book a haircut for tomorrow at 17:00" in prompt
    revealed_when_asked = prompt.split("reveal only when the assistant asks for it")[1].split("## Now")[0]
    assert "- Her email is lucia@example.com." in revealed_when_asked and "- She prefers Marta." in revealed_when_asked
    assert "Write in Spanish (as spoken in Spain) only" in prompt
    assert "Tuesday 24 November 2026, 11:05" in prompt
    assert f"then\n{STOP} on its own line" in prompt and "Never invent facts" in prompt


def test_an_english_customer_is_asked_for_english_and_has_no_facts_to_hide() -> None:
    prompt = customer_prompt(scenario(language="en", knows=[]))

    assert "Write in English only" in prompt and "Spanish" not in prompt
    assert "- Nothing beyond what you want." in prompt


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("vale", ("vale", False)),
        (STOP, ("", True)),
        (f"gracias!\n{STOP}", ("gracias!", True)),
        (f"  gracias! {STOP}  \n", ("gracias!", True)),
    ],
)
def test_split_stop(answer: str, expected: tuple[str, bool]) -> None:
    assert split_stop(answer) == expected


async def test_a_simulated_customer_books_through_the_real_graph(double_for: Any, tmp_path: Path) -> None:
    the_scenario = scenario(language="en", knows=[])
    lines = {PERSONA: ["Hi! Can I book a haircut for tomorrow afternoon?", "5pm please", "Yes"]}
    double = double_for(scripted_customer(lines))

    run, _ = await simulate(the_scenario, double, tmp_path / "case")

    assert run.error is None
    [booked] = run.customer_appointments()
    assert (booked.service, booked.status) == ("Corte y Peinado", "confirmed")
    assert booked.start_at.astimezone(run.timezone).strftime("%Y-%m-%d %H:%M") == "2026-11-25 17:00"
    assert [t.text for t in run.customer_turns] == [
        "Hi! Can I book a haircut for tomorrow afternoon?",
        "5pm please",
        "Yes",
    ]
    assert len(double.of("customer")) == 4  # three lines, then the stop signal after the booking was confirmed
    assert [c.name for c in run.tool_calls] == ["check_availability", "book_appointment"]
    assert run.model_calls == len(double.of("agent")) == 4


async def test_a_customer_who_never_stops_is_capped_at_max_turns(double_for: Any, tmp_path: Path) -> None:
    the_scenario = scenario(language="en", knows=[], max_turns=2)
    double = double_for(lambda body: text("hello?"))

    run, customer = await simulate(the_scenario, double, tmp_path / "case")

    assert run.error is None and customer.ended is None
    assert [t.text for t in run.customer_turns] == ["hello?", "hello?"]
    assert len(double.of("customer")) == 2
    assert run.customer_appointments() == []
