"""A worker killed during a Calendly write, then the customer's turn run again (issue 10, item 1), end to end.

The real graph, tools and store around a scripted model, with Calendly played by `BookingCalendly`: the customer's
"sí" runs the confirmed call, Calendly acts on it, and the process "dies" (`ProcessKilled`) before the answer is
read. The worker then runs the same turn again with the same message, as it does after a crash; the customer must
hear that it is done, with exactly one booking (or cancellation, or move) at Calendly and in the store. On SQLite and
PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from agent.api import IncomingText, TurnResult
from core.business import Business
from core.clock import FixedClock
from integrations.calendly.calendar import CalendlyCalendar
from integrations.calendly.client import CalendlyClient
from store import Database
from store.appointments import AppointmentRepository
from store.clients import ClientRepository
from tests.agent.conftest import CUSTOMER, CUSTOMER_EMAIL, CUSTOMER_NAME, Harness, madrid, make_harness
from tests.calendly.booking_double import BookingCalendly, ProcessKilled
from tests.calendly.conftest import BASE_URL, TEST_TOKEN, USER_URI, RecordedSleep
from tests.scripted_model import ScriptedChatModel, call, says, uses

# The customer's yes, as the worker reads it from the store on every run of the turn.
YES = [IncomingText(body="Sí", message_sid="SM00000000000000000000000000000002")]


@pytest.fixture
async def crashing(
    db: Database, business: Business, clock: FixedClock, model: ScriptedChatModel
) -> AsyncIterator[tuple[Harness, BookingCalendly]]:
    """The assistant on Calendly (the double), with María's name and e-mail on file."""
    calendly = BookingCalendly(now=clock.now())
    async with httpx.AsyncClient(transport=calendly.transport()) as http:
        client = CalendlyClient(BASE_URL, TEST_TOKEN, http=http, sleep=RecordedSleep(), clock=clock)
        calendar = CalendlyCalendar(client, AppointmentRepository(db), business, clock, USER_URI)
        await ClientRepository(db).update_profile(CUSTOMER, now=clock.now(), name=CUSTOMER_NAME, email=CUSTOMER_EMAIL)
        async for h in make_harness(db, business, clock, model, calendar):
            yield h, calendly


async def answer_yes(h: Harness) -> TurnResult:
    return await h.assistant.customer_turn(CUSTOMER, YES, profile_name="María")


async def last_result(h: Harness) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(str((await h.tool_results())[-1].content))
    return parsed


async def booked_earlier(h: Harness, calendly: BookingCalendly) -> str:
    """María's appointment on Thursday at 10:00, booked on Calendly before (event and invitee at the double)."""
    client = await h.clients.ensure(CUSTOMER, now=h.clock.now())
    start = madrid(2026, 11, 26, 10, 0)
    event, invitee = calendly.add_booking(start, CUSTOMER_EMAIL)
    appointment = await h.appointments.create(
        client_id=client.id,
        service="Corte y Peinado",
        start_at=start,
        end_at=start + timedelta(minutes=45),
        source="agent",
        calendar="calendly",
        now=h.clock.now(),
        external_id=event,
        external_invitee=invitee,
    )
    return appointment.id


async def test_killed_during_the_booking_call_the_rerun_tells_the_customer_booked(
    crashing: tuple[Harness, BookingCalendly],
) -> None:
    h, calendly = crashing
    h.model.extend(uses(call("book_appointment", service="Corte y Peinado", start_time="2026-11-26T10:00:00")))
    assert (await h.say("Quiero corte el jueves a las 10")).awaiting_confirmation
    calendly.die_after("POST", "/invitees")
    with pytest.raises(ProcessKilled):
        await answer_yes(h)
    assert len(calendly.active()) == 1 and await h.confirmed() == []

    h.model.extend(says("¡Reservado! Te esperamos el jueves a las 10:00."))
    done = await answer_yes(h)

    assert done.replies == ("¡Reservado! Te esperamos el jueves a las 10:00.",)
    [event] = calendly.active()
    assert len(calendly.sent("POST", "/invitees")) == 1
    [appointment] = await h.confirmed()
    assert appointment.external_id == event["uri"] and appointment.start_at == madrid(2026, 11, 26, 10, 0)
    result = await last_result(h)
    assert (result["ok"], result["status"], result["appointment_id"]) == (True, "booked", appointment.id)
    assert h.changed == [appointment]  # reminders follow the adopted booking
    h.model.assert_complete()


async def test_killed_during_the_cancellation_call_the_rerun_tells_the_customer_cancelled(
    crashing: tuple[Harness, BookingCalendly],
) -> None:
    h, calendly = crashing
    appointment_id = await booked_earlier(h, calendly)
    h.model.extend(uses(call("cancel_appointment", appointment_id=appointment_id)))
    assert (await h.say("Cancela mi cita del jueves")).awaiting_confirmation
    calendly.die_after("POST", "/cancellation")
    with pytest.raises(ProcessKilled):
        await answer_yes(h)

    h.model.extend(says("Cancelada."))
    done = await answer_yes(h)

    assert done.replies == ("Cancelada.",)
    assert calendly.active() == [] and len(calendly.sent("POST", "/cancellation")) == 1
    appointment = await h.appointments.get(appointment_id)
    assert appointment is not None and appointment.status == "cancelled"
    result = await last_result(h)
    assert (result["ok"], result["status"], result["appointment_id"]) == (True, "cancelled", appointment_id)
    assert [a.status for a in h.changed] == ["cancelled", "cancelled"]  # settled, then reported: reminders go
    h.model.assert_complete()


async def test_killed_during_the_reschedule_the_rerun_tells_the_customer_moved(
    crashing: tuple[Harness, BookingCalendly],
) -> None:
    h, calendly = crashing
    appointment_id = await booked_earlier(h, calendly)
    h.model.extend(
        uses(call("reschedule_appointment", appointment_id=appointment_id, new_start_time="2026-11-27T17:00:00"))
    )
    assert (await h.say("Pásala al viernes a las 17")).awaiting_confirmation
    calendly.die_after("POST", "/invitees")
    with pytest.raises(ProcessKilled):
        await answer_yes(h)

    h.model.extend(says("Movida al viernes a las 17:00."))
    done = await answer_yes(h)

    assert done.replies == ("Movida al viernes a las 17:00.",)
    [event] = calendly.active()  # the new time; the old event released
    assert len(calendly.sent("POST", "/invitees")) == 1
    [appointment] = await h.confirmed()
    assert appointment.id == appointment_id and appointment.external_id == event["uri"]
    assert appointment.start_at == madrid(2026, 11, 27, 17, 0)
    result = await last_result(h)
    assert (result["ok"], result["status"], result["time"]) == (True, "rescheduled", "17:00")
    h.model.assert_complete()


async def test_a_booking_whose_answer_was_lost_is_not_asked_again_as_a_new_one(
    crashing: tuple[Harness, BookingCalendly],
) -> None:
    """Calendly booked but the answer was lost and Calendly could not be asked either: the customer hears that it
    failed. Asked again, the earlier booking is found before the question, never refused as a taken slot."""
    h, calendly = crashing
    h.model.extend(uses(call("book_appointment", service="Corte y Peinado", start_time="2026-11-26T10:00:00")))
    await h.say("Quiero corte el jueves a las 10")
    calendly.lose_answer("POST", "/invitees")
    calendly.lookups_fail = True
    h.model.extend(says("No he podido confirmar la reserva."))
    await h.say("Sí")
    assert (await last_result(h))["error"] == "unavailable" and await h.confirmed() == []

    calendly.lookups_fail = False
    h.model.extend(
        uses(call("book_appointment", service="Corte y Peinado", start_time="2026-11-26T10:00:00")),
        says("Ya la tienes reservada."),
    )
    again = await h.say("Inténtalo otra vez")

    assert not again.awaiting_confirmation and again.replies == ("Ya la tienes reservada.",)
    [appointment] = await h.confirmed()
    refused = await last_result(h)
    assert (refused["error"], refused["appointment_id"]) == ("already_booked", appointment.id)
    assert len(calendly.sent("POST", "/invitees")) == 1 and len(calendly.active()) == 1
    h.model.assert_complete()
