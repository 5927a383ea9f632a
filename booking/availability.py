"""Free slots as the customer should hear them, and the alternatives every refusal offers."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Protocol, runtime_checkable

from booking.calendar import CalendarProblem, Slot
from booking.desk import Desk
from booking.refusal import Refusal
from core.business import Business, Service
from core.timeutil import at_local, describe_day
from store.models import Appointment

# How far past the asked-for day alternatives are looked for.
ALTERNATIVES_DAYS = 7


@runtime_checkable
class ReleasesOwnSeats(Protocol):
    """A calendar that frees an appointment's own seats in the same step that claims its new ones (the local
    calendar swaps claims in one transaction), and so can say which times a move of that appointment may take.

    Calendly books the new time before cancelling the old one, so its plain availability is already the answer.
    """

    async def available_slots_moving(
        self, appointment: Appointment, service: Service, start: datetime, end: datetime
    ) -> list[Slot]:
        """Free start times in [start, end) as if `appointment` held no seats."""
        ...


def resolve_service(business: Business, name: str) -> Service:
    """The business service the customer means; a refusal listing the real services otherwise."""
    service = business.find_service(name)
    if service is None:
        raise Refusal(
            "unknown_service",
            f"There is no service called {name!r}. Ask the customer which of these they want.",
            services=[s.name for s in business.services],
        )
    return service


def last_bookable_day(desk: Desk) -> date:
    """The last day inside the business's booking horizon, seen from today in the business timezone."""
    return desk.business.last_bookable_day(desk.clock.now().astimezone(desk.business.tz).date())


async def free_slots(
    desk: Desk, service: Service, first: date, last: date, *, moving: Appointment | None = None
) -> list[Slot]:
    """Free slots for `service` from the start of `first` to the end of `last` (business timezone), never past
    the booking horizon. With `moving`, the times that appointment could be moved to (its own seats count as free
    where the calendar releases them in the move)."""
    tz = desk.business.tz
    # Clipped here, not only in the local calendar: Calendly's own window may reach further than the business's.
    last = min(last, last_bookable_day(desk))
    if last < first:
        return []
    start = at_local(first, datetime.min.time(), tz)
    end = at_local(last + timedelta(days=1), datetime.min.time(), tz)
    try:
        if moving is not None and isinstance(desk.calendar, ReleasesOwnSeats):
            return await desk.calendar.available_slots_moving(moving, service, start, end)
        return await desk.calendar.available_slots(service, start, end)
    except CalendarProblem as exc:
        raise Refusal(exc.code, f"The calendar could not be read: {exc.message}") from exc


def _as_ranges(starts: list[datetime], step: timedelta) -> list[str]:
    # Contiguous start times become "09:30-13:15" (every `step`): complete, yet a handful of tokens per day.
    ranges: list[str] = []
    run_start = previous = starts[0]
    for current in [*starts[1:], None]:
        if current is not None and current - previous == step:
            previous = current
            continue
        ranges.append(f"{run_start:%H:%M}" if run_start == previous else f"{run_start:%H:%M}-{previous:%H:%M}")
        if current is not None:
            run_start = previous = current
    return ranges


def slots_by_day(slots: list[Slot], language: str, step_minutes: int) -> list[dict[str, object]]:
    """Group slots into [{date, day, start_times}]; local times, contiguous runs as ranges."""
    days: dict[date, list[datetime]] = {}
    for slot in slots:
        days.setdefault(slot.start.date(), []).append(slot.start)
    step = timedelta(minutes=step_minutes)
    return [
        {"date": d.isoformat(), "day": describe_day(d, language), "start_times": _as_ranges(starts, step)}
        for d, starts in sorted(days.items())
    ]


def _nearest(
    slots: list[Slot], around: datetime, desk: Desk, language: str, count: int, moving: Appointment | None
) -> list[dict[str, object]]:
    # A move is never offered the time the appointment already has.
    offered = [s for s in slots if moving is None or s.start != moving.start_at]
    # Same day as `around` first, then by distance in time; shown in time order.
    nearest = sorted(offered, key=lambda s: (s.start.date() != around.date(), abs(s.start - around)))[:count]
    return slots_by_day(sorted(nearest, key=lambda s: s.start), language, desk.business.slot_minutes)


async def alternatives(
    desk: Desk,
    service: Service,
    around: datetime,
    language: str,
    count: int = 6,
    *,
    moving: Appointment | None = None,
) -> list[dict[str, object]]:
    """The free slots closest to `around` (same day first, then the following week) to offer instead; with
    `moving`, the times that appointment could be moved to."""
    today = desk.clock.now().astimezone(desk.business.tz).date()
    first = max(around.date(), today)
    slots = await free_slots(desk, service, first, first + timedelta(days=ALTERNATIVES_DAYS), moving=moving)
    return _nearest(slots, around, desk, language, count, moving)


async def latest_alternatives(
    desk: Desk,
    service: Service,
    at: time,
    language: str,
    count: int = 6,
    *,
    moving: Appointment | None = None,
) -> list[dict[str, object]]:
    """The free slots at the far end of the booking horizon, nearest to the time of day `at`: what to offer
    someone asking for a day beyond it."""
    last = last_bookable_day(desk)
    today = desk.clock.now().astimezone(desk.business.tz).date()
    first = max(today, last - timedelta(days=ALTERNATIVES_DAYS))
    slots = await free_slots(desk, service, first, last, moving=moving)
    return _nearest(slots, at_local(last, at, desk.business.tz), desk, language, count, moving)
