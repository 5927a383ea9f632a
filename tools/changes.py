"""`cancel_appointment` and `reschedule_appointment`: only the customer's own appointments, after their yes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from langchain_core.tools import tool
from langgraph.prebuilt import ToolRuntime
from pydantic import Field

from booking.calendar import CalendarProblem
from booking.validation import SlotChoice, calendar_refusal, check_policy, own_appointment, validate_slot
from core.timeutil import describe_day, localize
from prompts import render_localized
from store.models import Appointment
from tools.context import ToolContext
from tools.recovery import settle_interrupted, settled_change
from tools.results import Refusal, ok


def _local(ctx: ToolContext, appointment: Appointment) -> datetime:
    return appointment.start_at.astimezone(ctx.services.business.tz)


async def _changed(ctx: ToolContext, status: str, appointment: Appointment) -> str:
    """Tell the observer (reminders follow the appointment), then report the change to the model."""
    await ctx.services.notify_changed(appointment)
    start = _local(ctx, appointment)
    return ok(
        status=status,
        appointment_id=appointment.id,
        service=appointment.service,
        day=describe_day(start.date(), ctx.turn.language),
        time=f"{start:%H:%M}",
    )


async def confirm_cancellation(ctx: ToolContext, args: dict[str, object]) -> str:
    """Validate a `cancel_appointment` call and render the question the customer must answer with a yes."""
    await settle_interrupted(ctx)
    appointment, _ = await own_appointment(ctx.services, ctx.turn.wa_id, str(args["appointment_id"]))
    check_policy(ctx.services, appointment)
    start = _local(ctx, appointment)
    return render_localized(
        "confirm/cancel",
        ctx.turn.language,
        service=appointment.service,
        day=describe_day(start.date(), ctx.turn.language),
        time=f"{start:%H:%M}",
    )


@tool
async def cancel_appointment(
    appointment_id: Annotated[
        str, Field(description="Id of one of this customer's appointments (from lookup_client).")
    ],
    runtime: ToolRuntime[ToolContext],
    reason: Annotated[str | None, Field(description="Why, if the customer said.")] = None,
) -> str:
    """Cancel one of the customer's upcoming appointments.

    The system asks the customer to confirm before cancelling; do not ask yourself. Only appointments of the
    customer in this chat can be cancelled.
    """
    ctx = runtime.context
    # A crash may have cut this very call off after the calendar cancelled: settle that first (tools.recovery).
    done = settled_change(await settle_interrupted(ctx), status="cancelled", appointment_id=appointment_id.strip())
    if done is not None:
        return await _changed(ctx, "cancelled", done)
    try:
        appointment, _ = await own_appointment(ctx.services, ctx.turn.wa_id, appointment_id)
        check_policy(ctx.services, appointment)
        cancelled = await ctx.services.calendar.cancel(appointment, reason)
    except Refusal as refusal:
        return refusal.result()
    except CalendarProblem as exc:
        retry = {} if exc.retry_after_seconds is None else {"retry_after_seconds": exc.retry_after_seconds}
        return Refusal(exc.code, exc.message, **exc.details, **retry).result()
    return await _changed(ctx, "cancelled", cancelled)


async def _validate_move(
    ctx: ToolContext, appointment_id: str, new_start_time: datetime
) -> tuple[Appointment, SlotChoice]:
    """The customer's own appointment, movable under the policy, and a new time valid exactly as a booking's would
    be (hours, grid, horizon...), its own seats aside. Runs before the question, so nothing is put to the customer
    that would be refused after their yes."""
    appointment, _ = await own_appointment(ctx.services, ctx.turn.wa_id, appointment_id)
    check_policy(ctx.services, appointment)
    # Before the slot check: the calendar may not list the appointment's own time as free, which would read as
    # "taken" when the real answer is that nothing would change.
    if localize(new_start_time, ctx.services.business.tz) == appointment.start_at:
        raise Refusal("same_time", "The appointment is already at that time.")
    choice = await validate_slot(
        ctx.services, appointment.service, new_start_time, moving=appointment, language=ctx.turn.language
    )
    return appointment, choice


async def confirm_reschedule(ctx: ToolContext, args: dict[str, object]) -> str:
    """Validate a `reschedule_appointment` call and render the question the customer must answer with a yes."""
    await settle_interrupted(ctx)
    new_start = args["new_start_time"]
    appointment, choice = await _validate_move(
        ctx,
        str(args["appointment_id"]),
        new_start if isinstance(new_start, datetime) else datetime.fromisoformat(str(new_start)),
    )
    old = _local(ctx, appointment)
    return render_localized(
        "confirm/reschedule",
        ctx.turn.language,
        service=appointment.service,
        old_day=describe_day(old.date(), ctx.turn.language),
        old_time=f"{old:%H:%M}",
        day=describe_day(choice.start.date(), ctx.turn.language),
        time=f"{choice.start:%H:%M}",
    )


@tool
async def reschedule_appointment(
    appointment_id: Annotated[
        str, Field(description="Id of one of this customer's appointments (from lookup_client).")
    ],
    new_start_time: Annotated[
        datetime, Field(description="New local start time in the business timezone, ISO 8601 without offset.")
    ],
    runtime: ToolRuntime[ToolContext],
) -> str:
    """Move one of the customer's upcoming appointments to a new free start time (same service).

    The system asks the customer to confirm before moving it; do not ask yourself.
    """
    ctx = runtime.context
    # A crash may have cut this very call off after the calendar moved it: settle that first (tools.recovery).
    settled = await settle_interrupted(ctx)
    start = localize(new_start_time, ctx.services.business.tz)
    done = settled_change(settled, status="confirmed", appointment_id=appointment_id.strip(), start=start)
    if done is not None:
        return await _changed(ctx, "rescheduled", done)
    try:
        appointment, choice = await _validate_move(ctx, appointment_id, new_start_time)
    except Refusal as refusal:
        return refusal.result()
    try:
        moved = await ctx.services.calendar.reschedule(appointment, choice.service, choice.start)
    except CalendarProblem as exc:
        return await calendar_refusal(
            ctx.services, exc, choice.service, choice.start, ctx.turn.language, moving=appointment
        )
    return await _changed(ctx, "rescheduled", moved)
