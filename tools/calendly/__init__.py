"""Calendly API v2: the HTTP client and the calendar built on it."""

from tools.calendly.calendar import CalendlyCalendar
from tools.calendly.client import CalendlyClient
from tools.calendly.models import (
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
