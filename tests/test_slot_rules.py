"""The slot rules below the agent: the booking horizon in the business config and the local calendar, and the
reasons `validate_slot` gives for times the agent tests do not reach (holiday, lunch break, before opening).

Now is Tuesday 24 November 2026, 22:00 in Madrid, so the 60-day horizon's last day is Saturday 23 January 2027.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from booking.local_calendar import LocalCalendar
from booking.refusal import Refusal
from booking.validation import validate_slot
from core.business import Business, BusinessConfigError, parse_business
from core.clock import FixedClock
from store import Database
from store.appointments import AppointmentRepository
from store.clients import ClientRepository

MADRID = ZoneInfo("Europe/Madrid")
_ONE_SERVICE = "[{name: A, duration_minutes: 30, price_eur: 1}]"


@dataclass
class Desk:
    """What the rules consult, on the local calendar."""

    business: Business
    clock: FixedClock
    calendar: LocalCalendar
    clients: ClientRepository
    appointments: AppointmentRepository


@pytest.fixture
def desk(db: Database, business: Business, now: datetime) -> Desk:
    appointments = AppointmentRepository(db)
    clock = FixedClock(now)
    return Desk(business, clock, LocalCalendar(business, appointments, clock), ClientRepository(db), appointments)


def test_the_horizon_is_whole_days_from_today(business: Business) -> None:
    assert business.booking_horizon_days == 60
    assert business.last_bookable_day(date(2026, 11, 24)) == date(2027, 1, 23)


@pytest.mark.parametrize("days", ["0", "366", "-1", "soon"])
def test_a_broken_horizon_names_the_field(days: str) -> None:
    text = f"name: X\nbooking_horizon_days: {days}\nservices: {_ONE_SERVICE}\nopening_hours: {{}}\n"
    with pytest.raises(BusinessConfigError, match="booking_horizon_days"):
        parse_business(text, "business.yaml")


async def test_local_calendar_offers_the_whole_last_day_and_nothing_after(desk: Desk) -> None:
    corte = desk.business.services[0]
    start = datetime(2027, 1, 23, tzinfo=MADRID)
    slots = await desk.calendar.available_slots(corte, start, start + timedelta(days=7))
    assert {s.start.date() for s in slots} == {date(2027, 1, 23)}
    # Saturday 09:00-14:00: the last 45-minute start is 13:15, later in the day than now (22:00) plus 60 x 24 h.
    assert slots[0].start.hour == 9 and slots[-1].start == datetime(2027, 1, 23, 13, 15, tzinfo=MADRID)


@pytest.mark.parametrize(
    ("start", "code", "words"),
    [
        (datetime(2026, 12, 8, 10, 0), "closed", "holiday"),  # a Tuesday in closed_dates
        (datetime(2026, 11, 30, 10, 0), "closed", "does not open"),  # Monday
        (datetime(2026, 11, 26, 14, 30), "outside_hours", "outside opening hours"),  # lunch break
        (datetime(2026, 11, 26, 8, 0), "outside_hours", "outside opening hours"),  # before opening
        (datetime(2026, 11, 26, 13, 30), "outside_hours", "would end at 14:15"),  # runs into the break
        (datetime(2026, 11, 26, 10, 0, 30), "off_grid", "every 15 minutes"),  # seconds are off the grid too
    ],
)
async def test_the_refusal_names_the_rule(desk: Desk, start: datetime, code: str, words: str) -> None:
    with pytest.raises(Refusal) as info:
        await validate_slot(desk, "corte", start, language="es")
    assert info.value.code == code and words in info.value.message
    assert info.value.fields["alternatives"], "free times are offered instead"
