"""Texts that describe calendar facts in words: a reminder, and a Calendly event as the model reads it.

They are produced by the server (reminders, webhooks) and replayed by evaluations, so they live below both.
"""

from __future__ import annotations

from datetime import datetime

from core.business import Business
from core.quoting import data_block
from core.timeutil import describe_day
from prompts import render, render_localized


def local_when(start: datetime, business: Business, language: str | None = None) -> str:
    """'martes 1 de diciembre, 10:30' (or 'Tuesday 1 December, 10:30') in the business timezone."""
    local = start.astimezone(business.tz)
    return f"{describe_day(local.date(), language or business.language)}, {local:%H:%M}"


def reminder_text(
    *, customer_name: str | None, service: str, start: datetime, business: Business, language: str | None = None
) -> str:
    """The reminder sent inside the 24-hour window (outside it the reminder template is used)."""
    chosen = language or business.language
    return render_localized(
        "messages/reminder",
        chosen,
        name=customer_name,
        service=service,
        when=local_when(start, business, chosen),
        business_name=business.name,
    )


def event_when(moment: datetime, business: Business) -> str:
    """'2026-11-26 10:00 (Europe/Madrid)': a moment as a Calendly event's description gives it to the model."""
    local = moment.astimezone(business.tz)
    return f"{local:%Y-%m-%d %H:%M} ({business.timezone})"


# Facts we produce ourselves; everything else about a Calendly event (service or event name, who cancelled and
# why) was typed by someone outside and reaches the model only inside the event's data block.
_OWN_FACTS = ("appointment_id", "when", "old_when")


def calendly_event_description(template: str, **facts: object) -> str:
    """The system-turn text for a Calendly event (prompts/events/<template>.j2), for the model only."""
    own = {key: facts[key] for key in _OWN_FACTS if key in facts}
    data = {key: value for key, value in facts.items() if key not in _OWN_FACTS and value not in (None, "")}
    return render(f"events/{template}.j2", **own, data=data_block(data))
