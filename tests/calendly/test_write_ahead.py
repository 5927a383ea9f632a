"""Calendly writes cut off mid-call (issue 10, item 1): recorded before the call, settled with Calendly afterwards.

The Calendly double (`BookingCalendly`) remembers what it booked and cancelled; `die_after` lets a request take effect
there and then raises `ProcessKilled` instead of answering, as kill -9 of the worker would. Running the same call
again (the turn re-run after a crash) or the worker's sweep must then store what Calendly holds: exactly one booking
at Calendly, one appointment row, the intent done. On SQLite and PostgreSQL (`db`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from booking.calendar import BookingRequest, CalendarProblem, Customer, RecoversInterruptedWrites
from booking.local_calendar import LocalCalendar
from core.business import Business, Service
from core.clock import FixedClock
from integrations.calendly.calendar import CalendlyCalendar
from integrations.calendly.client import CalendlyClient
from integrations.calendly.reconcile import CalendlyReconciler
from store import Database
from store.appointments import AppointmentRepository
from store.clients import ClientRepository
from store.models import Appointment
from tests.calendly.booking_double import BookingCalendly, ProcessKilled
from tests.calendly.conftest import BASE_URL, NOW, TEST_TOKEN, USER_URI, RecordedSleep

MADRID = ZoneInfo("Europe/Madrid")
WA_ID = "whatsapp:+34600123456"
EMAIL = "maria@example.com"
START = datetime(2026, 11, 26, 10, 0, tzinfo=MADRID)  # 09:00 UTC
NEW_START = datetime(2026, 11, 27, 17, 0, tzinfo=MADRID)
SETTLE, ABANDON = timedelta(seconds=60), timedelta(minutes=15)


@pytest.fixture
def calendly() -> BookingCalendly:
    return BookingCalendly(now=NOW)


@pytest.fixture
async def calendar(
    calendly: BookingCalendly, db: Database, business: Business, clock: FixedClock
) -> AsyncIterator[CalendlyCalendar]:
    async with httpx.AsyncClient(transport=calendly.transport()) as http:
        client = CalendlyClient(BASE_URL, TEST_TOKEN, http=http, sleep=RecordedSleep(), clock=clock)
        yield CalendlyCalendar(client, AppointmentRepository(db), business, clock, USER_URI)


def corte(business: Business) -> Service:
    service = business.find_service("Corte y Peinado")
    assert service is not None
    return service


async def booking(db: Database, business: Business, key: str | None = f"{WA_ID}:call_0001") -> BookingRequest:
    client = await ClientRepository(db).ensure(WA_ID, now=NOW, profile_name="María")
    customer = Customer(wa_id=WA_ID, client_id=client.id, name="María López", email=EMAIL)
    return BookingRequest(corte(business), START, customer, notes="Primera visita", idempotency_key=key)


async def booked_earlier(db: Database, calendly: BookingCalendly) -> Appointment:
    """María's appointment at START, booked on Calendly before this test (event and invitee at the double)."""
    client = await ClientRepository(db).ensure(WA_ID, now=NOW)
    event, invitee = calendly.add_booking(START, EMAIL)
    return await AppointmentRepository(db).create(
        client_id=client.id,
        service="Corte y Peinado",
        start_at=START,
        end_at=START + timedelta(minutes=45),
        source="agent",
        calendar="calendly",
        now=NOW,
        external_id=event,
        external_invitee=invitee,
    )


async def appointments(db: Database) -> list[Appointment]:
    rows = await db.fetch_all("SELECT * FROM appointments ORDER BY created_at, id")
    return [Appointment.model_validate(row) for row in rows]


async def intents(db: Database) -> list[tuple[Any, ...]]:
    rows = await db.fetch_all(
        "SELECT action, status, attempts, appointment_id FROM write_intents ORDER BY created_at, intent_key"
    )
    return [(r["action"], r["status"], r["attempts"], r["appointment_id"]) for r in rows]


async def test_a_booking_cut_off_after_calendly_booked_is_adopted_when_the_call_runs_again(
    calendar: CalendlyCalendar, calendly: BookingCalendly, db: Database, business: Business
) -> None:
    request = await booking(db, business)
    calendly.die_after("POST", "/invitees")
    with pytest.raises(ProcessKilled):
        await calendar.book(request)
    # What the crash leaves: Calendly holds the booking, the store only the intent, recorded before the call.
    [event] = calendly.active()
    assert await appointments(db) == []
    assert await intents(db) == [("book", "pending", 1, None)]

    booked = await calendar.book(request)  # the turn runs again: the same confirmed call, the same key

    assert len(calendly.sent("POST", "/invitees")) == 1 and calendly.active() == [event]
    [row] = await appointments(db)
    assert row.id == booked.id and row.status == "confirmed" and row.source == "agent"
    assert row.external_id == event["uri"]
    assert row.external_invitee == calendly.invitees[event["uri"]][0]["uri"]
    assert (row.idempotency_key, row.client_id) == (request.idempotency_key, request.customer.client_id)
    assert (row.start_at, row.notes) == (START, "Primera visita")
    assert await intents(db) == [("book", "done", 2, booked.id)]
    # The search was narrow: the invitee's e-mail, a window around the start, active events only.
    [search] = calendly.sent("GET", "/scheduled_events")
    params = search.url.params
    assert (params["invitee_email"], params["status"]) == (EMAIL, "active")
    assert params["min_start_time"] == "2026-11-26T08:59:00Z" and params["max_start_time"] == "2026-11-26T09:01:00Z"


async def test_without_the_lookup_the_same_crash_is_the_reported_bug(
    calendar: CalendlyCalendar,
    calendly: BookingCalendly,
    db: Database,
    business: Business,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The test above really depends on asking Calendly: with the lookup removed, the run after the crash books
    again, Calendly calls the customer's own booking a taken slot, and nothing is stored (issue 10, item 1)."""

    async def finds_nothing(self: CalendlyReconciler, intent: object) -> None:
        return None

    monkeypatch.setattr(CalendlyReconciler, "find_booking", finds_nothing)
    request = await booking(db, business)
    calendly.die_after("POST", "/invitees")
    with pytest.raises(ProcessKilled):
        await calendar.book(request)

    with pytest.raises(CalendarProblem) as raised:
        await calendar.book(request)

    assert raised.value.code == "slot_taken"
    assert len(calendly.sent("POST", "/invitees")) == 2 and len(calendly.active()) == 1
    assert await appointments(db) == []


async def test_a_lost_answer_is_looked_up_at_once_and_the_booking_stored(
    calendar: CalendlyCalendar, calendly: BookingCalendly, db: Database, business: Business
) -> None:
    calendly.lose_answer("POST", "/invitees")  # Calendly booked; the answer never arrived (504)

    booked = await calendar.book(await booking(db, business))

    [event] = calendly.active()
    assert len(calendly.sent("POST", "/invitees")) == 1
    assert [(a.id, a.external_id) for a in await appointments(db)] == [(booked.id, event["uri"])]
    assert await intents(db) == [("book", "done", 1, booked.id)]


async def test_a_booking_that_never_reached_calendly_is_made_when_the_call_runs_again(
    calendar: CalendlyCalendar, calendly: BookingCalendly, db: Database, business: Business
) -> None:
    request = await booking(db, business)
    calendly.die_before("POST", "/invitees")
    with pytest.raises(ProcessKilled):
        await calendar.book(request)
    assert calendly.active() == []

    booked = await calendar.book(request)

    [event] = calendly.active()
    assert len(calendly.sent("POST", "/invitees")) == 2  # the first never took effect
    assert [(a.id, a.external_id) for a in await appointments(db)] == [(booked.id, event["uri"])]
    assert await intents(db) == [("book", "done", 2, booked.id)]


async def test_the_sweep_adopts_an_orphan_booking_once_it_is_old_enough(
    calendar: CalendlyCalendar, calendly: BookingCalendly, db: Database, business: Business, clock: FixedClock
) -> None:
    request = await booking(db, business)
    calendly.die_after("POST", "/invitees")
    with pytest.raises(ProcessKilled):
        await calendar.book(request)
    assert isinstance(calendar, RecoversInterruptedWrites)

    clock.advance(timedelta(seconds=30))
    assert await calendar.sweep(older_than=SETTLE, abandon_after=ABANDON) == []  # may still be in flight
    assert calendly.sent("GET", "/scheduled_events") == []
    clock.advance(timedelta(seconds=31))
    changed = await calendar.sweep(older_than=SETTLE, abandon_after=ABANDON)

    [row] = await appointments(db)
    assert [a.id for a in changed] == [row.id]
    assert row.external_id == calendly.active()[0]["uri"] and row.idempotency_key == request.idempotency_key
    assert await intents(db) == [("book", "done", 1, row.id)]
    assert len(calendly.sent("POST", "/invitees")) == 1
    # The customer's turn, run again later, answers with that same appointment and calls Calendly no more.
    assert (await calendar.book(request)).id == row.id
    assert len(calendly.requests) == 3  # the POST, the search and the event's invitees


async def test_the_sweep_abandons_a_write_calendly_never_received_and_keeps_one_it_cannot_check(
    calendar: CalendlyCalendar, calendly: BookingCalendly, db: Database, business: Business, clock: FixedClock
) -> None:
    request = await booking(db, business)
    calendly.die_before("POST", "/invitees")
    with pytest.raises(ProcessKilled):
        await calendar.book(request)

    calendly.lookups_fail = True  # Calendly cannot be asked: the outcome stays unknown, nothing is given up
    clock.advance(ABANDON + timedelta(minutes=1))
    assert await calendar.sweep(older_than=SETTLE, abandon_after=ABANDON) == []
    assert await intents(db) == [("book", "pending", 1, None)]
    calendly.lookups_fail = False
    assert await calendar.sweep(older_than=SETTLE, abandon_after=ABANDON) == []

    assert await intents(db) == [("book", "abandoned", 1, None)]
    assert await appointments(db) == [] and len(calendly.sent("POST", "/invitees")) == 1
    # A late run of the same call starts over: Calendly is asked once more, then the booking is made.
    booked = await calendar.book(request)
    assert await intents(db) == [("book", "done", 2, booked.id)] and len(calendly.active()) == 1


async def test_a_cancellation_cut_off_after_calendly_cancelled_is_adopted_when_the_call_runs_again(
    calendar: CalendlyCalendar, calendly: BookingCalendly, db: Database
) -> None:
    appointment = await booked_earlier(db, calendly)
    calendly.die_after("POST", "/cancellation")
    with pytest.raises(ProcessKilled):
        await calendar.cancel(appointment, "No puedo ir")
    assert calendly.active() == [] and (await appointments(db))[0].status == "confirmed"

    cancelled = await calendar.cancel(appointment, "No puedo ir")

    assert len(calendly.sent("POST", "/cancellation")) == 1
    [row] = await appointments(db)
    assert row.id == cancelled.id == appointment.id
    assert (row.status, row.cancel_reason) == ("cancelled", "No puedo ir")
    assert await intents(db) == [("cancel", "done", 2, appointment.id)]


async def test_the_sweep_adopts_an_orphan_cancellation(
    calendar: CalendlyCalendar, calendly: BookingCalendly, db: Database, clock: FixedClock
) -> None:
    appointment = await booked_earlier(db, calendly)
    calendly.die_after("POST", "/cancellation")
    with pytest.raises(ProcessKilled):
        await calendar.cancel(appointment, "No puedo ir")

    clock.advance(timedelta(minutes=2))
    changed = await calendar.sweep(older_than=SETTLE, abandon_after=ABANDON)

    assert [(a.id, a.status, a.cancel_reason) for a in changed] == [(appointment.id, "cancelled", "No puedo ir")]
    assert [a.status for a in await appointments(db)] == ["cancelled"]
    assert await intents(db) == [("cancel", "done", 1, appointment.id)]
    assert len(calendly.sent("POST", "/cancellation")) == 1


async def test_a_reschedule_cut_off_after_the_new_booking_is_finished_when_the_call_runs_again(
    calendar: CalendlyCalendar, calendly: BookingCalendly, db: Database, business: Business
) -> None:
    appointment = await booked_earlier(db, calendly)
    old_event = appointment.external_id
    calendly.die_after("POST", "/invitees")
    with pytest.raises(ProcessKilled):
        await calendar.reschedule(appointment, corte(business), NEW_START)
    assert len(calendly.active()) == 2 and (await appointments(db))[0].external_id == old_event

    moved = await calendar.reschedule(appointment, corte(business), NEW_START)

    [new_event] = calendly.active()  # the old event was released, the new one adopted, none booked twice
    assert len(calendly.sent("POST", "/invitees")) == 1 and calendly.events[str(old_event)]["status"] == "canceled"
    [row] = await appointments(db)
    assert row.id == moved.id == appointment.id and row.status == "confirmed"
    assert (row.start_at, row.external_id) == (NEW_START, new_event["uri"])
    assert row.external_invitee == calendly.invitees[new_event["uri"]][0]["uri"]
    assert sorted(await intents(db)) == [("move", "done", 2, appointment.id), ("release", "done", 1, appointment.id)]


async def test_a_reschedule_cut_off_while_releasing_the_old_event_is_finished_by_settling(
    calendar: CalendlyCalendar, calendly: BookingCalendly, db: Database, business: Business
) -> None:
    appointment = await booked_earlier(db, calendly)
    calendly.die_after("POST", "/cancellation")
    with pytest.raises(ProcessKilled):
        await calendar.reschedule(appointment, corte(business), NEW_START)
    assert ("release", "pending", 1, appointment.id) in await intents(db)

    assert appointment.client_id is not None
    changed = await calendar.settle(appointment.client_id)

    assert changed == []  # the appointment had moved already; only Calendly's old event was left to close
    [new_event] = calendly.active()
    [row] = await appointments(db)
    assert (row.start_at, row.external_id) == (NEW_START, new_event["uri"])
    assert sorted(await intents(db)) == [("move", "done", 1, appointment.id), ("release", "done", 1, appointment.id)]
    # Settling cancelled once more; Calendly refused (already cancelled) and the event's status settled it.
    assert len(calendly.sent("POST", "/cancellation")) == 2


async def test_the_sweep_finishes_a_reschedule_cut_off_after_the_new_booking(
    calendar: CalendlyCalendar, calendly: BookingCalendly, db: Database, business: Business, clock: FixedClock
) -> None:
    appointment = await booked_earlier(db, calendly)
    calendly.die_after("POST", "/invitees")
    with pytest.raises(ProcessKilled):
        await calendar.reschedule(appointment, corte(business), NEW_START)

    clock.advance(timedelta(minutes=2))
    changed = await calendar.sweep(older_than=SETTLE, abandon_after=ABANDON)

    [new_event] = calendly.active()
    assert [(a.id, a.start_at, a.external_id) for a in changed] == [(appointment.id, NEW_START, new_event["uri"])]
    assert calendly.events[str(appointment.external_id)]["status"] == "canceled"
    assert len(calendly.sent("POST", "/invitees")) == 1
    assert sorted(await intents(db)) == [("move", "done", 1, appointment.id), ("release", "done", 1, appointment.id)]


async def test_a_refused_booking_fails_its_intent_and_is_never_looked_up(
    calendar: CalendlyCalendar, calendly: BookingCalendly, db: Database, business: Business, clock: FixedClock
) -> None:
    calendly.add_booking(START, "someone@example.com")  # somebody else took the time meanwhile

    with pytest.raises(CalendarProblem) as raised:
        await calendar.book(await booking(db, business))

    assert raised.value.code == "slot_taken"
    assert await intents(db) == [("book", "failed", 1, None)]
    clock.advance(ABANDON * 2)
    assert await calendar.sweep(older_than=SETTLE, abandon_after=ABANDON) == []
    assert calendly.sent("GET") == [] and await appointments(db) == []
    assert START.astimezone(UTC).hour == 9  # the Madrid 10:00 the double answers in UTC


async def test_the_sweep_abandons_a_cancellation_whose_event_is_gone(
    calendar: CalendlyCalendar, calendly: BookingCalendly, db: Database, clock: FixedClock
) -> None:
    appointment = await booked_earlier(db, calendly)
    calendly.die_before("POST", "/cancellation")
    with pytest.raises(ProcessKilled):
        await calendar.cancel(appointment, None)
    del calendly.events[str(appointment.external_id)]  # Calendly answers 404 for it from now on

    clock.advance(ABANDON + timedelta(minutes=1))
    assert await calendar.sweep(older_than=SETTLE, abandon_after=ABANDON) == []

    assert await intents(db) == [("cancel", "abandoned", 1, appointment.id)]
    assert [a.status for a in await appointments(db)] == ["confirmed"]  # the customer's turn decides, not the sweep


async def test_the_local_calendar_writes_in_one_transaction_and_records_no_intent(
    db: Database, business: Business, clock: FixedClock
) -> None:
    calendar = LocalCalendar(business, AppointmentRepository(db), clock)
    assert not isinstance(calendar, RecoversInterruptedWrites)

    booked = await calendar.book(await booking(db, business))
    await calendar.cancel(booked)

    assert await intents(db) == []
