"""Customer-facing wording the server produces itself (reminders, the rate-limit notice) and event descriptions.

The agent phrases everything else; these few texts must go out even when no model is involved, in the business
language (Spanish by default, English otherwise).
"""

from __future__ import annotations

from datetime import datetime

from core.business import Business

_WEEKDAYS_ES = ("lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo")
_MONTHS_ES = (
    "enero",
    "febrero",
    "marzo",
    "abril",
    "mayo",
    "junio",
    "julio",
    "agosto",
    "septiembre",
    "octubre",
    "noviembre",
    "diciembre",
)


def _spanish(business: Business) -> bool:
    return business.language.lower().startswith("es")


def local_when(start: datetime, business: Business) -> str:
    """'martes 1 de diciembre, 10:30' (or 'Tuesday 1 December, 10:30') in the business timezone."""
    local = start.astimezone(business.tz)
    if _spanish(business):
        return f"{_WEEKDAYS_ES[local.weekday()]} {local.day} de {_MONTHS_ES[local.month - 1]}, {local:%H:%M}"
    return f"{local:%A} {local.day} {local:%B}, {local:%H:%M}"


def template_variables(
    *, customer_name: str | None, service: str, start: datetime, business: Business
) -> dict[str, str]:
    """ContentVariables for the confirmation, cancellation and reminder templates.

    Every template is expected to use the same placeholders: {{1}} customer name, {{2}} service, {{3}} date
    (dd/mm/yyyy) and {{4}} time (HH:MM), both local to the business.
    """
    local = start.astimezone(business.tz)
    return {"1": customer_name or "", "2": service, "3": f"{local:%d/%m/%Y}", "4": f"{local:%H:%M}"}


def reminder_text(*, customer_name: str | None, service: str, start: datetime, business: Business) -> str:
    """The reminder sent inside the 24-hour window (outside it the reminder template is used)."""
    when = local_when(start, business)
    if _spanish(business):
        greeting = f"Hola {customer_name}" if customer_name else "Hola"
        return (
            f"{greeting}, te recordamos tu cita de {service} el {when} en {business.name}. "
            "Si no puedes venir, respóndenos a este mensaje."
        )
    greeting = f"Hi {customer_name}" if customer_name else "Hi"
    return (
        f"{greeting}, this is a reminder of your {service} appointment on {when} at {business.name}. "
        "If you cannot make it, just reply to this message."
    )


def rate_limit_notice(business: Business) -> str:
    """The one notice a customer gets when writing faster than the per-minute limit."""
    if _spanish(business):
        return "Estás enviando muchos mensajes seguidos. Espera un minuto y te respondemos."
    return "You are sending many messages in a row. Please wait a minute and we will get back to you."
