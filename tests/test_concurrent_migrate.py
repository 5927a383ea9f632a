"""Many processes setting up one new database at once: `asistente db migrate` and workers starting together.

Each process runs the migrations and LangGraph's checkpoint setup; unserialised, they collided (UniqueViolation on
`checkpoint_migrations`, or on the tables themselves). Real processes, a real, fresh database (its `public` schema,
prepared like Supabase's), and the console script a deployment runs.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

from agent.checkpointer import CHECKPOINT_TABLES
from store.database import Dialect
from store.migrate import application_tables, load_migrations, schema_lock
from store.postgres import PostgresDatabase
from tests.conftest import PostgresSchema
from tests.test_supabase import DATA_API_ROLES, base_url, fresh_database, grant_like_supabase

ASISTENTE = Path(sys.executable).parent / "asistente"
MIGRATORS = 4
# What `asistente worker` does with the schema as it starts: open the checkpointer with setup.
WORKER_START = """
import asyncio, os
from agent.checkpointer import open_checkpointer
from store import open_database

async def main() -> None:
    db = open_database(os.environ["DATABASE_URL"])
    try:
        async with open_checkpointer(db, setup=True):
            pass
    finally:
        await db.close()

asyncio.run(main())
"""
WORKERS = 2


@pytest.fixture
def new_database() -> Iterator[str]:
    """A fresh database whose `public` the Data API roles may use, as on Supabase."""
    with fresh_database(base_url()) as url:
        with psycopg.connect(url, autocommit=True) as conn:
            grant_like_supabase(conn, "public", "postgres")
        yield url


def _environment(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "BUSINESS_CONFIG", "TEST_DATABASE_URL")}
    env["DATABASE_URL"] = database_url
    return env


@pytest.mark.postgres
def test_migrate_and_worker_starts_at_once_on_a_new_database_all_succeed(new_database: str, tmp_path: Path) -> None:
    env = _environment(new_database)
    # All started before any is waited for; `cwd` has no .env or business.yaml, so only `env` configures them.
    commands = [[str(ASISTENTE), "db", "migrate"]] * MIGRATORS + [[sys.executable, "-c", WORKER_START]] * WORKERS
    processes = [
        subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for command in commands
    ]
    outputs = []
    for process in processes:
        out, _ = process.communicate(timeout=100)
        outputs.append((process.returncode, out))
    assert [code for code, _ in outputs] == [0] * len(commands), outputs
    # The migrations ran once, in whichever `db migrate` got the schema lock first; the others found them applied.
    reports = [out.strip().splitlines()[-1] for _, out in outputs[:MIGRATORS]]
    assert sorted(reports) == sorted(
        ["applied: " + ", ".join(m.name for m in load_migrations(Dialect.POSTGRES))]
        + ["schema up to date"] * (MIGRATORS - 1)
    ), reports

    with psycopg.connect(new_database) as conn:
        tables = {
            str(name): bool(rls)
            for name, rls in conn.execute(
                "SELECT relname, relrowsecurity FROM pg_class "
                "WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p')"
            )
        }
        ledger = conn.execute("SELECT version FROM supabase_migrations.schema_migrations ORDER BY version").fetchall()
        checkpoint_versions = conn.execute("SELECT v FROM checkpoint_migrations ORDER BY v").fetchall()
        exposed = conn.execute(
            "SELECT relname, role FROM pg_class, unnest(%s::text[]) AS role "
            "WHERE relnamespace = 'public'::regnamespace AND CASE WHEN relkind = 'S' "
            "THEN has_sequence_privilege(role, oid, 'USAGE, SELECT, UPDATE') "
            "ELSE relkind IN ('r', 'p') AND has_table_privilege(role, oid, 'SELECT, INSERT, UPDATE, DELETE') END",
            (list(DATA_API_ROLES),),
        ).fetchall()
    # Every table once; every version recorded once; all of them closed to the Data API roles.
    assert set(tables) == (application_tables() - {"schema_migrations"}) | CHECKPOINT_TABLES
    assert all(tables.values()), tables
    assert [row[0] for row in ledger] == [m.version for m in load_migrations(Dialect.POSTGRES)]
    assert [row[0] for row in checkpoint_versions] == list(range(len(AsyncPostgresSaver.MIGRATIONS)))
    assert exposed == []


async def _eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    # Waits for a condition another task brings about, failing (never passing) if it does not come within 10 s.
    deadline = asyncio.get_running_loop().time() + 10
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.02)


@pytest.mark.postgres
async def test_the_schema_lock_lets_concurrent_index_builds_finish_while_others_wait() -> None:
    schema, other = PostgresSchema(base_url()), PostgresSchema(base_url())
    schema.create()
    other.create()
    # Named connections, to watch each side in pg_stat_activity.
    names = {"holder": f"holder_{schema.name}", "waiter": f"waiter_{schema.name}"}
    holder, waiter = (PostgresDatabase(f"{schema.url}&application_name={name}") for name in names.values())
    bystander = PostgresDatabase(other.url)
    acquired = asyncio.Event()

    async def wait_for_the_lock() -> None:
        async with schema_lock(waiter):
            acquired.set()

    async def waiter_has_asked() -> bool:
        rows = await holder.fetch_all(
            "SELECT application_name AS name, state, wait_event_type, backend_xmin, query FROM pg_stat_activity "
            "WHERE application_name IN (:holder, :waiter)",
            names,
        )
        # Nobody blocks in a lock wait (a waiter's snapshot would stall the index build), and the holder idles in
        # its transaction without a snapshot of its own.
        assert [row for row in rows if row["wait_event_type"] == "Lock"] == [], rows
        assert [row for row in rows if row["state"] == "idle in transaction" and row["backend_xmin"]] == [], rows
        # The waiter's lock connection has been turned away at least once (its last statement ends the attempt).
        return any(row["name"] == names["waiter"] and row["query"] == "ROLLBACK" for row in rows)

    try:
        await holder.execute("CREATE TABLE t (x INTEGER)")
        async with schema_lock(holder):
            waiting = asyncio.create_task(wait_for_the_lock())
            await _eventually(waiter_has_asked, "the waiter never asked for the lock")
            # What LangGraph's setup does under the lock; a statement timeout turns a hang into a failure.
            async with await psycopg.AsyncConnection.connect(schema.url, autocommit=True) as conn:
                await conn.execute("SET statement_timeout = '10s'")
                await conn.execute("CREATE INDEX CONCURRENTLY t_x ON t (x)")
            await waiter_has_asked()
            # Another schema's lock is another lock.
            async with asyncio.timeout(10), schema_lock(bystander):
                pass
            assert not acquired.is_set()
        async with asyncio.timeout(10):
            await waiting
        assert acquired.is_set()
    finally:
        for db in (holder, waiter, bystander):
            await db.close()
        schema.drop()
        other.drop()
