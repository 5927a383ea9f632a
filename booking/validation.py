"""The booking rules checked before anything changes: which service, which slot, whose appointment. Each failure
is a refusal the model can act on, with alternatives; none reveals another customer's data."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from booking.availability import alternatives, free_slots, resolve_service
from booking.calendar import CalendarProblem
from booking.desk import Desk
from booking.refusal import Refusal, problem
from core.business import Service
from core.timeutil import localize
from store.models import Appointment, Client

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


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
    """The service exists and the start time is in the future, inside opening hours and free."""
    service = resolve_service(ctx.business, service_name)
    start = localize(start_time, ctx.business.tz)
    now = ctx.clock.now()
    if start <= now:
        raise Refusal(
            "past_time",
            f"{start:%Y-%m-%d %H:%M} is in the past (now it is {now.astimezone(ctx.business.tz):%Y-%m-%d %H:%M}).",
            alternatives=await alternatives(ctx, service, now.astimezone(ctx.business.tz), language),
        )
    day = start.date()
    free = {s.start for s in await free_slots(ctx, service, day, day)}
    if start in free:
        return SlotChoice(service, start)
    if (
        moving is not None
        and moving.start_at < start + timedelta(minutes=service.duration_minutes)
        and moving.end_at > start
    ):
        # Overlaps the appointment being moved, whose own seat is released by the move itself: let the calendar decide.
        return SlotChoice(service, start)
    if not ctx.business.hours_on(day):
        code, message = "closed", f"The business is closed on {day.isoformat()}."
    elif not any(
        r.start <= start.time() and (start + timedelta(minutes=service.duration_minutes)).time() <= r.end
        for r in ctx.business.hours_on(day)
    ):
        code, message = "outside_hours", "That time is outside opening hours (or the service would not finish in time)."
    else:
        code, message = "slot_taken", "That time is not free."
    raise Refusal(
        code,
        message + " Offer these free times instead.",
        alternatives=await alternatives(ctx, service, start, language),
    )


async def calendar_refusal(ctx: Desk, exc: CalendarProblem, service: Service, around: datetime, language: str) -> str:
    """A calendar's own refusal as a result for the model; a taken slot comes with the nearest free times."""
    fields: dict[str, object] = dict(exc.details)
    if exc.retry_after_seconds is not None:
        fields["retry_after_seconds"] = exc.retry_after_seconds
    if exc.code == "slot_taken":
        try:
            fields["alternatives"] = await alternatives(ctx, service, around, language)
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
