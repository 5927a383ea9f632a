"""Free slots as the customer should hear them, and the alternatives every refusal offers."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from booking.calendar import CalendarProblem, Slot
from booking.desk import Desk
from booking.refusal import Refusal
from core.business import Business, Service
from core.timeutil import at_local, describe_day


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


async def free_slots(desk: Desk, service: Service, first: date, last: date) -> list[Slot]:
    """Free slots for `service` from the start of `first` to the end of `last` (business timezone)."""
    tz = desk.business.tz
    try:
        return await desk.calendar.available_slots(
            service,
            at_local(first, datetime.min.time(), tz),
            at_local(last + timedelta(days=1), datetime.min.time(), tz),
        )
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


async def alternatives(
    desk: Desk, service: Service, around: datetime, language: str, count: int = 6
) -> list[dict[str, object]]:
    """The free slots closest to `around` (same day first, then the following week) to offer instead."""
    today = desk.clock.now().astimezone(desk.business.tz).date()
    first = max(around.date(), today)
    slots = await free_slots(desk, service, first, first + timedelta(days=7))
    nearest = sorted(slots, key=lambda s: (s.start.date() != around.date(), abs(s.start - around)))[:count]
    return slots_by_day(sorted(nearest, key=lambda s: s.start), language, desk.business.slot_minutes)
