"""`lookup_client`: what we know about the customer in this chat, and their upcoming appointments."""

from __future__ import annotations

from typing import Annotated

from langchain_core.tools import tool
from langgraph.prebuilt import ToolRuntime
from pydantic import Field

from booking.validation import validate_email
from core.timeutil import describe_day
from tools.context import ToolContext
from tools.results import Refusal, ok


async def client_snapshot(ctx: ToolContext) -> dict[str, object]:
    """Profile and upcoming appointments of the customer in the channel (also shown to the model every turn)."""
    client = await ctx.services.clients.get(ctx.turn.wa_id)
    if client is None:
        return {"known": False, "whatsapp_name": ctx.turn.profile_name, "upcoming_appointments": []}
    upcoming = await ctx.services.appointments.for_client(client.id, after=ctx.services.clock.now())
    last_visit = client.last_visit_at or await ctx.services.appointments.last_visit(
        client.id, before=ctx.services.clock.now()
    )
    tz = ctx.services.business.tz
    return {
        "known": True,
        "name": client.name,
        "whatsapp_name": client.profile_name or ctx.turn.profile_name,
        "email": client.email,
        "language": client.language,
        "preferences": client.preferences,
        "last_visit": last_visit.astimezone(tz).date().isoformat() if last_visit else None,
        "upcoming_appointments": [
            {
                "appointment_id": a.id,
                "service": a.service,
                "start_time": a.start_at.astimezone(tz).replace(tzinfo=None).isoformat(timespec="minutes"),
                "day": describe_day(a.start_at.astimezone(tz).date(), ctx.turn.language),
            }
            for a in upcoming
        ],
    }


@tool
async def remember_client_details(
    runtime: ToolRuntime[ToolContext],
    name: Annotated[str | None, Field(description="The name the customer wants to be called.")] = None,
    email: Annotated[str | None, Field(description="The customer's email address.")] = None,
    preference: Annotated[
        str | None, Field(description="A lasting preference to remember, e.g. 'prefers Lucía as stylist'.")
    ] = None,
) -> str:
    """Remember something the customer told you about themselves (name, email, a lasting preference).

    It is stored in their profile and shown to you in future conversations.
    """
    ctx = runtime.context
    try:
        checked_email = validate_email(email)
    except Refusal as refusal:
        return refusal.result()
    current = await ctx.services.clients.get(ctx.turn.wa_id)
    notes = list(current.preferences.get("notes", [])) if current else []
    if preference and preference.strip() and preference.strip() not in notes:
        notes = [*notes, preference.strip()][-10:]  # a short list: the newest ten preferences
    client = await ctx.services.clients.update_profile(
        ctx.turn.wa_id,
        now=ctx.services.clock.now(),
        name=name,
        email=checked_email,
        preferences={"notes": notes} if notes else None,
    )
    return ok(status="saved", name=client.name, email=client.email, preferences=client.preferences)


@tool
async def lookup_client(runtime: ToolRuntime[ToolContext]) -> str:
    """Look up the customer writing in this chat: name, email, preferences and upcoming appointments (with ids).

    Use it before cancelling or moving an appointment, to get the right appointment id.
    """
    return ok(**await client_snapshot(runtime.context))
