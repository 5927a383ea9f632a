"""`book_appointment`: validated before the customer is asked, executed only after their yes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from langchain_core.tools import tool
from langgraph.prebuilt import ToolRuntime
from pydantic import Field

from booking.calendar import BookingRequest, CalendarProblem, Customer
from booking.validation import SlotChoice, calendar_refusal, validate_email, validate_slot
from core.timeutil import describe_day, localize
from prompts import render_localized
from store.models import Appointment
from tools.context import ToolContext
from tools.recovery import settle_interrupted, settled_change
from tools.results import Refusal, ok


async def _validate(
    ctx: ToolContext, service: str, start_time: datetime, customer_email: str | None
) -> tuple[SlotChoice, str | None]:
    choice = await validate_slot(ctx.services, service, start_time, language=ctx.turn.language)
    email = validate_email(customer_email)
    if email is None:
        client = await ctx.services.clients.get(ctx.turn.wa_id)
        email = client.email if client else None
    if ctx.services.calendar.kind == "calendly" and email is None:
        raise Refusal(
            "needs_email",
            "The booking system needs the customer's email once (it is remembered). Ask for it, then book again.",
        )
    return choice, email


def _settled_booking(ctx: ToolContext, settled: list[Appointment], service: str, start: datetime) -> Appointment | None:
    """The booking asked for, if settling an earlier, cut-off attempt just stored it."""
    found = ctx.services.business.find_service(service)
    if found is None:
        return None
    local = localize(start, ctx.services.business.tz)
    return settled_change(settled, status="confirmed", service=found.name, start=local)


async def confirm_booking(ctx: ToolContext, args: dict[str, object]) -> str:
    """Validate a `book_appointment` call and render the question the customer must answer with a yes."""
    start = _as_datetime(args["start_time"])
    held = _settled_booking(ctx, await settle_interrupted(ctx), str(args["service"]), start)
    if held is not None:
        raise Refusal(
            "already_booked",
            "An earlier attempt at this booking did go through after all: the customer already has this "
            "appointment, so there is nothing to confirm. Tell them it is booked.",
            appointment_id=held.id,
        )
    choice, _ = await _validate(ctx, str(args["service"]), start, _opt(args.get("customer_email")))
    return render_localized(
        "confirm/book",
        ctx.turn.language,
        service=choice.service.name,
        day=describe_day(choice.start.date(), ctx.turn.language),
        time=f"{choice.start:%H:%M}",
        duration=choice.service.duration_minutes,
        price=choice.service.price_eur,
        address=ctx.services.business.address,
    )


@tool
async def book_appointment(
    service: Annotated[str, Field(description="Service name, e.g. 'Corte y Peinado'.")],
    start_time: Annotated[
        datetime, Field(description="Local start time in the business timezone, ISO 8601 without offset.")
    ],
    runtime: ToolRuntime[ToolContext],
    customer_name: Annotated[str | None, Field(description="Name to book under, if the customer gave one.")] = None,
    customer_email: Annotated[str | None, Field(description="Customer's email, if they gave one.")] = None,
    notes: Annotated[str | None, Field(description="Anything the stylist should know.")] = None,
) -> str:
    """Book an appointment for the customer in this chat at an exact free start time.

    Call it as soon as the customer has chosen a service and a time: the system itself asks the customer to
    confirm before anything is booked, so do not ask for confirmation yourself. Returns the appointment id.
    """
    ctx = runtime.context
    # The same confirmed call never books twice, even if this node runs again after a crash. Look it up before
    # validating: once booked, the slot is (rightly) no longer free.
    key = f"{ctx.turn.wa_id}:{runtime.tool_call_id}"
    appointment = await ctx.services.appointments.by_idempotency_key(key)
    if appointment is None:
        # A crash may have cut this very call off after the calendar booked: settle that first, or the customer's
        # own booking would read as a taken slot.
        settled = await settle_interrupted(ctx)
        appointment = await ctx.services.appointments.by_idempotency_key(key)
        appointment = appointment or _settled_booking(ctx, settled, service, start_time)
    if appointment is None:
        try:
            choice, email = await _validate(ctx, service, start_time, customer_email)
        except Refusal as refusal:
            return refusal.result()
        client = await ctx.services.clients.update_profile(
            ctx.turn.wa_id, now=ctx.services.clock.now(), name=customer_name, email=email
        )
        customer = Customer(ctx.turn.wa_id, client.id, client.display_name, email)
        try:
            appointment = await ctx.services.calendar.book(
                BookingRequest(choice.service, choice.start, customer, notes=notes, idempotency_key=key)
            )
        except CalendarProblem as exc:
            return await calendar_refusal(ctx.services, exc, choice.service, choice.start, ctx.turn.language)
        await ctx.services.notify_changed(appointment)
        # Booked for this WhatsApp number with this e-mail: Calendly bookings with it may now find this customer.
        await ctx.services.clients.prove_email(client.id, email, source="agent_booking", now=ctx.services.clock.now())
    local = appointment.start_at.astimezone(ctx.services.business.tz)
    return ok(
        status="booked",
        appointment_id=appointment.id,
        service=appointment.service,
        start_time=local.replace(tzinfo=None).isoformat(timespec="minutes"),
        day=describe_day(local.date(), ctx.turn.language),
        price_eur=str(appointment.price_eur) if appointment.price_eur is not None else None,
    )


def _as_datetime(value: object) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def _opt(value: object) -> str | None:
    return None if value is None else str(value)
