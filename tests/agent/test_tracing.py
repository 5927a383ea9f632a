"""The tracer around the real graph, sending through the real LangSmith client to a local LangSmith double.

The end-to-end view (webhooks, worker, feedback) is tests/server/test_langsmith_traces.py; here each property of a
trace is pinned where it is made: names, metadata, failures, the pause, masking on and off, tracing off.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from agent.api import IncomingText
from agent.assistant import Assistant
from agent.tracing import TraceLabels, TurnTracer
from agent.turn_outcome import outcome_of, repeats_earlier
from core.settings import Settings
from tests.agent.conftest import CUSTOMER, Harness
from tests.langsmith_double import FAKE_API_KEY, Json, LangSmithDouble
from tests.scripted_model import call, says, uses
from tools.results import ok, problem

KEY = b"k" * 32
DIGITS = CUSTOMER.removeprefix("whatsapp:+")


@pytest.fixture
def double() -> Iterator[LangSmithDouble]:
    with LangSmithDouble() as running:
        yield running


def tracer_for(double: LangSmithDouble, *, mask: bool = True, tracing: bool = True) -> TurnTracer:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        langsmith_tracing=tracing,
        langsmith_api_key=FAKE_API_KEY,  # type: ignore[arg-type]
        langsmith_endpoint=double.url,  # type: ignore[arg-type]
        langsmith_mask_pii=mask,
        langsmith_hash_key="x7Rq2-Lm9vT4bN8cK1pZ6wY3sD5fG0hJ",  # type: ignore[arg-type]
    )
    return TurnTracer.from_settings(settings, labels=TraceLabels(model="gpt-test", prompt_version="p_0123"))


def traced(h: Harness, tracer: TurnTracer) -> Assistant:
    return Assistant(h.graph, h.assistant.services, tracer=tracer)


def ended_roots(double: LangSmithDouble, count: int) -> list[Json]:
    def ended() -> list[Json] | None:
        found = [r for r in double.roots() if r.get("end_time")]
        return found if len(found) >= count else None

    return double.wait_for(ended, what=f"{count} ended root runs")


def metadata(run: Json) -> dict[str, Any]:
    return dict((run.get("extra") or {}).get("metadata") or {})


async def test_a_system_turn_is_a_calendar_event_with_its_event_id(harness: Harness, double: LangSmithDouble) -> None:
    tracer = tracer_for(double)
    harness.model.extend(uses(call("send_whatsapp", message="Tu cita ha cambiado.")), says("Avisada."))
    result = await traced(harness, tracer).system_turn(CUSTOMER, "Calendly: cita cancelada.", event_id="41")
    tracer.flush()
    [root] = ended_roots(double, 1)
    assert root["name"] == "Calendar event" and root["id"] == result.run_id
    assert metadata(root)["turn_kind"] == "system" and metadata(root)["event_id"] == "41"
    assert metadata(root)["outcome"] == "notified" and result.outcome == "notified"
    assert metadata(root)["model"] == "gpt-test" and metadata(root)["prompt_version"] == "p_0123"
    assert "turn:system" in root["tags"]
    assert any(run["name"] == "send_whatsapp" for run in double.runs.values())


async def test_a_failed_turn_is_an_errored_root_with_outcome_failed(harness: Harness, double: LangSmithDouble) -> None:
    tracer = tracer_for(double)

    def down(messages: object) -> AIMessage:
        raise RuntimeError("APIConnectionError: the model provider is down")

    harness.model.extend(down)
    with pytest.raises(RuntimeError):
        await traced(harness, tracer).customer_turn(CUSTOMER, [IncomingText(body="hola")], run_id=_RUN_ID)
    tracer.flush()
    [root] = ended_roots(double, 1)
    assert root["id"] == _RUN_ID  # the id the caller chose, so it can store the failed attempt
    assert root["error"] and "APIConnectionError" in root["error"]
    assert metadata(root)["outcome"] == "failed"


_RUN_ID = "5d6c2a8e-1f0b-4c3d-9e7a-2b4c6d8e0f12"


async def test_masking_is_what_keeps_the_number_email_and_name_out(harness: Harness, double: LangSmithDouble) -> None:
    text = "soy Lucía Pardo, lucia.pardo@example.com, +34 611 22 33 44"
    harness.model.extend(says("¡Hola Lucía! Apuntado: lucia.pardo@example.com"))
    await traced(harness, tracer_for(double)).customer_turn(
        CUSTOMER, [IncomingText(body=text)], profile_name="Lucía Pardo"
    )
    harness.model.extend(says("De nuevo, Lucía."))
    unmasked = tracer_for(double, mask=False)
    await traced(harness, unmasked).customer_turn(CUSTOMER, [IncomingText(body=text)], profile_name="Lucía Pardo")
    unmasked.flush()
    masked_root, plain_root = sorted(ended_roots(double, 2), key=lambda r: str(r["start_time"]))
    masked_runs = [r for r in double.runs.values() if r["trace_id"] == masked_root["id"]]
    plain_runs = [r for r in double.runs.values() if r["trace_id"] == plain_root["id"]]
    for secret in ("lucia.pardo@example.com", "Lucía", "Pardo", "611 22 33 44", DIGITS):
        assert secret not in str(masked_runs), secret
    assert "lucia.pardo@example.com" in str(plain_runs) and "Lucía" in str(plain_runs)  # the check can fail
    # Threads never use the number, masked or not: the hash is keyed and stable.
    assert metadata(masked_root)["thread_id"] == metadata(plain_root)["thread_id"]
    assert metadata(masked_root)["thread_id"].startswith("cust_")


async def test_tracing_off_sends_nothing_and_names_no_run(harness: Harness, double: LangSmithDouble) -> None:
    tracer = tracer_for(double, tracing=False)
    assert not tracer.enabled
    harness.model.extend(says("¡Hola!"))
    result = await traced(harness, tracer).customer_turn(CUSTOMER, [IncomingText(body="hola")])
    tracer.flush()
    assert result.run_id is None and result.outcome == "answered"
    assert not [r for r in double.requests if r.path != "/info"]


def test_a_reminder_is_a_root_run_of_its_own(double: LangSmithDouble) -> None:
    tracer = tracer_for(double)
    run_id = tracer.event(
        CUSTOMER, "reminder", inputs={"appointment_id": "apt_1"}, outputs={"queued": "Recuerda tu cita"}
    )
    tracer.flush()
    [root] = ended_roots(double, 1)
    assert root["name"] == "Reminder" and root["id"] == run_id
    assert metadata(root)["customer"] == tracer.customer_id(CUSTOMER)


# --- what a turn did, read from the messages it added ---------------------------------------------------------


def _result(name: str, content: str) -> ToolMessage:
    return ToolMessage(content=content, tool_call_id="call_1", name=name)


@pytest.mark.parametrize(
    ("added", "flags", "expected"),
    [
        ([_result("book_appointment", ok(status="booked", appointment_id="apt_1"))], {}, ("booked", ("apt_1",))),
        (
            [
                _result("reschedule_appointment", ok(status="rescheduled", appointment_id="apt_2")),
                _result("book_appointment", ok(status="booked", appointment_id="apt_3")),
            ],
            {},
            ("rescheduled", ("apt_2", "apt_3")),
        ),
        (
            [_result("cancel_appointment", ok(status="cancelled", appointment_id="apt_4"))],
            {},
            ("cancelled", ("apt_4",)),
        ),
        ([_result("handoff_to_staff", ok(status="handed_off"))], {}, ("handed_off", ())),
        ([], {"asked_to_confirm": True}, ("asked_to_confirm", ())),
        ([], {"cut_short": True}, ("cut_short", ())),
        ([_result("send_whatsapp", ok(status="queued"))], {"system": True}, ("notified", ())),
        ([], {"system": True}, ("no_reply", ())),
        ([_result("book_appointment", problem("slot_taken", "taken"))], {}, ("answered", ())),
    ],
)
def test_outcomes(added: list[ToolMessage], flags: dict[str, bool], expected: tuple[str, tuple[str, ...]]) -> None:
    args = {"system": False, "asked_to_confirm": False, "cut_short": False, "replied": True, **flags}
    outcome = outcome_of(added, **args)
    assert (outcome.outcome, outcome.appointment_ids) == expected


def test_a_no_to_the_question_is_a_rejected_confirmation_but_a_withdrawal_is_not() -> None:
    rejected = problem("not_confirmed", "no", reason="not_confirmed", customer_reply="mejor no")
    withdrawn = problem("not_confirmed", "withdrawn", reason="withdrawn")
    flags = {"system": False, "asked_to_confirm": False, "cut_short": False, "replied": True}
    assert outcome_of([_result("book_appointment", rejected)], **flags).rejected_confirmation
    assert not outcome_of([_result("book_appointment", withdrawn)], **flags).rejected_confirmation


def test_repeats_are_near_identical_sentences_not_short_words() -> None:
    earlier = [HumanMessage("¿Tenéis hueco mañana por la tarde?"), AIMessage("Sí, a las 17:00."), HumanMessage("sí")]
    assert repeats_earlier(["tenéis hueco mañana por la tarde??"], earlier)
    assert repeats_earlier(["Teneis hueco manana por la tarde"], earlier)  # accents and case do not matter
    assert not repeats_earlier(["sí"], earlier)  # "sí" twice is not a complaint
    assert not repeats_earlier(["¿Y el sábado por la mañana?"], earlier)
