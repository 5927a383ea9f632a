"""Calendly's 429s: a short reset is waited out and the request sent again; a long one (or waits adding up past the
budget) raises `CalendlyRateLimited` at once, which the calendar turns into the 'rate_limited' CalendarProblem.

Calendly is the local double of tests/calendly/double.py; the client's sleep records each wait instead of waiting,
so "at once" is shown by the waits asked for, not by a stopwatch.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from booking.calendar import BookingRequest, CalendarProblem, Customer
from booking.refusal import CALENDAR_BUSY
from core.business import Business
from core.clock import FixedClock
from integrations.calendly.calendar import CalendlyCalendar
from integrations.calendly.client import CalendlyClient
from integrations.calendly.models import CalendlyRateLimited
from integrations.calendly.transport import rate_limit_budget
from store import Database
from store.appointments import AppointmentRepository
from tests.calendly.conftest import BASE_URL, EVENT_TYPE_URI, TEST_TOKEN, USER_URI, RecordedSleep
from tests.calendly.double import CalendlyDouble, request_json

START = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)  # Thursday 10:00 in Madrid


@pytest.fixture
def calendly() -> CalendlyDouble:
    return CalendlyDouble(available=[START])


@pytest.fixture
async def client(calendly: CalendlyDouble, sleep: RecordedSleep, clock: FixedClock) -> AsyncIterator[CalendlyClient]:
    """A client with the production defaults (waits of at most 5 s, 8 s per request) on the double."""
    async with calendly.http() as http:
        yield CalendlyClient(BASE_URL, TEST_TOKEN, http=http, sleep=sleep, clock=clock)


async def test_a_60_second_reset_raises_at_once_without_waiting(
    client: CalendlyClient, calendly: CalendlyDouble, sleep: RecordedSleep
) -> None:
    calendly.rate_limit("GET", "/users/me", 60)

    with pytest.raises(CalendlyRateLimited) as raised:
        await client.current_user()

    assert raised.value.reset_seconds == 60.0
    assert sleep.waits == []
    assert len(calendly.sent("GET", "/users/me")) == 1


async def test_a_1_second_reset_is_waited_out_and_the_request_sent_again(
    client: CalendlyClient, calendly: CalendlyDouble, sleep: RecordedSleep
) -> None:
    calendly.rate_limit("GET", "/users/me", 1)

    user = await client.current_user()

    assert user.uri == USER_URI
    assert sleep.waits == [1.0]
    assert len(calendly.sent("GET", "/users/me")) == 2


async def test_short_resets_stop_at_the_request_budget(
    client: CalendlyClient, calendly: CalendlyDouble, sleep: RecordedSleep
) -> None:
    # Each reset is short enough on its own, but a second 5 s wait would take the request past its 8 s.
    calendly.rate_limit("GET", "/users/me", 5, 5)

    with pytest.raises(CalendlyRateLimited) as raised:
        await client.current_user()

    assert raised.value.reset_seconds == 5.0
    assert sleep.waits == [5.0]
    assert len(calendly.sent("GET", "/users/me")) == 2


async def test_a_shared_budget_spans_every_request_inside_it(
    client: CalendlyClient, calendly: CalendlyDouble, sleep: RecordedSleep
) -> None:
    with rate_limit_budget(6.0) as budget:
        calendly.rate_limit("GET", "/users/me", 4)
        await client.current_user()  # waits 4 s, then answered
        calendly.rate_limit("GET", "/users/me", 4)
        with pytest.raises(CalendlyRateLimited):
            await client.current_user()  # another 4 s would overspend the 2 s left

    assert sleep.waits == [4.0]
    assert budget.remaining == 2.0
    assert len(calendly.sent("GET", "/users/me")) == 3


@pytest.mark.parametrize("header", ["inf", "nan", "soon"])
async def test_a_reset_that_is_not_a_number_of_seconds_counts_as_a_minute(
    client: CalendlyClient, calendly: CalendlyDouble, sleep: RecordedSleep, header: str
) -> None:
    # Calendly sends whole seconds; anything else is neither waited for nor allowed into the 503's arithmetic.
    calendly.rate_limit("GET", "/users/me", header)

    with pytest.raises(CalendlyRateLimited) as raised:
        await client.current_user()

    assert raised.value.reset_seconds == 60.0
    assert sleep.waits == []


def _calendar(client: CalendlyClient, db: Database, business: Business, clock: FixedClock) -> CalendlyCalendar:
    return CalendlyCalendar(client, AppointmentRepository(db), business, clock, USER_URI)


def _request(business: Business) -> BookingRequest:
    corte = next(s for s in business.services if s.name == "Corte y Peinado")
    customer = Customer(wa_id="whatsapp:+34600123456", client_id=None, name="María López", email="maria@example.com")
    return BookingRequest(corte, START, customer)


async def test_a_long_rate_limit_on_a_booking_is_a_busy_problem_and_books_nothing(
    client: CalendlyClient,
    calendly: CalendlyDouble,
    sleep: RecordedSleep,
    db: Database,
    business: Business,
    clock: FixedClock,
) -> None:
    calendly.rate_limit("POST", "/invitees", 60)

    with pytest.raises(CalendarProblem) as raised:
        await _calendar(client, db, business, clock).book(_request(business))

    problem = raised.value
    assert problem.code == CALENDAR_BUSY == "rate_limited"
    assert problem.retry_after_seconds == 60.0
    assert "nothing was booked" in problem.message and "write again in a minute" in problem.message
    assert sleep.waits == []
    assert len(calendly.sent("POST", "/invitees")) == 1  # not sent again
    assert await db.fetch_all("SELECT id FROM appointments") == []


async def test_a_short_rate_limit_on_a_booking_sends_the_same_booking_once_more(
    client: CalendlyClient,
    calendly: CalendlyDouble,
    sleep: RecordedSleep,
    db: Database,
    business: Business,
    clock: FixedClock,
) -> None:
    # A 429 means Calendly did nothing, so sending the booking again cannot book twice.
    calendly.rate_limit("POST", "/invitees", 1)

    appointment = await _calendar(client, db, business, clock).book(_request(business))

    posts = calendly.sent("POST", "/invitees")
    assert sleep.waits == [1.0]
    assert len(posts) == 2 and request_json(posts[0]) == request_json(posts[1])
    assert request_json(posts[0])["event_type"] == EVENT_TYPE_URI
    assert appointment.external_id == "https://api.calendly.com/scheduled_events/CCCCCCCCCCCCCCCC"
    rows = await db.fetch_all("SELECT id FROM appointments")
    assert [r["id"] for r in rows] == [appointment.id]
