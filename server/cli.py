"""The `asistente` command line."""

from __future__ import annotations

import asyncio
from typing import Annotated

import httpx
import typer
from pydantic import ValidationError

from core.business import Business, BusinessConfigError, load_business
from core.settings import Settings, get_settings
from server.probes import ProbeResult, probe_calendly, probe_database, probe_openai, probe_twilio
from store import open_database
from store.migrate import migrate

app = typer.Typer(help="Asistente: WhatsApp booking assistant.", no_args_is_help=True, add_completion=False)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")


def _fail(message: str) -> typer.Exit:
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
        raise _fail(_settings_error(exc)) from None
    try:
        business = load_business(settings.business_config)
    except BusinessConfigError as exc:
        raise _fail(str(exc)) from None
    return settings, business


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply the schema (and the conversation-memory tables) to DATABASE_URL; safe to run again."""
    settings, _ = load_configuration()

    async def run() -> list[str]:
        from agent.checkpointer import open_checkpointer

        db = open_database(settings.database_url)
        try:
            applied = await migrate(db)
            async with open_checkpointer(db, setup=True):
                pass
            return applied
        finally:
            await db.close()

    applied = asyncio.run(run())
    typer.echo("applied: " + ", ".join(applied) if applied else "schema up to date")


@app.command()
def check(
    offline: Annotated[bool, typer.Option(help="Do not contact OpenAI, Twilio or Calendly.")] = False,
) -> None:
    """Load settings and the business config, then report each backend and whether it answers."""
    settings, business = load_configuration()
    typer.echo(f"business: {business.name} ({business.timezone}, {len(business.services)} services)")

    async def run() -> list[ProbeResult]:
        db = open_database(settings.database_url, open_timeout=3.0)
        try:
            results = [await probe_database(db)]
        finally:
            await db.close()
        if offline:
            return results
        async with httpx.AsyncClient(timeout=5.0) as client:
            results += await asyncio.gather(
                probe_openai(settings, client), probe_twilio(settings, client), probe_calendly(settings, client)
            )
        return results

    results = asyncio.run(run())
    for result in results:
        state = "ok" if result.ok else "FAILED"
        typer.echo(f"{result.name:9} {state:7} {result.detail}")
    if not all(r.ok for r in results):
        raise typer.Exit(code=1)


def main() -> None:
    """Console-script entry point."""
    app(prog_name="asistente")


if __name__ == "__main__":
    main()
