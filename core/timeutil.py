"""Dates and times in the business timezone: parsing what the model sends, describing days to people."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

WEEKDAYS_ES = ("lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo")
MONTHS_ES = (
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
WEEKDAYS_EN = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS_EN = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def localize(value: datetime, tz: ZoneInfo) -> datetime:
    """An aware datetime in `tz`. A naive value is a wall-clock time in `tz` (what the model is told to send)."""
    if value.tzinfo is None:
        # fold=0: for the repeated hour when clocks go back, take the first (summer-time) occurrence.
        return value.replace(tzinfo=tz)
    return value.astimezone(tz)


def wall_clock_exists(value: datetime) -> bool:
    """False for a local time skipped when clocks go forward (e.g. 02:30 on the last Sunday of March in Madrid)."""
    round_trip = value.astimezone(UTC).astimezone(value.tzinfo)
    return round_trip.replace(tzinfo=None) == value.replace(tzinfo=None)


def at_local(day: date, clock_time: time, tz: ZoneInfo) -> datetime:
    """The aware moment a wall-clock time happens on a day in `tz`."""
    return datetime.combine(day, clock_time, tzinfo=tz)


def describe_day(day: date, language: str = "es") -> str:
    """'jueves 26 de noviembre' / 'Thursday 26 November'."""
    if language.startswith("en"):
        return f"{WEEKDAYS_EN[day.weekday()]} {day.day} {MONTHS_EN[day.month - 1]}"
    return f"{WEEKDAYS_ES[day.weekday()]} {day.day} de {MONTHS_ES[day.month - 1]}"


def describe_moment(value: datetime, language: str = "es") -> str:
    """'jueves 26 de noviembre a las 10:00' / 'Thursday 26 November at 10:00' (in value's own timezone)."""
    joiner = " at " if language.startswith("en") else " a las "
    return f"{describe_day(value.date(), language)}{joiner}{value:%H:%M}"
