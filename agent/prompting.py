"""The messages in front of the history: a static prefix (cache-friendly) and the per-turn context after it."""

from __future__ import annotations

from datetime import timedelta

from langchain_core.messages import SystemMessage

from core.business import WEEKDAYS, Business
from core.quoting import data_block
from core.timeutil import WEEKDAYS_ES, describe_day, describe_moment
from prompts import render
from tools.context import ToolContext
from tools.profile import client_snapshot

_RELATIVE_DAYS = ("hoy", "mañana", "pasado mañana")


_PREFIXES: dict[int, tuple[Business, SystemMessage]] = {}


def static_prefix(business: Business) -> SystemMessage:
    """Instructions and business facts: byte-identical for every turn and customer, so providers cache it."""
    cached = _PREFIXES.get(id(business))
    if cached is not None and cached[0] is business:
        return cached[1]
    message = _render_prefix(business)
    _PREFIXES[id(business)] = (business, message)
    return message


def _render_prefix(business: Business) -> SystemMessage:
    hours: dict[str, str] = {}
    for day in WEEKDAYS:
        ranges = business.opening_hours.get(day)
        hours[day] = (
            ", ".join(f"{r.start:%H:%M}-{r.end:%H:%M}" for r in ranges.ranges)
            if ranges and ranges.ranges
            else "cerrado"
        )
    text = render(
        "system.md.j2",
        business=business,
        business_kind="un negocio de servicios con cita previa",
        weekdays=list(zip(WEEKDAYS, (w.capitalize() for w in WEEKDAYS_ES), strict=True)),
        hours=hours,
    )
    return SystemMessage(content=text, id="static-prefix")


async def dynamic_context(ctx: ToolContext) -> SystemMessage:
    """Now, the next days spelled out (so 'mañana' resolves right, DST included), and who the customer is."""
    now = ctx.services.clock.now().astimezone(ctx.services.business.tz)
    today = now.date()
    upcoming = []
    for offset in range(8):
        day = today + timedelta(days=offset)
        label = _RELATIVE_DAYS[offset] if offset < len(_RELATIVE_DAYS) else WEEKDAYS_ES[day.weekday()]
        upcoming.append((label, f"{describe_day(day)} de {day.year} ({day.isoformat()})"))
    client = await client_snapshot(ctx)
    text = render(
        "context.md.j2",
        now_description=describe_moment(now),
        now_iso=now.replace(tzinfo=None).isoformat(timespec="minutes"),
        timezone=ctx.services.business.timezone,
        upcoming_days=upcoming,
        client=client,
        client_data=data_block(_client_facts(client)),
        appointments_data=data_block({"appointments": client["upcoming_appointments"]}),
        language=ctx.turn.language,
        turn=ctx.turn.kind,
    )
    return SystemMessage(content=text, id="turn-context")


def _client_facts(client: dict[str, object]) -> dict[str, object]:
    # Everything here was told by the customer (or their WhatsApp profile): shown as data, preferences as a list.
    preferences = client.get("preferences")
    notes = preferences.get("notes", []) if isinstance(preferences, dict) else []
    return {
        "name": client.get("name"),
        "whatsapp_name": client.get("whatsapp_name"),
        "email": client.get("email"),
        "preferences": [str(note) for note in notes] if isinstance(notes, list) else [],
        "last_visit": client.get("last_visit"),
    }


def event_message(description: str, *, event_id: str | None = None) -> SystemMessage:
    """A calendar event or reminder as it is stored in the customer's thread (same event, same message id)."""
    return SystemMessage(content=render("event.md.j2", description=description), id=event_id)
