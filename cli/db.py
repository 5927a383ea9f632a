"""`asistente db migrate`: the schema and the conversation-memory tables."""

from __future__ import annotations

import asyncio

import typer

from cli.config import load_configuration
from store import open_database
from store.migrate import migrate

db_app = typer.Typer(help="Database schema.", no_args_is_help=True)


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
