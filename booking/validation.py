"""The booking rules checked before anything changes: which service, which slot, whose appointment. Each failure
is a refusal the model can act on, with alternatives; none reveals another customer's data."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from booking.availability import (
    alternatives,
    free_slots,
    last_bookable_day,
    latest_alternatives,
    resolve_service,
)
from booking.calendar import CalendarProblem
from booking.desk import Desk
from booking.refusal import Refusal, problem
from core.business import Business, Service
from core.timeutil import at_local, describe_day, localize
from store.models import Appointment, Client

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_Fields = dict[str, object]


@dataclass(frozen=True)
class SlotChoice:
    """A validated service and start time."""

    service: Service
    start: datetime

    @property
    def end(self) -> datetime:
        """When the service would end."""
        return self.start + timedelta(minutes=self.service.duration_minutes)


async def validate_slot(
    ctx: Desk, service_name: str, start_time: datetime, *, language: str, moving: Appointment | None = None
) -> SlotChoice:
    """The service exists and the start time is in the future, within the booking horizon, on the slot grid, inside
    opening hours and free. A refusal names the real reason and offers free times instead.

    With `moving` (a reschedule) every rule holds the same; only "free" counts the appointment's own seats as
    available where the calendar releases them in the move.
    """
    service = resolve_service(ctx.business, service_name)
    tz = ctx.business.tz
    start = localize(start_time, tz)
    now = ctx.clock.now().astimezone(tz)
    if start <= now:
        raise Refusal(
            "past_time",
            f"{start:%Y-%m-%d %H:%M} is in the past (now it is {now:%Y-%m-%d %H:%M}).",
            alternatives=await alternatives(ctx, service, now, language, moving=moving),
        )
    last_day = last_bookable_day(ctx)
    if start.date() > last_day:
        # Checked before asking the calendar: nothing beyond the horizon is bookable, whatever the calendar says.
        raise Refusal(
            "beyond_horizon",
            f"Appointments can be booked at most {ctx.business.booking_horizon_days} days ahead, up to "
            f"{describe_day(last_day, language)} ({last_day.isoformat()}). Offer these times, or ask the customer "
            "to write again closer to the date.",
            horizon_days=ctx.business.booking_horizon_days,
            last_bookable_day=last_day.isoformat(),
            alternatives=await latest_alternatives(ctx, service, start.time(), language, moving=moving),
        )
    day = start.date()
    # The calendar is asked first: what it offers is bookable. Only a time it does not offer is explained from
    # the business's rules, so a valid time costs one calendar read, as it always has.
    if start in {s.start for s in await free_slots(ctx, service, day, day, moving=moving)}:
        return SlotChoice(service, start)
    code, message, fields = _why_not(ctx.business, service, start, language)
    raise Refusal(
        code,
        message + " Offer these free times instead.",
        **fields,
        alternatives=await alternatives(ctx, service, start, language, moving=moving),
    )


def _why_not(business: Business, service: Service, start: datetime, language: str) -> tuple[str, str, _Fields]:
    """Why a start time the calendar does not offer cannot be booked: the first business rule it breaks (closed
    day, opening hours, slot grid), or else that it is taken."""
    day, tz = start.date(), business.tz
    hours = business.hours_on(day)
    if not hours:
        why = "it is a closed date (holiday)" if day in business.closed_dates else "it does not open that day"
        return "closed", f"The business is closed on {describe_day(day, language)} ({day.isoformat()}): {why}.", {}
    end = start + timedelta(minutes=service.duration_minutes)
    opening = [f"{r.start:%H:%M}-{r.end:%H:%M}" for r in hours]
    inside = next((r for r in hours if at_local(day, r.start, tz) <= start < at_local(day, r.end, tz)), None)
    if inside is None:
        return (
            "outside_hours",
            f"{start:%H:%M} is outside opening hours on {describe_day(day, language)}.",
            {"opening_hours": opening},
        )
    close = at_local(day, inside.end, tz)
    if end > close:
        return (
            "outside_hours",
            f"{service.name} takes {service.duration_minutes} minutes: starting at {start:%H:%M} it would end at "
            f"{end:%H:%M}, after {inside.end:%H:%M} (closing or the break).",
            {"opening_hours": opening, "duration_minutes": service.duration_minutes},
        )
    # The grid runs from each opening in wall-clock steps (as the local calendar walks it, DST days included).
    offset = (start.hour * 60 + start.minute) - (inside.start.hour * 60 + inside.start.minute)
    if offset % business.slot_minutes or start.second or start.microsecond:
        return (
            "off_grid",
            f"Appointments start every {business.slot_minutes} minutes from {inside.start:%H:%M}; {start:%H:%M} is "
            "not a start time.",
            {"step_minutes": business.slot_minutes},
        )
    return "slot_taken", "That time is not free.", {}


async def calendar_refusal(
    ctx: Desk,
    exc: CalendarProblem,
    service: Service,
    around: datetime,
    language: str,
    *,
    moving: Appointment | None = None,
) -> str:
    """A calendar's own refusal as a result for the model; a taken slot comes with the nearest free times (for a
    refused move, the times that appointment could still be moved to)."""
    fields: _Fields = dict(exc.details)
    if exc.retry_after_seconds is not None:
        fields["retry_after_seconds"] = exc.retry_after_seconds
    if exc.code == "slot_taken":
        try:
            fields["alternatives"] = await alternatives(ctx, service, around, language, moving=moving)
        except Refusal:
            fields["alternatives"] = []  # the calendar cannot be read right now; the refusal still stands
    return problem(exc.code, exc.message, **fields)


def validate_email(email: str | None) -> str | None:
    """A plausible email address, or a refusal asking for a correct one."""
    if email is None or not email.strip():
        return None
    email = email.strip()
    if not _EMAIL.match(email):
        raise Refusal("invalid_email", f"{email!r} does not look like an email address; ask the customer again.")
    return email


async def own_appointment(ctx: Desk, wa_id: str, appointment_id: str) -> tuple[Appointment, Client]:
    """The appointment, only if it belongs to the customer at `wa_id` and is still confirmed and upcoming."""
    client = await ctx.clients.get(wa_id)
    appointment = await ctx.appointments.get(appointment_id.strip())
    if client is None or appointment is None or appointment.client_id != client.id:
        # Same answer whether the id does not exist or is someone else's: never confirm another customer's data.
        raise Refusal(
            "not_found",
            f"This customer has no appointment with id {appointment_id!r}. "
            "Call lookup_client to list their appointments.",
        )
    if appointment.status != "confirmed":
        raise Refusal("already_cancelled", "That appointment is already cancelled.")
    if appointment.start_at <= ctx.clock.now():
        raise Refusal("past_appointment", "That appointment has already started or passed.")
    return appointment, client


def check_policy(ctx: Desk, appointment: Appointment) -> None:
    """Refuse changes closer to the appointment than the cancellation policy allows."""
    policy = ctx.business.cancellation_policy
    if appointment.start_at - ctx.clock.now() < timedelta(hours=policy.min_hours_before):
        raise Refusal(
            "too_late",
            f"Changes are only possible up to {policy.min_hours_before:g} hours before. {policy.text}".strip(),
            business_phone=ctx.business.phone,
        )
