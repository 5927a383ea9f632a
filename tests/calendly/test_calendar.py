"""CalendlyCalendar: Calendly answers come from cassettes (calendar_*.yaml); bookings are checked in `appointments`
on SQLite and on the real PostgreSQL (the `db` fixture)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from booking.calendar import BookingRequest, CalendarProblem, Customer
from core.business import Business, Service
from core.clock import FixedClock
from integrations.calendly.calendar import CalendlyCalendar
from integrations.calendly.client import CalendlyClient
from integrations.calendly.models import CalendlyApiError
from store import Database, open_database
from store.appointments import AppointmentRepository
from store.clients import ClientRepository
from store.models import Appointment
from tests.calendly.conftest import EVENT_URI, INVITEE_URI, NOW, USER_URI, SentRequests, play

MADRID = ZoneInfo("Europe/Madrid")
WA_ID = "whatsapp:+34600123456"
NEW_EVENT_URI = "https://api.calendly.com/scheduled_events/KKKKKKKKKKKKKKKK"
NEW_INVITEE_URI = f"{NEW_EVENT_URI}/invitees/LLLLLLLLLLLLLLLL"

CalendarFactory = Callable[..., CalendlyCalendar]


@pytest.fixture
async def unused_db(tmp_path: Path) -> AsyncIterator[Database]:
    """A database without tables, for tests where the calendar must not touch storage at all."""
    database = open_database(f"sqlite:///{tmp_path / 'untouched.db'}")
    yield database
    await database.close()


@pytest.fixture
def make_calendar(client: CalendlyClient, business: Business, clock: FixedClock) -> CalendarFactory:
    """Build a CalendlyCalendar over a given database (and, optionally, another business)."""

    def make(database: Database, business_override: Business | None = None) -> CalendlyCalendar:
        return CalendlyCalendar(client, AppointmentRepository(database), business_override or business, clock, USER_URI)

    return make


def corte(business: Business) -> Service:
    service = business.find_service("Corte y Peinado")
    assert service is not None
    return service


async def stored_appointments(db: Database) -> list[Appointment]:
    rows = await db.fetch_all("SELECT * FROM appointments ORDER BY created_at, id")
    return [Appointment.model_validate(row) for row in rows]


async def booking_request(db: Database, business: Business, *, key: str | None = "confirm-1") -> BookingRequest:
    client = await ClientRepository(db).ensure(WA_ID, now=NOW, profile_name="María")
    customer = Customer(wa_id=WA_ID, client_id=client.id, name="María López", email="maria@example.com")
    return BookingRequest(
        service=corte(business),
        start=datetime(2026, 11, 26, 10, 0, tzinfo=MADRID),
        customer=customer,
        notes="Primera visita",
        idempotency_key=key,
    )


async def mirrored_appointment(db: Database) -> Appointment:
    """An appointment as book() leaves it: Calendly event CCCC..., invitee DDDD..., 26 Nov 09:00 UTC."""
    return await AppointmentRepository(db).create(
        client_id=None,
        service="Corte y Peinado",
        start_at=datetime(2026, 11, 26, 9, 0, tzinfo=UTC),
        end_at=datetime(2026, 11, 26, 9, 45, tzinfo=UTC),
        source="agent",
        calendar="calendly",
        now=NOW,
        external_id=EVENT_URI,
        external_invitee=INVITEE_URI,
    )


async def test_available_slots_are_calendly_times_in_the_business_timezone(
    make_calendar: CalendarFactory, unused_db: Database, business: Business
) -> None:
    calendar = make_calendar(unused_db)
    day = datetime(2026, 11, 26, tzinfo=MADRID)

    with play("calendar_available_slots"):
        slots = await calendar.available_slots(corte(business), day, day + timedelta(days=1))

    # 09:00 and 10:00 UTC are 10:00 and 11:00 in Madrid; the 11:00 UTC time is not 'available'.
    assert [(s.start, s.end) for s in slots] == [
        (datetime(2026, 11, 26, 10, 0, tzinfo=MADRID), datetime(2026, 11, 26, 10, 45, tzinfo=MADRID)),
        (datetime(2026, 11, 26, 11, 0, tzinfo=MADRID), datetime(2026, 11, 26, 11, 45, tzinfo=MADRID)),
    ]
    assert all(s.start.tzinfo == MADRID for s in slots)


async def test_a_service_without_event_type_is_matched_by_name_once(
    make_calendar: CalendarFactory, unused_db: Database, business: Business
) -> None:
    unmapped = corte(business).model_copy(update={"calendly_event_type": None})
    others = tuple(s for s in business.services if s.name != unmapped.name)
    calendar = make_calendar(unused_db, business.model_copy(update={"services": (unmapped, *others)}))
    day = datetime(2026, 11, 26, tzinfo=MADRID)

    with play("calendar_event_type_by_name") as cassette:
        first = await calendar.available_slots(unmapped, day, day + timedelta(days=1))
        second = await calendar.available_slots(unmapped, day, day + timedelta(days=1))

    assert cassette.play_count == 3  # one GET /event_types, two availability questions
    assert first == second and len(first) == 2


async def test_book_mirrors_the_calendly_booking_once(
    make_calendar: CalendarFactory, db: Database, business: Business, sent: SentRequests
) -> None:
    calendar = make_calendar(db)
    request = await booking_request(db, business)

    with play("calendar_book") as cassette:
        booked = await calendar.book(request)
        again = await calendar.book(request)

    assert cassette.play_count == 1, "the repeated booking must not reach Calendly"
    assert again.id == booked.id
    [row] = await stored_appointments(db)
    assert row.id == booked.id
    assert (row.service, row.status, row.source, row.calendar) == ("Corte y Peinado", "confirmed", "agent", "calendly")
    assert row.start_at == datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
    assert row.end_at == datetime(2026, 11, 26, 9, 45, tzinfo=UTC)
    assert row.external_id == EVENT_URI
    assert row.external_invitee == INVITEE_URI
    assert row.idempotency_key == "confirm-1"
    assert row.client_id == request.customer.client_id
    assert row.price_eur == Decimal("25")
    assert row.notes == "Primera visita"
    [body] = sent.json_bodies()
    assert body["location"] == {"kind": "physical", "location": business.address}
    assert body["invitee"]["timezone"] == "Europe/Madrid"
    assert body["invitee"]["text_reminder_number"] == "+34600123456"


@pytest.mark.parametrize("cassette", ["calendar_book_slot_taken_400", "calendar_book_slot_taken_409"])
async def test_a_taken_slot_is_slot_taken_and_stores_nothing(
    make_calendar: CalendarFactory, db: Database, business: Business, cassette: str
) -> None:
    calendar = make_calendar(db)
    request = await booking_request(db, business)

    with play(cassette), pytest.raises(CalendarProblem) as raised:
        await calendar.book(request)

    assert raised.value.code == "slot_taken"
    assert await stored_appointments(db) == []


async def test_a_start_in_the_past_is_invalid_and_names_start_time(
    make_calendar: CalendarFactory, db: Database, business: Business
) -> None:
    calendar = make_calendar(db)
    request = await booking_request(db, business)
    past = BookingRequest(
        service=request.service, start=datetime(2026, 11, 24, 8, 0, tzinfo=UTC), customer=request.customer
    )

    with play("calendar_book_start_in_past"), pytest.raises(CalendarProblem) as raised:
        await calendar.book(past)

    problem = raised.value
    assert problem.code == "invalid"
    assert "Invalid Argument" in problem.message
    assert "start_time: must be in the future" in problem.message
    assert problem.details == {"start_time": "must be in the future"}
    assert isinstance(problem.__cause__, CalendlyApiError) and problem.__cause__.status == 400
    assert await stored_appointments(db) == []


async def test_a_rate_limited_booking_says_when_to_retry(
    make_calendar: CalendarFactory, db: Database, business: Business
) -> None:
    # The booking is recorded as an intent before the call (store.intents), so this touches the database.
    calendar = make_calendar(db)
    customer = Customer(wa_id=WA_ID, client_id=None, name="María López", email="maria@example.com")
    request = BookingRequest(
        service=corte(business), start=datetime(2026, 11, 26, 10, 0, tzinfo=MADRID), customer=customer
    )

    with play("calendar_book_rate_limited"), pytest.raises(CalendarProblem) as raised:
        await calendar.book(request)

    assert raised.value.code == "rate_limited"
    assert raised.value.retry_after_seconds == 3600.0


async def test_a_customer_without_email_is_refused_before_calling_calendly(
    make_calendar: CalendarFactory, db: Database, business: Business
) -> None:
    calendar = make_calendar(db)
    request = await booking_request(db, business)
    no_email = BookingRequest(
        service=request.service,
        start=request.start,
        customer=Customer(wa_id=WA_ID, client_id=request.customer.client_id, name="María López"),
        idempotency_key="confirm-2",
    )

    with play("calendar_needs_email") as cassette, pytest.raises(CalendarProblem) as raised:
        await calendar.book(no_email)

    assert raised.value.code == "needs_email"
    assert cassette.play_count == 0
    assert await stored_appointments(db) == []


async def test_cancel_cancels_the_calendly_event_then_the_appointment(
    make_calendar: CalendarFactory, db: Database, clock: FixedClock
) -> None:
    calendar = make_calendar(db)
    appointment = await mirrored_appointment(db)
    clock.advance(timedelta(minutes=5))

    with play("calendar_cancel"):
        cancelled = await calendar.cancel(appointment, "No puedo ir")

    [row] = await stored_appointments(db)
    assert row.id == cancelled.id == appointment.id
    assert row.status == "cancelled"
    assert row.cancel_reason == "No puedo ir"
    assert row.cancelled_at == NOW + timedelta(minutes=5)


async def test_reschedule_books_the_new_time_cancels_the_old_event_and_keeps_the_id(
    make_calendar: CalendarFactory, db: Database, business: Business, sent: SentRequests
) -> None:
    calendar = make_calendar(db)
    appointment = await mirrored_appointment(db)

    with play("calendar_reschedule") as cassette:
        moved = await calendar.reschedule(appointment, corte(business), datetime(2026, 11, 27, 17, 0, tzinfo=MADRID))

    assert cassette.play_count == 3
    [row] = await stored_appointments(db)
    assert row.id == moved.id == appointment.id
    assert row.status == "confirmed"
    assert row.start_at == datetime(2026, 11, 27, 16, 0, tzinfo=UTC)
    assert row.end_at == datetime(2026, 11, 27, 16, 45, tzinfo=UTC)
    assert (row.external_id, row.external_invitee) == (NEW_EVENT_URI, NEW_INVITEE_URI)
    # The new booking is made for the same person the old invitee was.
    new_booking = sent.json_bodies()[0]
    assert new_booking["invitee"]["email"] == "maria@example.com"
    assert sent.json_bodies()[1] == {"reason": "Reprogramada por WhatsApp"}
    assert str(sent.requests[2].url) == f"{EVENT_URI}/cancellation"


async def test_reschedule_to_a_taken_time_changes_nothing(
    make_calendar: CalendarFactory, db: Database, business: Business
) -> None:
    calendar = make_calendar(db)
    appointment = await mirrored_appointment(db)

    with play("calendar_reschedule_slot_taken"), pytest.raises(CalendarProblem) as raised:
        await calendar.reschedule(appointment, corte(business), datetime(2026, 11, 27, 17, 0, tzinfo=MADRID))

    assert raised.value.code == "slot_taken"
    assert await stored_appointments(db) == [appointment]


async def test_health_reads_the_token_user(make_calendar: CalendarFactory, unused_db: Database) -> None:
    with play("calendar_health"):
        health = await make_calendar(unused_db).health()

    assert health.ok, health.detail
    assert health.extra["user"] == USER_URI
    assert health.extra["organization"] == "https://api.calendly.com/organizations/OOOOOOOOOOOOOOOO"
