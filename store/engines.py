"""Opening a database from DATABASE_URL: SQLite (the embedded default) or PostgreSQL (Supabase)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from store.database import Database
from store.postgres import PostgresDatabase
from store.sqlite import SqliteDatabase


def open_database(url: str, *, open_timeout: float = 10.0) -> Database:
    """A `Database` for a `sqlite:///path` or `postgresql://...` URL. Call `await db.close()` when done.

    `open_timeout` bounds how long a PostgreSQL pool keeps trying to connect before giving up.
    """
    if url.startswith("sqlite://"):
        return SqliteDatabase(url)
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresDatabase(url, open_timeout=open_timeout)
    raise ValueError(f"unsupported DATABASE_URL scheme: {url.split(':', 1)[0]!r}")


@asynccontextmanager
async def opened(url: str) -> AsyncIterator[Database]:
    """Open a database for the duration of a block."""
    db = open_database(url)
    try:
        yield db
    finally:
        await db.close()
