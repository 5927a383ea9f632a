"""Loading configuration for a command, and failing with one clear line (never a traceback)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from pydantic import ValidationError

from core.business import Business, BusinessConfigError, configured_business
from core.settings import Settings, get_settings

if TYPE_CHECKING:
    from agent.tracing import TurnTracer


def fail(message: str) -> typer.Exit:
    """Print `message` in red on stderr; raise the returned exit (code 1)."""
    typer.secho(message, fg=typer.colors.RED, err=True)
    return typer.Exit(code=1)


def one_line(exc: BaseException) -> str:
    """An exception as one line for a user: `path: reason` for OS errors, the first line of the text otherwise.

    Drivers write several lines (psycopg adds hints on a tab-indented second line) and OS errors carry an
    `[Errno N]` the user has no use for; a failing command prints one line, so only the first, flattened, is kept.
    """
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename}: {exc.strerror}" if exc.filename is not None else exc.strerror
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    return " ".join(first.split())


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
        business = configured_business(settings)
    except BusinessConfigError as exc:
        raise fail(str(exc)) from None
    return settings, business


def environment_tracer(*, project_suffix: str = "") -> TurnTracer | None:
    """A tracer when the environment (or .env) turns LangSmith tracing on, for the commands that need no other
    configuration (`demo`, `eval`); their traces go to LANGSMITH_PROJECT + `project_suffix`. A configuration that
    cannot be read is said in one line and the command runs untraced: the demo must run on any machine."""
    try:
        settings = get_settings()
    except ValidationError as exc:
        keys = ", ".join(sorted({"_".join(str(p) for p in e["loc"]).upper() for e in exc.errors()}))
        typer.secho(f"tracing off: the configuration cannot be read ({keys})", fg=typer.colors.YELLOW, err=True)
        return None
    if not settings.langsmith_tracing:
        return None
    from agent.tracing import TurnTracer  # LangSmith is loaded only when something is traced

    return TurnTracer.from_settings(settings, project=settings.langsmith_project + project_suffix)
