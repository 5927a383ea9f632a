"""Texts the server produces itself (reminders, the rate-limit notice, staff alerts) and event descriptions.

The agent phrases everything else; these few texts must go out even when no model is involved, in the business
customer's language (the business's when we do not know it). The wording lives in prompts/messages and
prompts/events; this module fills in the facts.

reminder_text, local_when and calendly_event_description live in agent/event_texts.py (evaluations use them too).
"""

from __future__ import annotations

from datetime import datetime

from core.addresses import phone_of
from core.business import Business
from core.quoting import one_line
from prompts import render_localized

# Stands in for a name we do not know in template variables, which may be neither empty nor multi-line.
NO_NAME = "-"


def staff_alert_variables(who: str, name: str | None, reason: str, *, limit: int = 1000) -> dict[str, str]:
    """ContentVariables for the staff-alert template: {{1}} who, {{2}} their name, {{3}} the reason.

    Twilio refuses empty or multi-line variables, so each is one line and an unknown value is a neutral word.
    """
    return {"1": who, "2": one_line(name or "") or NO_NAME, "3": one_line(reason, limit=limit) or NO_NAME}


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
