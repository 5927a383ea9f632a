"""Calendly API v2: the HTTP client, its models, webhook bodies and signature, the subscription, the calendar."""

from integrations.calendly.calendar import CalendlyCalendar
from integrations.calendly.client import CalendlyClient
from integrations.calendly.models import (
    CalendlyApiError,
    CalendlyError,
    CalendlyRateLimited,
    CalendlyUnavailable,
)

__all__ = [
    "CalendlyApiError",
    "CalendlyCalendar",
    "CalendlyClient",
    "CalendlyError",
    "CalendlyRateLimited",
    "CalendlyUnavailable",
]
