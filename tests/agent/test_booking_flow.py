"""Booking, cancelling and moving through the real graph and tools with a scripted model.

Every scenario runs on the local calendar and on Calendly (`scenario` in conftest.py), on SQLite and PostgreSQL.
On Calendly the cassette tests/cassettes/calendly/agent_<test name without "test_">.yaml answers, and pins, every
request the tools make; its availability is the salon's opening hours, so the local expectations hold unchanged.
Where the calendars legitimately differ, the helpers below branch on `h.calendar.kind`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph._internal._constants import CONFIG_KEY_RUNTIME
from langgraph.runtime import Runtime

from agent.confirmation import confirm_payload
from agent.execution import ToolRunner
from store.appointments import slot_starts
from tests.agent.conftest import CUSTOMER, OTHER, Harness, book_directly, madrid
from tests.calendly.conftest import EVENT_URI
from tests.scripted_model import call, says, uses
from tools.context import TurnContext
from tools.registry import ALL_TOOLS

# The Calendly event of the other customer's appointment (never sent to Calendly: the refusal comes first).
# The event Calendly creates when an appointment is moved (agent_reschedule_own_appointment.yaml).
MOVED_EVENT_URI = "https://api.calendly.com/scheduled_events/KKKKKKKKKKKKKKKK"


def result_of(message: object) -> dict[str, object]:
    return json.loads(str(message.content))


def expand(ranges: list[str], step: int = 15) -> list[str]:
    """'09:30-10:00' -> ['09:30', '09:45', '10:00']."""
    times: list[str] = []
    for item in ranges:
        first, _, last = item.partition("-")
        current = datetime.strptime(first, "%H:%M")
        end = datetime.strptime(last or first, "%H:%M")
        while current <= end:
            times.append(current.strftime("%H:%M"))
            current += timedelta(minutes=step)
    return times


async def _assert_held_by_calendar(h: Harness, appointment_id: str, calendly_event: str) -> None:
    """The calendar holds the appointment: a seat for each of its three 15-minute slots on the local calendar;
    on Calendly, the scheduled event it mirrors (and no local seats)."""
    claims = await h.db.fetch_all(
        "SELECT slot_start FROM calendar_claims WHERE appointment_id = :id", {"id": appointment_id}
    )
    if h.calendar.kind == "local":
        assert len(claims) == 3
    else:
        appointment = await h.appointments.get(appointment_id)
        assert appointment is not None and appointment.calendar == "calendly"
        assert appointment.external_id == calendly_event and claims == []


async def _take_both_chairs_at_10_on_thursday(h: Harness) -> None:
    """Other customers take 10:00 on Thursday while María is being asked to confirm it."""
    if h.calendar.kind == "calendly":
        return  # booked on the Calendly page: the cassette's next availability answer no longer lists 10:00
    other = await h.clients.ensure(OTHER, now=h.clock.now())
    for _ in range(h.business.capacity):
        start, end = madrid(2026, 11, 26, 10, 0), madrid(2026, 11, 26, 11, 0)
        await h.appointments.create(
            client_id=other.id,
            service="Peinado",
            start_at=start,
            end_at=end,
            source="staff",
            calendar="local",
            now=h.clock.now(),
            claim_slots=slot_starts(start, end, 15),
            capacity=h.business.capacity,
        )


async def test_book_with_confirmation(scenario: Harness) -> None:
    h = scenario
    h.model.extend(
        uses(call("check_availability", service="corte", date_from="2026-11-26")),
        says("El jueves tengo libre a las 9:30, 10:00 y 10:30. ¿Cuál prefieres?"),
    )
    first = await h.say("Hola, ¿tenéis hueco el jueves para corte?")
    assert first.replies == ("El jueves tengo libre a las 9:30, 10:00 y 10:30. ¿Cuál prefieres?",)
    availability = result_of((await h.tool_results())[0])
    assert availability["ok"] is True and availability["service"] == "Corte y Peinado"
    thursday = availability["days"][0]  # type: ignore[index]
    assert thursday["date"] == "2026-11-26"
    assert thursday["start_times"] == ["09:30-13:15", "16:00-19:15"]
    assert "10:00" in expand(thursday["start_times"])

    h.model.extend(uses(call("book_appointment", service="Corte y Peinado", start_time="2026-11-26T10:00:00")))
    question = await h.say("a las 10")
    assert question.awaiting_confirmation
    text = question.replies[0]
    assert "Corte y Peinado" in text and "jueves 26 de noviembre" in text and "10:00" in text and "25" in text
    assert await h.confirmed() == []  # nothing booked before the yes

    h.model.extend(says("¡Listo! Te esperamos el jueves a las 10:00."))
    done = await h.say("Sí")
    assert done.replies == ("¡Listo! Te esperamos el jueves a las 10:00.",)
    [appointment] = await h.confirmed()
    assert appointment.service == "Corte y Peinado"
    assert appointment.start_at == datetime(2026, 11, 26, 9, 0, tzinfo=UTC)  # 10:00 in Madrid (CET)
    assert appointment.end_at - appointment.start_at == timedelta(minutes=45)
    client = await h.clients.get(CUSTOMER)
    assert client is not None and appointment.client_id == client.id and appointment.source == "agent"
    await _assert_held_by_calendar(h, appointment.id, EVENT_URI)
    assert h.changed == [appointment]
    state = await h.state()
    assert state.get("pending") is None
    booked = result_of((await h.tool_results())[-1])
    assert booked["status"] == "booked" and booked["appointment_id"] == appointment.id
    h.model.assert_complete()


async def test_slot_taken_between_offer_and_confirmation(scenario: Harness) -> None:
    h = scenario
    h.model.extend(uses(call("book_appointment", service="corte", start_time="2026-11-26T10:00:00")))
    assert (await h.say("Quiero corte el jueves a las 10")).awaiting_confirmation
    await _take_both_chairs_at_10_on_thursday(h)
    h.model.extend(says("Vaya, ese hueco se acaba de ocupar. ¿Te va bien a las 11:00?"))
    reply = await h.say("sí")
    assert "ocupar" in reply.replies[0]
    mine = await h.db.fetch_value(
        "SELECT COUNT(*) AS n FROM appointments a JOIN clients c ON c.id = a.client_id WHERE c.wa_id = :wa",
        {"wa": CUSTOMER},
    )
    assert mine == 0
    refusal = result_of((await h.tool_results())[-1])
    assert refusal["ok"] is False and refusal["error"] == "slot_taken"
    assert refusal["alternatives"], "alternatives are offered"
    # The model saw the refusal before answering.
    assert "slot_taken" in str(h.model.calls[-1][-2].content)
    h.model.assert_complete()


@pytest.mark.parametrize("calendar_kind", ["calendly"])
async def test_slot_taken_when_the_booking_is_sent(scenario: Harness) -> None:
    # Calendly only: the time goes in the instant between the last availability check and POST /invitees, which
    # Calendly refuses (400, start_time "is no longer available"). The cassette ends with the availability request
    # the alternatives need once booking.py offers them.
    h = scenario
    h.model.extend(uses(call("book_appointment", service="corte", start_time="2026-11-26T10:00:00")))
    assert (await h.say("Quiero corte el jueves a las 10")).awaiting_confirmation
    h.model.extend(says("Vaya, ese hueco se acaba de ocupar. ¿Te va bien a las 11:00?"))
    reply = await h.say("sí")
    assert "ocupar" in reply.replies[0]
    assert await h.confirmed() == []
    refusal = result_of((await h.tool_results())[-1])
    assert refusal["ok"] is False and refusal["error"] == "slot_taken"
    assert "slot_taken" in str(h.model.calls[-1][-2].content)
    h.model.assert_complete()
    assert refusal.get("alternatives"), "alternatives are offered"


async def test_customer_says_no_books_nothing(scenario: Harness) -> None:
    h = scenario
    h.model.extend(uses(call("book_appointment", service="Tinte", start_time="2026-11-27T17:00:00")))
    assert (await h.say("tinte el viernes a las 5 de la tarde")).awaiting_confirmation
    h.model.extend(says("Sin problema, ¿a qué hora te vendría mejor?"))
    reply = await h.say("no, mejor otro día")
    assert reply.replies == ("Sin problema, ¿a qué hora te vendría mejor?",)
    assert await h.confirmed() == []
    refusal = result_of((await h.tool_results())[-1])
    assert refusal["error"] == "not_confirmed" and refusal["customer_reply"] == "no, mejor otro día"
    assert (await h.state()).get("pending") is None
    h.model.assert_complete()


async def test_quick_reply_button_confirms(scenario: Harness) -> None:
    h = scenario
    h.model.extend(uses(call("book_appointment", service="Barba", start_time="2026-11-25T10:00:00")), says("Hecho."))
    asked = await h.say("barba mañana a las 10")
    assert asked.confirmation_id is not None
    await h.say(button=confirm_payload(asked.confirmation_id))
    assert [a.service for a in await h.confirmed()] == ["Barba"]


async def test_cancel_own_appointment(scenario: Harness) -> None:
    h = scenario
    appointment_id = await book_directly(h, CUSTOMER, madrid(2026, 11, 27, 10, 0))
    h.model.extend(
        uses(call("lookup_client")),
        uses(call("cancel_appointment", appointment_id=appointment_id, reason="viaje")),
    )
    question = await h.say("Quiero cancelar mi cita del viernes")
    assert question.awaiting_confirmation and "viernes 27 de noviembre" in question.replies[0]
    profile = result_of((await h.tool_results())[0])
    assert [a["appointment_id"] for a in profile["upcoming_appointments"]] == [appointment_id]  # type: ignore[union-attr]
    h.model.extend(says("Cancelada. ¡Hasta pronto!"))
    await h.say("sí, confirmo")
    cancelled = await h.appointments.get(appointment_id)
    assert cancelled is not None and cancelled.status == "cancelled" and cancelled.cancel_reason == "viaje"
    assert await h.db.fetch_value("SELECT COUNT(*) AS n FROM calendar_claims") == 0
    h.model.assert_complete()


async def test_cannot_cancel_another_customers_appointment(scenario: Harness) -> None:
    h = scenario
    others = await book_directly(h, OTHER, madrid(2026, 11, 27, 10, 0))
    h.model.extend(
        uses(call("cancel_appointment", appointment_id=others)),
        says("No encuentro ninguna cita tuya con ese código."),
    )
    reply = await h.say(f"cancela la cita {others}")
    assert not reply.awaiting_confirmation  # no question was ever asked
    assert reply.replies == ("No encuentro ninguna cita tuya con ese código.",)
    still = await h.appointments.get(others)
    assert still is not None and still.status == "confirmed"
    refusal = result_of((await h.tool_results())[-1])
    assert refusal["error"] == "not_found"
    # Nothing about the other customer's booking reached this customer's model context.
    assert "Corte y Peinado" not in str(refusal) and "27" not in str(refusal["message"]).replace(others, "")
    h.model.assert_complete()


async def test_reschedule_own_appointment(scenario: Harness) -> None:
    h = scenario
    appointment_id = await book_directly(h, CUSTOMER, madrid(2026, 11, 27, 10, 0))
    h.model.extend(
        uses(call("reschedule_appointment", appointment_id=appointment_id, new_start_time="2026-11-28T11:00:00"))
    )
    question = await h.say("¿Puedo pasar mi cita al sábado a las 11?")
    assert "sábado 28 de noviembre" in question.replies[0] and "viernes 27 de noviembre" in question.replies[0]
    h.model.extend(says("Cambiada al sábado a las 11:00."))
    await h.say("vale")
    moved = await h.appointments.get(appointment_id)
    assert moved is not None and moved.status == "confirmed"
    assert moved.start_at == madrid(2026, 11, 28, 11, 0)
    await _assert_held_by_calendar(h, appointment_id, MOVED_EVENT_URI)
    assert [a.id for a in h.changed] == [appointment_id]
    h.model.assert_complete()


async def test_closed_day_and_past_time_are_refused_with_alternatives(scenario: Harness) -> None:
    h = scenario
    h.model.extend(
        uses(call("book_appointment", service="corte", start_time="2026-11-30T10:00:00")),  # Monday: closed
        uses(call("book_appointment", service="corte", start_time="2026-11-24T10:00:00")),  # this morning
        says("El lunes cerramos; ¿te va el martes?"),
    )
    reply = await h.say("corte el lunes a las 10")
    assert not reply.awaiting_confirmation
    closed, past = [result_of(m) for m in await h.tool_results()]
    assert closed["error"] == "closed" and closed["alternatives"]
    assert past["error"] == "past_time" and past["alternatives"]
    assert await h.confirmed() == []


async def test_bad_tool_arguments_go_back_to_the_model(scenario: Harness) -> None:
    h = scenario
    h.model.extend(
        uses(call("book_appointment", service="corte", start_time="mañana a las 10")),
        says("¿Me dices la fecha exacta?"),
    )
    reply = await h.say("mañana a las 10")
    assert reply.replies == ("¿Me dices la fecha exacta?",)
    error = result_of((await h.tool_results())[-1])
    assert error["error"] == "invalid_arguments" and "start_time" in str(error["message"])
    assert await h.confirmed() == []


async def test_unknown_service_lists_the_real_ones(scenario: Harness) -> None:
    h = scenario
    h.model.extend(
        uses(call("check_availability", service="manicura", date_from="2026-11-26")), says("No hacemos manicura.")
    )
    await h.say("¿hacéis manicura?")
    refusal = result_of((await h.tool_results())[-1])
    assert refusal["error"] == "unknown_service" and "Corte y Peinado" in refusal["services"]  # type: ignore[operator]


@pytest.mark.parametrize("calendar_kind", ["local", "calendly"])
async def test_confirmed_action_is_idempotent(scenario: Harness) -> None:
    h = scenario
    h.model.extend(uses(call("book_appointment", service="corte", start_time="2026-11-26T10:00:00")), says("Hecho"))
    await h.say("corte el jueves a las 10")
    state = await h.state()
    pending_call = state["pending"]["tool_call"]
    await h.say("sí")
    # Replaying the same confirmed call (e.g. the node re-run after a crash) finds the booking already made.
    runner = ToolRunner(ALL_TOOLS, h.assistant.services)
    config: RunnableConfig = {"configurable": {CONFIG_KEY_RUNTIME: Runtime(context=TurnContext(wa_id=CUSTOMER))}}
    [again] = await runner.run([pending_call], config)
    assert json.loads(str(again.content))["appointment_id"] == (await h.confirmed())[0].id
    assert len(await h.confirmed()) == 1
