"""`check_availability`, and the alternatives every refusal offers."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated

from langchain_core.tools import tool
from langgraph.prebuilt import ToolRuntime
from pydantic import Field

from core.business import Service
from tools.calendar import CalendarProblem, Slot
from tools.context import Context
from tools.results import ToolRefusal, ok
from tools.timeutil import at_local, describe_day

MAX_DAYS_PER_CHECK = 14


def resolve_service(ctx: Context, name: str) -> Service:
    """The business service the customer means; a refusal listing the real services otherwise."""
    service = ctx.business.find_service(name)
    if service is None:
        raise ToolRefusal(
            "unknown_service",
            f"There is no service called {name!r}. Ask the customer which of these they want.",
            services=[s.name for s in ctx.business.services],
        )
    return service


async def free_slots(ctx: Context, service: Service, first: date, last: date) -> list[Slot]:
    """Free slots for `service` from the start of `first` to the end of `last` (business timezone)."""
    tz = ctx.business.tz
    try:
        return await ctx.calendar.available_slots(
            service,
            at_local(first, datetime.min.time(), tz),
            at_local(last + timedelta(days=1), datetime.min.time(), tz),
        )
    except CalendarProblem as exc:
        raise ToolRefusal(exc.code, f"The calendar could not be read: {exc.message}") from exc


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
    """Group slots into [{date, day, start_times}] for the model; local times, contiguous runs as ranges."""
    days: dict[date, list[datetime]] = {}
    for slot in slots:
        days.setdefault(slot.start.date(), []).append(slot.start)
    step = timedelta(minutes=step_minutes)
    return [
        {"date": d.isoformat(), "day": describe_day(d, language), "start_times": _as_ranges(starts, step)}
        for d, starts in sorted(days.items())
    ]


async def alternatives(ctx: Context, service: Service, around: datetime, count: int = 6) -> list[dict[str, object]]:
    """The free slots closest to `around` (same day first, then the following week) to offer instead."""
    today = ctx.clock.now().astimezone(ctx.business.tz).date()
    first = max(around.date(), today)
    slots = await free_slots(ctx, service, first, first + timedelta(days=7))
    nearest = sorted(slots, key=lambda s: (s.start.date() != around.date(), abs(s.start - around)))[:count]
    return slots_by_day(sorted(nearest, key=lambda s: s.start), ctx.language, ctx.business.slot_minutes)


@tool
async def check_availability(
    service: Annotated[str, Field(description="Service name as the customer said it, e.g. 'corte'.")],
    date_from: Annotated[date, Field(description="First day to look at (YYYY-MM-DD, business timezone).")],
    runtime: ToolRuntime[Context],
    date_to: Annotated[
        date | None, Field(description="Last day to look at (YYYY-MM-DD); omit to look at date_from only.")
    ] = None,
) -> str:
    """Find free appointment times for a service between two days (at most 14 days at once).

    Returns the service's duration and price and, per day, the free start times in local time. A range such as
    "09:30-13:15" means every start time from 09:30 to 13:15 in steps of `step_minutes`. Days that are closed or
    full are left out; if nothing is free, the next free times are returned instead.
    """
    ctx = runtime.context
    try:
        chosen = resolve_service(ctx, service)
        today = ctx.clock.now().astimezone(ctx.business.tz).date()
        last = date_to or date_from
        if last < date_from:
            date_from, last = last, date_from
        note = None
        if last < today:
            raise ToolRefusal("past_date", f"Those days are in the past; today is {today.isoformat()}.")
        if date_from < today:
            date_from, note = today, f"Days before today ({today.isoformat()}) were skipped."
        last = min(last, date_from + timedelta(days=MAX_DAYS_PER_CHECK - 1))
        slots = await free_slots(ctx, chosen, date_from, last)
        days = slots_by_day(slots, ctx.language, ctx.business.slot_minutes)
        if not days:
            note = "Nothing is free on those days; these are the next free times."
            days = await alternatives(
                ctx, chosen, at_local(last + timedelta(days=1), datetime.min.time(), ctx.business.tz)
            )
    except ToolRefusal as refusal:
        return refusal.result()
    return ok(
        service=chosen.name,
        duration_minutes=chosen.duration_minutes,
        price_eur=str(chosen.price_eur),
        timezone=ctx.business.timezone,
        step_minutes=ctx.business.slot_minutes,
        days=days,
        note=note,
    )
