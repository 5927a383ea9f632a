"""Expected failures of the booking domain (slot taken, unknown service, too late to cancel...) as values."""

from __future__ import annotations

import json
import math
from typing import Any, Final


def problem(code: str, message: str, **fields: Any) -> str:
    """An expected refusal as JSON (code, message, and alternatives or facts the reader can act on)."""
    return json.dumps({"ok": False, "error": code, "message": message, **fields}, ensure_ascii=False, default=str)


class Refusal(Exception):
    """Raised for an expected failure; the tools turn it into a `problem(...)` result the model reads."""

    def __init__(self, code: str, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.fields = fields

    def result(self) -> str:
        """The refusal as JSON (what the model sees)."""
        return problem(self.code, self.message, **self.fields)


# The calendar refused for a while (e.g. Calendly answered 429 with a long reset): distinct from every refusal about
# the request itself, since the same request will succeed later.
CALENDAR_BUSY: Final = "rate_limited"


def calendar_busy_message(retry_after_seconds: float) -> str:
    """What the model reads when the calendar turns requests away for `retry_after_seconds`: nothing was done, the
    customer should write again shortly, and the model must not retry on its own (each retry would be refused too,
    and a booking would put the question to the customer again)."""
    when = _in_about(retry_after_seconds)
    return (
        "The booking system is receiving too many requests and turned this one away; nothing was booked, changed "
        f"or checked. It accepts requests again {when}. Do not call the tool again in this turn: tell the customer "
        f"that the booking system is busy right now and to write again {when}; offer the business's phone if they "
        "cannot wait."
    )


def _in_about(seconds: float) -> str:
    if seconds <= 60:
        return "in a minute"
    if seconds < 3600:
        return f"in about {math.ceil(seconds / 60)} minutes"
    hours = math.ceil(seconds / 3600)
    return f"in about {hours} hour{'s' if hours > 1 else ''}"
