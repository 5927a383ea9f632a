"""Conversation memory: the LangGraph checkpointer on the same database as the business data."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import aiosqlite
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from store.database import Database
from store.postgres import PostgresDatabase
from store.sqlite import BUSY_TIMEOUT_MS, SqliteDatabase

Checkpointer = AsyncSqliteSaver | AsyncPostgresSaver


@asynccontextmanager
async def open_checkpointer(db: Database, *, setup: bool = True) -> AsyncIterator[Checkpointer]:
    """A checkpointer on `db`'s database: SQLite file (its own connection) or the PostgreSQL pool (shared)."""
    if isinstance(db, PostgresDatabase):
        # The pool's connections are autocommit, dict_row and never prepare: what the saver and poolers need.
        saver = AsyncPostgresSaver(conn=await db.pool())
        if setup:
            await saver.setup()
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


async def prune_threads(saver: BaseCheckpointSaver[str], thread_ids: Sequence[str]) -> None:
    """Keep only the latest checkpoint of each thread: history the thread no longer needs is deleted."""
    if isinstance(saver, AsyncPostgresSaver):
        await saver.aprune(list(thread_ids), strategy="keep_latest")
        return
    if isinstance(saver, AsyncSqliteSaver):
        await _prune_sqlite(saver, thread_ids)
        return
    raise TypeError(f"pruning not supported for {type(saver).__name__}")


async def _prune_sqlite(saver: AsyncSqliteSaver, thread_ids: Sequence[str]) -> None:
    # langgraph-checkpoint-sqlite has no prune(); keep the newest checkpoint per (thread, namespace), like
    # the Postgres saver's "keep_latest", and drop the pending writes of the checkpoints removed.
    async with saver.lock:
        for thread_id in thread_ids:
            await saver.conn.execute(
                """
                DELETE FROM checkpoints WHERE thread_id = ? AND checkpoint_id NOT IN (
                    SELECT MAX(checkpoint_id) FROM checkpoints WHERE thread_id = ? GROUP BY checkpoint_ns
                )
                """,
                (thread_id, thread_id),
            )
            await saver.conn.execute(
                """
                DELETE FROM writes WHERE thread_id = ? AND checkpoint_id NOT IN (
                    SELECT checkpoint_id FROM checkpoints WHERE thread_id = ?
                )
                """,
                (thread_id, thread_id),
            )
        await saver.conn.commit()
