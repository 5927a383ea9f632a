"""`asistente db migrate`: the schema and the conversation-memory tables."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from pathlib import Path

import psycopg
import typer
from psycopg.conninfo import conninfo_to_dict

from cli.config import fail, load_configuration, one_line
from core.settings import Settings
from store import open_database
from store.sqlite import sqlite_path

db_app = typer.Typer(help="Database schema.", no_args_is_help=True)

# How long a PostgreSQL server gets to accept a connection. The pool would keep retrying for its whole open timeout
# and then say only "pool initialization incomplete"; one direct connection fails in this time with the reason.
CONNECT_TIMEOUT_SECONDS = 5

_AGAIN = "then run `asistente db migrate` again"


class DatabaseUnavailable(Exception):
    """DATABASE_URL names a database that cannot be opened; the message is the one line a user reads."""


def describe_database(url: str) -> str:
    """What a DATABASE_URL points at, for messages: `host:port/dbname` or the SQLite file, never the password."""
    if url.startswith("sqlite://"):
        return f"SQLite file {sqlite_path(url)}"
    try:
        parts = conninfo_to_dict(url)
    except psycopg.Error:
        return "PostgreSQL (unparsable URL)"
    host = parts.get("host") or "localhost"
    return f"PostgreSQL at {host}:{parts.get('port') or 5432}/{parts.get('dbname') or parts.get('user') or ''}"


def _driver_reason(exc: BaseException) -> str:
    # psycopg says 'connection failed: connection to server at "h", port p failed: FATAL:  database "x" does not
    # exist': the host and port are already in our message, the severity means nothing to a user.
    reason = one_line(exc).rsplit(" failed: ", 1)[-1]
    return re.sub(r"^(FATAL|ERROR):\s*", "", reason)


async def _check_postgres(url: str) -> None:
    try:
        # asyncio.timeout also bounds name resolution, which connect_timeout does not cover.
        async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS + 1):
            conn = await psycopg.AsyncConnection.connect(url, connect_timeout=CONNECT_TIMEOUT_SECONDS)
        await conn.close()
    except (psycopg.Error, TimeoutError) as exc:
        reason = "no answer" if isinstance(exc, TimeoutError) else _driver_reason(exc)
        raise DatabaseUnavailable(
            f"cannot connect to DATABASE_URL ({describe_database(url)}): {reason}; check the URL (host, port, "
            f"database, user, password) and that the server is running, {_AGAIN}"
        ) from None


def _check_sqlite(url: str) -> None:
    path = sqlite_path(url)
    try:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path)
        try:
            # Reading the header here turns "file is not a database" into a message. Opened by the store instead,
            # the failure leaves aiosqlite's worker thread running, and the process never exits.
            conn.execute("PRAGMA schema_version")
        finally:
            conn.close()
    except (OSError, sqlite3.Error) as exc:
        raise DatabaseUnavailable(
            f"cannot open DATABASE_URL ({describe_database(url)}): {one_line(exc)}; point DATABASE_URL at a "
            f"writable SQLite file (or a PostgreSQL URL), {_AGAIN}"
        ) from None


async def check_database(url: str) -> None:
    """Open one connection to `url` and close it; raise `DatabaseUnavailable` (one line, in seconds) if it fails."""
    if url.startswith("sqlite://"):
        await asyncio.to_thread(_check_sqlite, url)
    else:
        await _check_postgres(url)


async def _migrate(url: str) -> list[str]:
    from agent.checkpointer import migrate_with_checkpoints

    await check_database(url)
    db = open_database(url, open_timeout=CONNECT_TIMEOUT_SECONDS)
    try:
        # One schema lock for our migrations, LangGraph's tables and closing them to Supabase's Data API.
        return await migrate_with_checkpoints(db)
    finally:
        await db.close()


def migrate_or_fail(settings: Settings) -> list[str]:
    """Apply the whole schema to DATABASE_URL (also what `serve` does first); expected failures exit in one line."""
    where = describe_database(settings.database_url)
    try:
        return asyncio.run(_migrate(settings.database_url))
    except DatabaseUnavailable as exc:
        raise fail(str(exc)) from None
    except TimeoutError as exc:
        # The schema lock: another `db migrate` or a starting server is changing the schema right now.
        raise fail(f"db migrate on {where}: {one_line(exc)}; another process is migrating, {_AGAIN}") from None
    except (psycopg.Error, sqlite3.Error, OSError) as exc:
        # After a successful connection: e.g. the role may not create tables, or the server went away midway.
        # Each migration commits with its ledger row, so running again resumes where this one stopped.
        raise fail(f"db migrate failed on {where}: {_driver_reason(exc)}; fix the cause, {_AGAIN}") from None


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply the schema (and the conversation-memory tables) to DATABASE_URL; safe to run again."""
    settings, _ = load_configuration()
    applied = migrate_or_fail(settings)
    typer.echo("applied: " + ", ".join(applied) if applied else "schema up to date")
