"""Conversation memory: the LangGraph checkpointer on the same database as the business data."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Protocol, runtime_checkable

import aiosqlite
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from store.database import Database
from store.migrate import created_tables, migrate, schema_lock, secure_tables
from store.postgres import PostgresDatabase
from store.sqlite import BUSY_TIMEOUT_MS, SqliteDatabase

Checkpointer = AsyncSqliteSaver | AsyncPostgresSaver

# How many turns a thread may run before its own turn prunes it, in a server whose worker prunes every thread with new
# turns in its maintenance pass anyway (every half minute): only a conversation that outpaces it pays for a prune.
# A thread keeps at most about this many checkpoints between prunes (one per turn).
SERVER_PRUNE_EVERY_TURNS = 5


@runtime_checkable
class PrunesCheckpoints(Protocol):
    """What the worker's maintenance pass sees of the agent's checkpoint pruning (`Assistant`)."""

    async def prune_checkpoints(self) -> int:
        """Prune every thread with turns since it was last pruned; how many threads."""
        ...


# LangGraph's PostgreSQL tables, read from its own migrations so that a table a newer version adds is closed too.
CHECKPOINT_TABLES = frozenset(created_tables(AsyncPostgresSaver.MIGRATIONS))


@asynccontextmanager
async def open_checkpointer(db: Database, *, setup: bool = True) -> AsyncIterator[Checkpointer]:
    """A checkpointer on `db`'s database: SQLite file (its own connection) or the PostgreSQL pool (shared).

    With `setup`, LangGraph's tables are created or upgraded first; on PostgreSQL under the schema lock, because
    LangGraph's setup fails when two processes run it at once (each inserts the same `checkpoint_migrations` row),
    and the new tables are closed to Supabase's Data API before the lock is released.
    """
    if isinstance(db, PostgresDatabase):
        # The pool's connections are autocommit, dict_row and never prepare: what the saver and poolers need.
        saver = AsyncPostgresSaver(conn=await db.pool())
        if setup:
            async with schema_lock(db):
                await _set_up_postgres(db, saver)
        yield saver
        return
    if isinstance(db, SqliteDatabase):
        async with aiosqlite.connect(db.path) as conn:
            await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            await conn.execute("PRAGMA journal_mode = WAL")
            sqlite_saver = AsyncSqliteSaver(conn)
            if setup:
                await sqlite_saver.setup()
            yield sqlite_saver
        return
    raise TypeError(f"no checkpointer for {type(db).__name__}")


async def migrate_with_checkpoints(db: Database) -> list[str]:
    """The whole schema (`asistente db migrate`): the migrations, then LangGraph's tables, under one schema lock
    on PostgreSQL; return the migrations applied."""

    async def checkpoint_tables() -> None:
        if isinstance(db, PostgresDatabase):
            # The lock is already held (by `migrate`): set up directly, never through `open_checkpointer`.
            await _set_up_postgres(db, AsyncPostgresSaver(conn=await db.pool()))
            return
        async with open_checkpointer(db, setup=True):
            pass

    return await migrate(db, then=checkpoint_tables)


async def _set_up_postgres(db: PostgresDatabase, saver: AsyncPostgresSaver) -> None:
    # The caller holds the schema lock. The saver creates its tables in the target schema, where Supabase's default
    # privileges may have granted the Data API roles access: close them at once.
    await saver.setup()
    await secure_tables(db, CHECKPOINT_TABLES)


async def prune_threads(saver: BaseCheckpointSaver[str], thread_ids: Sequence[str]) -> None:
    """Keep only the latest checkpoint of each thread: history the thread no longer needs is deleted.

    Safe while a run of one of the threads is saving: on PostgreSQL LangGraph's prune reads one snapshot and leaves
    what is saved meanwhile alone; on SQLite the statements below keep anything newer than the latest checkpoint.
    """
    if isinstance(saver, AsyncPostgresSaver):
        await saver.aprune(list(thread_ids), strategy="keep_latest")
        return
    if isinstance(saver, AsyncSqliteSaver):
        await _prune_sqlite(saver, thread_ids)
        return
    raise TypeError(f"pruning not supported for {type(saver).__name__}")


# Threads pruned per pair of statements (SQLite allows 32 766 parameters; a maintenance pass may bring thousands).
_SQLITE_PRUNE_CHUNK = 500


async def _prune_sqlite(saver: AsyncSqliteSaver, thread_ids: Sequence[str]) -> None:
    # langgraph-checkpoint-sqlite has no prune(); keep the newest checkpoint per (thread, namespace), like the
    # Postgres saver's "keep_latest". Pending writes older than it go too; writes of a newer checkpoint (a run
    # saving right now) stay. One transaction (the saver's connection begins one before the first DELETE).
    async with saver.lock:
        for start in range(0, len(thread_ids), _SQLITE_PRUNE_CHUNK):
            chunk = list(thread_ids[start : start + _SQLITE_PRUNE_CHUNK])
            marks = ", ".join("?" for _ in chunk)
            for table in ("writes", "checkpoints"):
                await saver.conn.execute(
                    f"DELETE FROM {table} WHERE thread_id IN ({marks}) AND checkpoint_id < ("
                    "SELECT MAX(latest.checkpoint_id) FROM checkpoints latest "
                    f"WHERE latest.thread_id = {table}.thread_id AND latest.checkpoint_ns = {table}.checkpoint_ns)",
                    chunk,
                )
        await saver.conn.commit()
