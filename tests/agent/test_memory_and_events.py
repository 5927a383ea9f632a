"""Time resolution across DST, memory across restarts, a bounded model window, and injected system turns."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time

import pytest
from langchain_core.messages import HumanMessage, SystemMessage, ToolMessage

from core.business import Business, DayHours, TimeRange
from core.clock import FixedClock
from store import Database, open_database
from tests.agent.conftest import CUSTOMER, CalendarKind, Harness, madrid, make_harness, make_harness_on, replaying
from tests.scripted_model import ScriptedChatModel, call, says, uses


def _open_on_sundays(business: Business) -> Business:
    hours = dict(business.opening_hours)
    hours["sunday"] = DayHours(ranges=(TimeRange(start=time(9, 0), end=time(14, 0)),))
    return business.model_copy(update={"opening_hours": hours})


@pytest.mark.parametrize(
    ("saturday_night", "tomorrow", "expected_utc", "cassette"),
    [
        # Clocks go back at 03:00 on Sunday 25 October 2026: Saturday is UTC+2, Sunday 10:00 is UTC+1.
        (madrid(2026, 10, 24, 23, 30), "2026-10-25", datetime(2026, 10, 25, 9, 0, tzinfo=UTC), "agent_dst_october"),
        # Clocks go forward at 02:00 on Sunday 28 March 2027: Saturday is UTC+1, Sunday 10:00 is UTC+2.
        (madrid(2027, 3, 27, 23, 30), "2027-03-28", datetime(2027, 3, 28, 8, 0, tzinfo=UTC), "agent_dst_march"),
    ],
)
async def test_manana_a_las_10_on_saturday_night_across_dst(
    calendar_kind: CalendarKind,
    db: Database,
    business: Business,
    saturday_night: datetime,
    tomorrow: str,
    expected_utc: datetime,
    cassette: str,
) -> None:
    # On Calendly the cassette pins the UTC bounds of the Sunday asked about and the booked start in UTC.
    model = ScriptedChatModel(script=[])
    clock = FixedClock(saturday_night)
    with replaying(calendar_kind, cassette):
        async for h in make_harness_on(calendar_kind, db, _open_on_sundays(business), clock, model):
            model.extend(
                uses(call("check_availability", service="corte", date_from=tomorrow)),
                uses(call("book_appointment", service="corte", start_time=f"{tomorrow}T10:00:00")),
            )
            await h.say("¿Tenéis hueco mañana a las 10 para corte?")
            # The model was told, in local time, which date "mañana" is.
            context = str(model.calls[0][1].content)
            sunday = datetime.fromisoformat(tomorrow)
            assert f"- mañana: domingo {sunday.day} de " in context and f"({tomorrow})" in context
            assert f"Fecha y hora actuales: sábado {saturday_night.day}" in context
            availability = json.loads(str((await h.tool_results())[0].content))
            assert availability["days"][0]["date"] == tomorrow
            assert availability["days"][0]["start_times"][0] == "09:00-13:15"
            model.extend(says("¡Reservado!"))
            await h.say("sí")
            [appointment] = await h.confirmed()
            assert appointment.start_at == expected_utc
            assert appointment.start_at.astimezone(business.tz).hour == 10


async def test_memory_persists_across_a_process_restart(database_url: str, db: Database, business: Business) -> None:
    clock = FixedClock(madrid(2026, 11, 24, 22, 0))
    first_model = ScriptedChatModel(script=[says("¡Hola María! ¿En qué te ayudo?")])
    async for h in make_harness(db, business, clock, first_model):
        await h.say("Hola, soy María, prefiero a Lucía como peluquera")
    await db.close()

    # A new process: new connections, new checkpointer, new graph.
    reopened = open_database(database_url)
    try:
        second_model = ScriptedChatModel(script=[says("Claro, con Lucía.")])
        async for h in make_harness(reopened, business, clock, second_model):
            await h.say("¿Te acuerdas de con quién prefiero?")
            seen = [m.content for m in second_model.calls[0] if isinstance(m, HumanMessage)]
            assert seen == ["Hola, soy María, prefiero a Lucía como peluquera", "¿Te acuerdas de con quién prefiero?"]
            state = await h.state()
            assert [m.content for m in state["messages"] if isinstance(m, HumanMessage)] == seen
    finally:
        await reopened.close()


def _input_chars(messages: list[object]) -> int:
    return sum(len(str(getattr(m, "content", ""))) + len(json.dumps(getattr(m, "tool_calls", []))) for m in messages)


async def test_model_input_stays_flat_over_sixty_turns(harness: Harness) -> None:
    h = harness
    for turn in range(60):
        h.model.extend(
            uses(call("check_availability", service="corte", date_from="2026-11-26")),
            says(f"Respuesta número {turn}: el jueves hay huecos por la mañana y por la tarde."),
        )
        await h.say(f"Mensaje {turn}: ¿qué huecos hay el jueves para corte?")
    sizes = [_input_chars(c) for c in h.model.calls]
    after_6, after_60 = sizes[6 * 2 - 2], sizes[60 * 2 - 2]  # the first model call of turns 6 and 60
    assert after_60 <= 1.3 * after_6, (after_6, after_60)
    state = await h.state()
    assert sum(isinstance(m, HumanMessage) for m in state["messages"]) == 20  # the checkpoint is bounded too
    checkpoints = await h.db.fetch_value("SELECT COUNT(*) AS n FROM checkpoints WHERE thread_id = :t", {"t": CUSTOMER})
    assert checkpoints == 1  # old checkpoints pruned
    h.model.assert_complete()


async def test_a_burst_longer_than_the_window_reaches_the_model_whole(harness: Harness) -> None:
    # E.g. a customer's messages drained from the webhook spool after a database outage: one turn, many messages.
    h = harness
    for turn in range(5):
        h.model.extend(says(f"Respuesta {turn}."))
        await h.say(f"Mensaje {turn}")
    burst = [f"Parte {n} de mi pregunta" for n in range(12)]
    h.model.extend(says("Entendido."))
    await h.say(*burst)
    seen = [str(m.content) for m in h.model.calls[-1] if isinstance(m, HumanMessage)]
    assert all(any(part in text for text in seen) for part in burst), seen
    # The window still bounds history: the oldest earlier turns are out of view.
    assert not any("Mensaje 0" in text for text in seen)
    h.model.assert_complete()


CANCELLED_ON_CALENDLY = (
    "Cita cancelada desde Calendly por el cliente: Corte y Peinado, viernes 27 de noviembre a las 10:00. "
    "Motivo: No puedo ir."
)


async def test_injected_cancellation_sends_exactly_one_whatsapp_when_the_model_does(harness: Harness) -> None:
    h = harness
    h.model.extend(
        uses(call("send_whatsapp", message="Hola María, hemos registrado la cancelación de tu cita del viernes.")),
        says("Cliente avisado."),
    )
    result = await h.assistant.system_turn(CUSTOMER, CANCELLED_ON_CALENDLY)
    assert result.replies == ()  # the final text is never sent
    assert h.sender.sent == [
        (CUSTOMER, "Hola María, hemos registrado la cancelación de tu cita del viernes.", "system")
    ]
    event = h.model.calls[0][-1]
    assert isinstance(event, SystemMessage) and "Calendly" in str(event.content)
    assert "EVENTO DEL SISTEMA" in str(h.model.calls[0][1].content)
    h.model.assert_complete()


async def test_injected_event_sends_nothing_when_the_model_does_not(harness: Harness) -> None:
    h = harness
    h.model.extend(says("El cliente ya lo sabe; no hace falta avisar."))
    result = await h.assistant.system_turn(CUSTOMER, CANCELLED_ON_CALENDLY)
    assert result.replies == () and h.sender.sent == []
    h.model.assert_complete()


async def test_event_while_awaiting_confirmation_keeps_the_thread_consistent(harness: Harness) -> None:
    h = harness
    h.model.extend(uses(call("book_appointment", service="corte", start_time="2026-11-26T10:00:00")))
    assert (await h.say("corte el jueves a las 10")).awaiting_confirmation
    h.model.extend(says("Nada que enviar."))
    await h.assistant.system_turn(CUSTOMER, "Recordatorio: revisa la agenda.")
    state = await h.state()
    assert state.get("pending") is None
    # Every tool call in the thread has its answer, so the next model request is valid.
    calls = {c["id"] for m in state["messages"] for c in getattr(m, "tool_calls", [])}
    answers = {m.tool_call_id for m in state["messages"] if isinstance(m, ToolMessage)}
    assert calls == answers
    # The customer's late "sí" is a normal message now: the model asks again, nothing is booked silently.
    h.model.extend(uses(call("book_appointment", service="corte", start_time="2026-11-26T10:00:00")))
    again = await h.say("sí")
    assert again.awaiting_confirmation and await h.confirmed() == []
    h.model.extend(says("¡Reservado!"))
    await h.say("sí")
    assert len(await h.confirmed()) == 1
    h.model.assert_complete()


async def test_prefix_is_identical_across_turns_and_customers(harness: Harness) -> None:
    h = harness
    h.model.extend(says("Hola"), says("Hello"))
    await h.say("hola")
    await h.say("hi, I want a haircut", wa_id="whatsapp:+447700900123")
    first, second = h.model.calls
    assert first[0].content == second[0].content and isinstance(first[0], SystemMessage)
    assert first[1].content != second[1].content  # the dynamic part differs
    english = await h.clients.get("whatsapp:+447700900123")
    assert english is not None and english.language == "en"


async def test_client_details_are_remembered_and_shown_next_time(harness: Harness) -> None:
    h = harness
    h.model.extend(
        uses(call("remember_client_details", name="María López", preference="prefiere a Lucía")),
        says("¡Apuntado, María!"),
        says("Hola de nuevo, María."),
    )
    await h.say("Soy María López y siempre me corta Lucía")
    client = await h.clients.get(CUSTOMER)
    assert client is not None and client.name == "María López"
    assert client.preferences == {"notes": ["prefiere a Lucía"]}
    await h.say("hola otra vez")
    context = str(h.model.calls[-1][1].content)
    assert "María López" in context and "prefiere a Lucía" in context
