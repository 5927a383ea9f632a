"""Cleaning what webhooks deliver before it is parsed and stored."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

# Calendly's bodies nest about six levels and Twilio's forms are flat; anything far deeper is refused before it
# reaches code (validation, serialisation for storage) that recurses once per level and could exhaust the stack.
MAX_DEPTH = 64
# JSON's \u escapes can spell half of a UTF-16 surrogate pair on its own ("\ud800"); Python keeps it in the str
# (a well-formed pair becomes one character), but UTF-8 cannot encode it: SQLite, psycopg and every JSON response
# raise on it. What is left in this range after parsing is unpaired.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
REPLACEMENT = "\ufffd"


class TooDeep(ValueError):
    """A body nested deeper than MAX_DEPTH."""


def _each_string(value: Any, clean: Callable[[str], str], depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise TooDeep(f"body nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, list):
        return [_each_string(item, clean, depth + 1) for item in value]
    if isinstance(value, dict):
        return {_each_string(k, clean, depth + 1): _each_string(v, clean, depth + 1) for k, v in value.items()}
    return value


def without_nul(value: Any) -> Any:
    """`value` (a form or parsed JSON) with NUL characters removed from every string, keys included.

    Senders type whatever they like and a signed "\\u0000" is genuine, but PostgreSQL text and jsonb cannot hold
    NUL (psycopg raises), and no reader of a message needs one. Signatures are checked on the untouched body
    first; this is for what is parsed and stored afterwards. Raises `TooDeep`.
    """
    return _each_string(value, lambda text: text.replace("\x00", ""), 0)


def storable_text(text: str) -> str:
    """`text` as any database or JSON answer can hold it: NUL removed, unpaired surrogates replaced by U+FFFD."""
    return _LONE_SURROGATE.sub(REPLACEMENT, text.replace("\x00", ""))


def storable(value: Any) -> Any:
    """Parsed JSON with every string (keys included) made `storable_text`: what a signed third-party body holds
    is kept, minus the characters no column or encoder accepts. Raises `TooDeep`."""
    return _each_string(value, storable_text, 0)


def unstorable_characters(text: str) -> bool:
    """Whether `text` holds a NUL or an unpaired surrogate (for input a caller can correct, refused instead)."""
    return "\x00" in text or _LONE_SURROGATE.search(text) is not None
