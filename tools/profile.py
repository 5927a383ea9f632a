"""`lookup_client`: what we know about the customer in this chat, and their upcoming appointments."""

from __future__ import annotations

from langchain_core.tools import tool
from langgraph.prebuilt import ToolRuntime

from tools.context import Context
from tools.results import ok
from tools.timeutil import describe_day


async def client_snapshot(ctx: Context) -> dict[str, object]:
    """Profile and upcoming appointments of the customer in the channel (also shown to the model every turn)."""
    client = await ctx.clients.get(ctx.wa_id)
    if client is None:
        return {"known": False, "whatsapp_name": ctx.profile_name, "upcoming_appointments": []}
    upcoming = await ctx.appointments.for_client(client.id, after=ctx.clock.now())
    tz = ctx.business.tz
    return {
        "known": True,
        "name": client.name,
        "whatsapp_name": client.profile_name or ctx.profile_name,
        "email": client.email,
        "language": client.language,
        "preferences": client.preferences,
        "last_visit": client.last_visit_at.astimezone(tz).date().isoformat() if client.last_visit_at else None,
        "upcoming_appointments": [
            {
                "appointment_id": a.id,
                "service": a.service,
                "start_time": a.start_at.astimezone(tz).replace(tzinfo=None).isoformat(timespec="minutes"),
                "day": describe_day(a.start_at.astimezone(tz).date(), ctx.language),
            }
            for a in upcoming
        ],
    }


@tool
async def lookup_client(runtime: ToolRuntime[Context]) -> str:
    """Look up the customer writing in this chat: name, email, preferences and upcoming appointments (with ids).

    Use it before cancelling or moving an appointment, to get the right appointment id.
    """
    return ok(**await client_snapshot(runtime.context))
