"""PostgreSQL for the benchmarks: a throwaway database per system, and its committed transactions.

Each system gets a database of its own (`asistente_bench_<pid>_<name>`), so `pg_stat_database.xact_commit` counts
exactly one system's transactions, the checkpointer's included. A backend reports its counts lazily (an idle one may
hold them indefinitely) but always when it exits: a count is read once every connection to the database has closed.
Each connection adds one transaction of its own (its start-up).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import psycopg

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def admin_url(env: dict[str, str] | None = None) -> str:
    """Where to create databases: BENCH_POSTGRES_URL, else TEST_DATABASE_URL's server, else the local default."""
    environ = os.environ if env is None else env
    url = environ.get("BENCH_POSTGRES_URL") or environ.get("TEST_DATABASE_URL") or DEFAULT_URL
    return with_database(url, "postgres")


def with_database(url: str, name: str) -> str:
    """`url` naming database `name` instead (query string kept)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, ""))


def server_version(url: str) -> str:
    """The server's version string, e.g. '15.20'."""
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]).split(" ")[0] if row else "?"


@contextmanager
def throwaway_databases(url: str, names: list[str]) -> Iterator[dict[str, str]]:
    """Create one empty database per name on `url`'s server; name -> its URL. Dropped on exit."""
    created: dict[str, str] = {}
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        try:
            for name in names:
                database = f"asistente_bench_{os.getpid()}_{name}"
                conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
                conn.execute(f'CREATE DATABASE "{database}"')
                created[name] = with_database(url, database)
            yield created
        finally:
            for database_url in created.values():
                database = urlsplit(database_url).path.lstrip("/")
                conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


async def quiesced_commits(admin: str, database_url: str, give_up_after: float = 30.0) -> int:
    """`commits`, once no session is connected to the database any more (so every count has been reported)."""
    database = urlsplit(database_url).path.lstrip("/")
    async with await psycopg.AsyncConnection.connect(admin, autocommit=True) as conn:
        deadline = asyncio.get_running_loop().time() + give_up_after
        while True:
            cursor = await conn.execute("SELECT COUNT(*) FROM pg_stat_activity WHERE datname = %s", (database,))
            row = await cursor.fetchone()
            if not row or not row[0]:
                break
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"sessions still connected to {database} after {give_up_after:g} s")
            await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # the last session's exit is reported just after it leaves pg_stat_activity
    return await commits(admin, database_url)


async def commits(admin: str, database_url: str) -> int:
    """Transactions committed in `database_url`'s database so far (read through `admin`, another database, so that
    reading does not count)."""
    database = urlsplit(database_url).path.lstrip("/")
    async with await psycopg.AsyncConnection.connect(admin, autocommit=True) as conn:
        cursor = await conn.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = %s", (database,))
        row = await cursor.fetchone()
    return int(row[0]) if row else 0
