"""The bare baseline's storage: its inbound table, the table its tool reads, and LangGraph's checkpointer, on SQLite
(aiosqlite) or PostgreSQL (a psycopg pool, configured as LangGraph's documentation shows)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import aiosqlite
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from psycopg_pool import AsyncConnectionPool

_TABLES = (
    """CREATE TABLE IF NOT EXISTS bare_inbound (
        id {serial} PRIMARY KEY, sid TEXT NOT NULL UNIQUE, wa_id TEXT NOT NULL, body TEXT NOT NULL,
        answered BOOLEAN NOT NULL DEFAULT FALSE)""",
    "CREATE TABLE IF NOT EXISTS bare_appointments (day TEXT NOT NULL, at TEXT NOT NULL)",
)


class BareStore:
    """What the bare service stores and reads; one of the two engines below."""

    async def insert_inbound(self, sid: str, wa_id: str, body: str) -> int | None:
        """Store a message once per MessageSid; its row id, or None for a repeat."""
        raise NotImplementedError

    async def mark_answered(self, row_id: int) -> None:
        """The message was answered."""
        raise NotImplementedError

    async def unanswered(self) -> list[tuple[int, str, str]]:
        """(id, wa_id, body) of messages not answered yet, oldest first."""
        raise NotImplementedError

    async def booked_between(self, first: str, last: str) -> int:
        """How many appointments fall on those days (the tool's one read)."""
        raise NotImplementedError

    def checkpointer(self) -> AbstractAsyncContextManager[BaseCheckpointSaver[Any]]:
        """LangGraph's saver for this database, its tables set up."""
        raise NotImplementedError


class _SqliteStore(BareStore):
    def __init__(self, path: str, conn: aiosqlite.Connection) -> None:
        self._path, self._conn = path, conn
        self._lock = asyncio.Lock()

    async def _rows(self, sql: str, params: tuple[Any, ...], *, commit: bool = False) -> list[Any]:
        # One statement at a time on the shared connection, read to its end: SQLite refuses to commit while another
        # coroutine's statement is still stepping.
        async with self._lock:
            async with self._conn.execute(sql, params) as cursor:
                rows = list(await cursor.fetchall())
            if commit:
                await self._conn.commit()
        return rows

    async def insert_inbound(self, sid: str, wa_id: str, body: str) -> int | None:
        rows = await self._rows(
            "INSERT INTO bare_inbound (sid, wa_id, body) VALUES (?, ?, ?) ON CONFLICT (sid) DO NOTHING RETURNING id",
            (sid, wa_id, body),
            commit=True,
        )
        return int(rows[0][0]) if rows else None

    async def mark_answered(self, row_id: int) -> None:
        await self._rows("UPDATE bare_inbound SET answered = TRUE WHERE id = ?", (row_id,), commit=True)

    async def unanswered(self) -> list[tuple[int, str, str]]:
        rows = await self._rows("SELECT id, wa_id, body FROM bare_inbound WHERE NOT answered ORDER BY id", ())
        return [(int(r[0]), str(r[1]), str(r[2])) for r in rows]

    async def booked_between(self, first: str, last: str) -> int:
        rows = await self._rows("SELECT COUNT(*) FROM bare_appointments WHERE day BETWEEN ? AND ?", (first, last))
        return int(rows[0][0]) if rows else 0

    @asynccontextmanager
    async def checkpointer(self) -> AsyncIterator[BaseCheckpointSaver[Any]]:
        async with aiosqlite.connect(self._path) as conn:
            await conn.execute("PRAGMA journal_mode = WAL")
            saver = AsyncSqliteSaver(conn)
            await saver.setup()
            yield saver


class _PostgresStore(BareStore):
    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        self._pool = pool

    async def insert_inbound(self, sid: str, wa_id: str, body: str) -> int | None:
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                "INSERT INTO bare_inbound (sid, wa_id, body) VALUES (%s, %s, %s) ON CONFLICT (sid) DO NOTHING "
                "RETURNING id",
                (sid, wa_id, body),
            )
            row = await cursor.fetchone()
        return int(row["id"]) if row else None

    async def mark_answered(self, row_id: int) -> None:
        async with self._pool.connection() as conn:
            await conn.execute("UPDATE bare_inbound SET answered = TRUE WHERE id = %s", (row_id,))

    async def unanswered(self) -> list[tuple[int, str, str]]:
        async with self._pool.connection() as conn:
            cursor = await conn.execute("SELECT id, wa_id, body FROM bare_inbound WHERE NOT answered ORDER BY id")
            rows = await cursor.fetchall()
        return [(int(r["id"]), str(r["wa_id"]), str(r["body"])) for r in rows]

    async def booked_between(self, first: str, last: str) -> int:
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT COUNT(*) AS n FROM bare_appointments WHERE day BETWEEN %s AND %s", (first, last)
            )
            row = await cursor.fetchone()
        return int(row["n"]) if row else 0

    @asynccontextmanager
    async def checkpointer(self) -> AsyncIterator[BaseCheckpointSaver[Any]]:
        saver = AsyncPostgresSaver(self._pool)
        await saver.setup()
        yield saver


@asynccontextmanager
async def open_bare_store(url: str) -> AsyncIterator[BareStore]:
    """The bare store for a `sqlite:///path` or `postgresql://` URL, its tables created."""
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        async with aiosqlite.connect(path) as conn:
            # The settings Asistente's store runs with (store/sqlite.py): the baseline pays no durability it skips.
            await conn.execute("PRAGMA journal_mode = WAL")
            await conn.execute("PRAGMA synchronous = NORMAL")
            for ddl in _TABLES:
                await conn.execute(ddl.format(serial="INTEGER"))
            await conn.commit()
            yield _SqliteStore(path, conn)
        return
    from psycopg.rows import dict_row

    # As LangGraph's documentation sets up a pool for AsyncPostgresSaver (it needs autocommit and dict rows).
    kwargs = {"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row}
    async with AsyncConnectionPool(url, min_size=1, max_size=10, kwargs=kwargs, open=False) as pool:
        async with pool.connection() as conn:
            for ddl in _TABLES:
                await conn.execute(ddl.format(serial="BIGSERIAL"))
        yield _PostgresStore(pool)
