"""Loading configuration for a command, and failing with one clear line (never a traceback)."""

from __future__ import annotations

import typer
from pydantic import ValidationError

from core.business import Business, BusinessConfigError, load_business
from core.settings import Settings, get_settings


def fail(message: str) -> typer.Exit:
    """Print `message` in red on stderr; raise the returned exit (code 1)."""
    typer.secho(message, fg=typer.colors.RED, err=True)
    return typer.Exit(code=1)


def _settings_error(exc: ValidationError) -> str:
    lines = ["configuration error (.env / environment):"]
    for error in exc.errors():
        key = "_".join(str(p) for p in error["loc"]).upper() or "(settings)"
        lines.append(f"  {key}: {error['msg'].removeprefix('Value error, ')}")
    return "\n".join(lines)


def load_configuration() -> tuple[Settings, Business]:
    """Settings and business config, or a clean exit naming the broken key or field."""
    try:
        settings = get_settings()
    except ValidationError as exc:
        raise fail(_settings_error(exc)) from None
    try:
        business = load_business(settings.business_config)
    except BusinessConfigError as exc:
        raise fail(str(exc)) from None
    return settings, business
