"""Texts the server produces itself (reminders, the rate-limit notice, staff alerts) and event descriptions.

The agent phrases everything else; these few texts must go out even when no model is involved, in the business
customer's language (the business's when we do not know it). The wording lives in prompts/messages and
prompts/events; this module fills in the facts.
"""

from __future__ import annotations

from datetime import datetime

from core.addresses import phone_of
from core.business import Business
from core.quoting import data_block, one_line
from core.timeutil import describe_day
from prompts import render, render_localized

# Stands in for a name we do not know in template variables, which may be neither empty nor multi-line.
NO_NAME = "-"


def staff_alert_variables(who: str, name: str | None, reason: str, *, limit: int = 1000) -> dict[str, str]:
    """ContentVariables for the staff-alert template: {{1}} who, {{2}} their name, {{3}} the reason.

    Twilio refuses empty or multi-line variables, so each is one line and an unknown value is a neutral word.
    """
    return {"1": who, "2": one_line(name or "") or NO_NAME, "3": one_line(reason, limit=limit) or NO_NAME}


def local_when(start: datetime, business: Business, language: str | None = None) -> str:
    """'martes 1 de diciembre, 10:30' (or 'Tuesday 1 December, 10:30') in the business timezone."""
    local = start.astimezone(business.tz)
    return f"{describe_day(local.date(), language or business.language)}, {local:%H:%M}"


def template_variables(
    *, customer_name: str | None, service: str, start: datetime, business: Business
) -> dict[str, str]:
    """ContentVariables for the confirmation, cancellation and reminder templates.

    Every template is expected to use the same placeholders: {{1}} customer name, {{2}} service, {{3}} date
    (dd/mm/yyyy) and {{4}} time (HH:MM), both local to the business.
    """
    local = start.astimezone(business.tz)
    # Twilio refuses a template with an empty variable (error 21656), so an unknown name is a neutral word.
    return {
        "1": one_line(customer_name or "") or NO_NAME,
        "2": one_line(service),
        "3": f"{local:%d/%m/%Y}",
        "4": f"{local:%H:%M}",
    }


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


def rate_limit_notice(business: Business, language: str | None = None) -> str:
    """The one notice a customer gets when writing faster than the per-minute limit."""
    return render_localized("messages/rate_limit", language or business.language)


def staff_handoff_alert(*, wa_id: str, customer_name: str | None, reason: str, business: Business) -> str:
    """What the staff number receives when the assistant hands a conversation over."""
    return render_localized(
        "messages/staff_handoff",
        business.language,
        wa_id=wa_id,
        customer=phone_of(wa_id),
        name=customer_name,
        reason=reason,
    )


# Facts we produce ourselves; everything else about a Calendly event (service or event name, who cancelled and
# why) was typed by someone outside and reaches the model only inside the event's data block.
_OWN_FACTS = ("appointment_id", "when", "old_when")


def calendly_event_description(template: str, **facts: object) -> str:
    """The system-turn text for a Calendly event (prompts/events/<template>.j2), for the model only."""
    own = {key: facts[key] for key in _OWN_FACTS if key in facts}
    data = {key: value for key, value in facts.items() if key not in _OWN_FACTS and value not in (None, "")}
    return render(f"events/{template}.j2", **own, data=data_block(data))
