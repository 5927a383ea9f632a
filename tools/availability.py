"""`check_availability`: free times for a service over a few days."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated

from langchain_core.tools import tool
from langgraph.prebuilt import ToolRuntime
from pydantic import Field

from booking.availability import alternatives, free_slots, resolve_service, slots_by_day
from core.timeutil import at_local
from tools.context import ToolContext
from tools.results import Refusal, ok

MAX_DAYS_PER_CHECK = 14


@tool
async def check_availability(
    service: Annotated[str, Field(description="Service name as the customer said it, e.g. 'corte'.")],
    date_from: Annotated[date, Field(description="First day to look at (YYYY-MM-DD, business timezone).")],
    runtime: ToolRuntime[ToolContext],
    date_to: Annotated[
        date | None, Field(description="Last day to look at (YYYY-MM-DD); omit to look at date_from only.")
    ] = None,
) -> str:
    """Find free appointment times for a service between two days (at most 14 days at once).

    Returns the service's duration and price and, per day, the free start times in local time. A range such as
    "09:30-13:15" means every start time from 09:30 to 13:15 in steps of `step_minutes`. Days that are closed or
    full are left out; if nothing is free, the next free times are returned instead.
    """
    services, language = runtime.context.services, runtime.context.turn.language
    business = services.business
    try:
        chosen = resolve_service(business, service)
        today = services.clock.now().astimezone(business.tz).date()
        last = date_to or date_from
        if last < date_from:
            date_from, last = last, date_from
        note = None
        if last < today:
            raise Refusal("past_date", f"Those days are in the past; today is {today.isoformat()}.")
        if date_from < today:
            date_from, note = today, f"Days before today ({today.isoformat()}) were skipped."
        horizon = business.last_bookable_day(today)
        if date_from > horizon:
            raise Refusal(
                "beyond_horizon",
                f"Appointments can be booked at most {business.booking_horizon_days} days ahead, up to "
                f"{horizon.isoformat()}. Ask the customer to write again closer to the date.",
                horizon_days=business.booking_horizon_days,
                last_bookable_day=horizon.isoformat(),
            )
        last = min(last, horizon)
        last = min(last, date_from + timedelta(days=MAX_DAYS_PER_CHECK - 1))
        slots = await free_slots(services, chosen, date_from, last)
        days = slots_by_day(slots, language, business.slot_minutes)
        if not days:
            note = "Nothing is free on those days; these are the next free times."
            after = at_local(last + timedelta(days=1), datetime.min.time(), business.tz)
            days = await alternatives(services, chosen, after, language)
    except Refusal as refusal:
        return refusal.result()
    return ok(
        service=chosen.name,
        duration_minutes=chosen.duration_minutes,
        price_eur=str(chosen.price_eur),
        timezone=business.timezone,
        step_minutes=business.slot_minutes,
        days=days,
        note=note,
    )
