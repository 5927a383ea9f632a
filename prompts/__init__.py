"""Prompt files (Markdown + Jinja) and the one small loader that renders them. No prompt text lives in Python."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

PROMPTS_DIR = Path(__file__).resolve().parent


@cache
def _environment() -> Environment:
    # StrictUndefined: a missing variable is a bug, never an empty string in front of a customer.
    return Environment(
        loader=FileSystemLoader(PROMPTS_DIR),
        undefined=StrictUndefined,
        autoescape=False,  # noqa: S701 - plain text for a model and WhatsApp, not HTML
        keep_trailing_newline=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(name: str, /, **variables: Any) -> str:
    """Render `prompts/<name>` with `variables`, stripped of surrounding whitespace."""
    return _environment().get_template(name).render(**variables).strip()


def render_localized(name: str, language: str, /, **variables: Any) -> str:
    """Render `prompts/<name>.<language>.j2`, falling back to Spanish (the business language) when missing."""
    lang = "en" if language.startswith("en") else "es"
    return render(f"{name}.{lang}.j2", **variables)
