"""Cleaning what webhooks deliver before it is parsed and stored."""

from __future__ import annotations

from typing import Any

# Calendly's bodies nest about six levels and Twilio's forms are flat; anything far deeper is refused before it
# reaches code (validation, serialisation for storage) that recurses once per level and could exhaust the stack.
MAX_DEPTH = 64


class TooDeep(ValueError):
    """A body nested deeper than MAX_DEPTH."""


def without_nul(value: Any, *, _depth: int = 0) -> Any:
    """`value` (a form or parsed JSON) with NUL characters removed from every string, keys included.

    Senders type whatever they like and a signed "\\u0000" is genuine, but PostgreSQL text and jsonb cannot hold
    NUL (psycopg raises), and no reader of a message needs one. Signatures are checked on the untouched body
    first; this is for what is parsed and stored afterwards. Raises `TooDeep`.
    """
    if _depth > MAX_DEPTH:
        raise TooDeep(f"body nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, list):
        return [without_nul(item, _depth=_depth + 1) for item in value]
    if isinstance(value, dict):
        return {
            without_nul(key, _depth=_depth + 1): without_nul(item, _depth=_depth + 1) for key, item in value.items()
        }
    return value
