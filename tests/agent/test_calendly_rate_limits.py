"""A Calendly 429 inside a customer's turn, through the real graph and tools with a scripted model.

A long reset comes back to the model at once as the 'rate_limited' result ("nothing was done; tell the customer to
write again shortly"), with nothing booked or cancelled and the request sent once; a short one is waited out and
the action goes through. Calendly is the local double of tests/calendly/double.py; the client's sleep records each
wait instead of waiting, so "at once" means no wait was asked for.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from agent.assistant import thread_config
from booking.refusal import CALENDAR_BUSY
from core.business import Business
from core.clock import FixedClock
from integrations.calendly.calendar import CalendlyCalendar
from integrations.calendly.client import CalendlyClient
from store import Database
from store.appointments import AppointmentRepository
from store.clients import ClientRepository
from tests.agent.conftest import CUSTOMER, CUSTOMER_EMAIL, CUSTOMER_NAME, Harness, book_directly, madrid, make_harness
from tests.calendly.conftest import BASE_URL, EVENT_URI, TEST_TOKEN, USER_URI, RecordedSleep
from tests.calendly.double import CalendlyDouble, request_json
from tests.scripted_model import ScriptedChatModel, call, says, uses

BUSY_REPLY = "Ahora mismo el sistema de reservas está saturado. Escríbeme en un minuto y lo intentamos de nuevo."
CANCELLATION_PATH = "/scheduled_events/CCCCCCCCCCCCCCCC/cancellation"


@pytest.fixture
def calendly() -> CalendlyDouble:
    """Calendly offering Thursday 26 November at 10:00 and 11:00 (Madrid)."""
    return CalendlyDouble(
        available=[datetime(2026, 11, 26, 9, 0, tzinfo=UTC), datetime(2026, 11, 26, 10, 0, tzinfo=UTC)]
    )


@pytest.fixture
def sleep() -> RecordedSleep:
    return RecordedSleep()


@pytest.fixture
async def h(
    db: Database,
    business: Business,
    clock: FixedClock,
    model: ScriptedChatModel,
    calendly: CalendlyDouble,
    sleep: RecordedSleep,
) -> AsyncIterator[Harness]:
    """The assistant on Calendly (the double), with the client's production rate-limit defaults."""
    async with calendly.http() as http:
        client = CalendlyClient(BASE_URL, TEST_TOKEN, http=http, sleep=sleep, clock=clock)
        calendar = CalendlyCalendar(client, AppointmentRepository(db), business, clock, USER_URI)
        await ClientRepository(db).update_profile(CUSTOMER, now=clock.now(), name=CUSTOMER_NAME, email=CUSTOMER_EMAIL)
        async for harness in make_harness(db, business, clock, model, calendar):
            yield harness


async def _last_result(h: Harness) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(str((await h.tool_results())[-1].content))
    return parsed


async def _nothing_pending(h: Harness) -> None:
    snapshot = await h.graph.aget_state(thread_config(CUSTOMER))
    assert snapshot.values.get("pending") is None and not snapshot.interrupts and not snapshot.next


async def _asked_to_book(h: Harness) -> None:
    h.model.extend(uses(call("book_appointment", service="corte", start_time="2026-11-26T10:00:00")))
    assert (await h.say("Quiero corte el jueves a las 10")).awaiting_confirmation


async def test_a_long_rate_limit_on_the_booking_answers_try_again_shortly_at_once(
    h: Harness, calendly: CalendlyDouble, sleep: RecordedSleep
) -> None:
    await _asked_to_book(h)
    calendly.rate_limit("POST", "/invitees", 60)
    h.model.extend(says(BUSY_REPLY))

    reply = await h.say("sí")

    assert reply.replies == (BUSY_REPLY,)
    assert sleep.waits == []  # the 60 s reset was not waited for
    assert len(calendly.sent("POST", "/invitees")) == 1  # the booking was sent once, and not again
    assert await h.confirmed() == []
    result = await _last_result(h)
    assert result["ok"] is False and result["error"] == CALENDAR_BUSY
    assert result["retry_after_seconds"] == 60.0
    assert "nothing was booked" in result["message"] and "write again in a minute" in result["message"]
    assert "Do not call the tool again" in result["message"]
    # The model read the result before answering, and nothing waits for another yes.
    assert any(f'"error": "{CALENDAR_BUSY}"' in str(m.content) for m in h.model.calls[-1])
    await _nothing_pending(h)
    h.model.assert_complete()


async def test_a_short_rate_limit_on_the_booking_is_waited_out_and_books_once(
    h: Harness, calendly: CalendlyDouble, sleep: RecordedSleep
) -> None:
    await _asked_to_book(h)
    calendly.rate_limit("POST", "/invitees", 1)
    h.model.extend(says("¡Hecho! Te espero el jueves a las 10:00."))

    await h.say("sí")

    posts = calendly.sent("POST", "/invitees")
    assert sleep.waits == [1.0]
    assert len(posts) == 2 and request_json(posts[0]) == request_json(posts[1])
    [booked] = await h.confirmed()
    assert booked.start_at == madrid(2026, 11, 26, 10, 0)
    assert booked.external_id == EVENT_URI
    result = await _last_result(h)
    assert result["ok"] is True and result["status"] == "booked"
    h.model.assert_complete()


async def test_a_long_rate_limit_while_checking_the_slot_refuses_before_asking(
    h: Harness, calendly: CalendlyDouble, sleep: RecordedSleep
) -> None:
    calendly.rate_limit("GET", "/event_type_available_times", 3600)
    h.model.extend(
        uses(call("book_appointment", service="corte", start_time="2026-11-26T10:00:00")),
        says("Ahora mismo no puedo consultar la agenda; escríbeme en un rato."),
    )

    reply = await h.say("Quiero corte el jueves a las 10")

    assert not reply.awaiting_confirmation
    assert sleep.waits == []
    assert calendly.sent("POST", "/invitees") == []
    result = await _last_result(h)
    assert result["error"] == CALENDAR_BUSY and "in about 1 hour" in result["message"]
    await _nothing_pending(h)
    h.model.assert_complete()


async def test_a_long_rate_limit_on_a_cancellation_cancels_nothing(
    h: Harness, calendly: CalendlyDouble, sleep: RecordedSleep
) -> None:
    appointment_id = await book_directly(h, CUSTOMER, madrid(2026, 11, 27, 10, 0))
    h.model.extend(uses(call("cancel_appointment", appointment_id=appointment_id)))
    assert (await h.say("Cancela mi cita del viernes")).awaiting_confirmation
    calendly.rate_limit("POST", CANCELLATION_PATH, 120)
    h.model.extend(says(BUSY_REPLY))

    await h.say("sí")

    assert sleep.waits == []
    assert len(calendly.sent("POST", CANCELLATION_PATH)) == 1
    assert [a.id for a in await h.confirmed()] == [appointment_id]
    result = await _last_result(h)
    assert result["error"] == CALENDAR_BUSY and result["retry_after_seconds"] == 120.0
    assert "in about 2 minutes" in result["message"]
    await _nothing_pending(h)
    h.model.assert_complete()
