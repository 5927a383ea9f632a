"""Splitting long texts into WhatsApp-sized messages at natural boundaries."""

from __future__ import annotations

import re

WHATSAPP_MAX_CHARS = 1600

# Coarsest first: paragraphs, lines, sentences, words. Each boundary is kept with the text before it.
_BOUNDARIES = (re.compile(r"(?<=\n\n)"), re.compile(r"(?<=\n)"), re.compile(r"(?<=[.!?…;])\s+"), re.compile(r"\s+"))


def split_message(text: str, limit: int = WHATSAPP_MAX_CHARS) -> list[str]:
    """Cut `text` into parts of at most `limit` characters, preferring paragraph, then sentence, then word breaks."""
    text = text.strip()
    if len(text) <= limit:
        return [text] if text else []
    return [part for part in (p.strip() for p in _split(text, limit, 0)) if part]


def _split(text: str, limit: int, level: int) -> list[str]:
    if len(text) <= limit:
        return [text]
    if level == len(_BOUNDARIES):
        # A single "word" longer than a message (a URL, say): cut it where it has to be cut.
        return [text[i : i + limit] for i in range(0, len(text), limit)]
    pieces = [p for p in _BOUNDARIES[level].split(text) if p]
    parts: list[str] = []
    current = ""
    for piece in pieces:
        joiner = " " if level >= 2 and current else ""
        if len(current) + len(joiner) + len(piece) <= limit:
            current = f"{current}{joiner}{piece}"
            continue
        if current:
            parts.append(current)
        if len(piece) > limit:
            parts.extend(_split(piece, limit, level + 1))
            current = ""
        else:
            current = piece
    if current:
        parts.append(current)
    return parts
