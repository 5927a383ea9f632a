"""WhatsApp addresses ('whatsapp:+34600123456') and the E.164 numbers inside them."""

from __future__ import annotations

import re

PREFIX = "whatsapp:"
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def phone_of(wa_id: str) -> str:
    """The number inside a WhatsApp address ('whatsapp:+34600123456' -> '+34600123456')."""
    return wa_id.removeprefix(PREFIX)


def as_whatsapp_address(number: str) -> str:
    """A configured sender or staff number ('+34600...' or 'whatsapp:+34600...') as a WhatsApp address."""
    number = number.strip()
    return number if number.startswith(PREFIX) else PREFIX + number


def parse_whatsapp_address(value: str, *, require_plus: bool = True) -> str:
    """Validate a number or WhatsApp address typed by a person; ValueError unless it is E.164.

    With `require_plus=False` a bare '34600123456' is read as '+34600123456'.
    """
    number = value.strip().removeprefix(PREFIX)
    if not require_plus and not number.startswith("+"):
        number = "+" + number
    if not _E164.match(number):
        raise ValueError("must be an E.164 phone number such as +34600123456")
    return PREFIX + number
