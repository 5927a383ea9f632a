"""Untrusted text (customer names and notes, Calendly fields) made safe to show a model: data, never instructions.

Such text is rendered only inside a JSON data block: one line per value (newlines and control characters become
spaces), capped in length, and with `<` and `>` escaped so that nothing inside can close the block or imitate a
heading or tag of ours. The prompt tells the model that data blocks are facts written by others.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Mapping

MAX_CHARS = 200
# Control and format characters, line and paragraph separators: each becomes a space.
_NEUTRALISED = {"Cc", "Cf", "Zl", "Zp"}


def one_line(text: str, *, limit: int = MAX_CHARS) -> str:
    """`text` on one line, without control or format characters, at most `limit` characters."""
    cleaned = "".join(" " if unicodedata.category(ch) in _NEUTRALISED else ch for ch in text)
    flat = " ".join(cleaned.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def _clean(value: object, limit: int) -> object:
    if isinstance(value, str):
        return one_line(value, limit=limit)
    if isinstance(value, Mapping):
        return {str(k): _clean(v, limit) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v, limit) for v in value][:20]
    return value


def data_block(facts: Mapping[str, object], *, limit: int = MAX_CHARS) -> str:
    """`facts` as one JSON object, every string cleaned by `one_line` and nothing able to leave the block."""
    text = json.dumps(_clean(facts, limit), ensure_ascii=False, default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e")
