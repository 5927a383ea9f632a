"""SQLite implementation of `Database` (the embedded default): one file, WAL, created on first use."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

import aiosqlite

from store.database import (
    Connection,
    Database,
    DatabaseCounts,
    Dialect,
    IntegrityConflict,
    Params,
    Row,
    to_json_text,
    utc_text,
)

BUSY_TIMEOUT_MS = 10_000


def sqlite_path(url: str) -> str:
    """The file path of a `sqlite:///relative` or `sqlite:////absolute` URL (`:memory:` kept as is)."""
    path = url.removeprefix("sqlite://")
    path = path.removeprefix("/") if not path.startswith("//") else path[1:]
    return path or ":memory:"


def _adapt(params: Params | None) -> dict[str, object]:
    adapted: dict[str, object] = {}
    for key, value in (params or {}).items():
        if isinstance(value, datetime):
            adapted[key] = utc_text(value)
        elif isinstance(value, Mapping | list | tuple) and not isinstance(value, str):
            adapted[key] = to_json_text(value)
        elif isinstance(value, bool):
            adapted[key] = int(value)
        else:
            adapted[key] = value
    return adapted


class _SqliteConnection(Connection):
    def __init__(self, conn: aiosqlite.Connection, counts: DatabaseCounts) -> None:
        self._conn = conn
        self._counts = counts

    async def execute(self, sql: str, params: Params | None = None) -> int:
        self._counts.statements += 1
        try:
            cursor = await self._conn.execute(sql, _adapt(params))
        except sqlite3.IntegrityError as exc:
            raise IntegrityConflict(str(exc)) from exc
        return cursor.rowcount

    async def fetch_all(self, sql: str, params: Params | None = None) -> list[Row]:
        self._counts.statements += 1
        try:
            # Run and read in one call on aiosqlite's thread: one hop, and no half-read statement left open (it
            # would hold a read snapshot) when the caller is cancelled in between.
            rows = await self._conn.execute_fetchall(sql, _adapt(params))
        except sqlite3.IntegrityError as exc:
            raise IntegrityConflict(str(exc)) from exc
        return [dict(row) for row in rows]


class SqliteDatabase(Database):
    """One aiosqlite connection per instance; transactions are serialised with a lock (SQLite has one writer)."""

    dialect = Dialect.SQLITE

    def __init__(self, url: str) -> None:
        self.url = url
        self.path = sqlite_path(url)
        self._conn: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()
        self.counts = DatabaseCounts()

    async def _connection(self) -> aiosqlite.Connection:
        if self._conn is None:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            conn = await aiosqlite.connect(self.path, isolation_level=None)
            conn.row_factory = sqlite3.Row
            try:
                await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
                await conn.execute("PRAGMA journal_mode = WAL")
                await conn.execute("PRAGMA foreign_keys = ON")
                await conn.execute("PRAGMA synchronous = NORMAL")
            except BaseException:
                # Not a database (or unreadable): close it, or aiosqlite's thread keeps the process alive.
                await conn.close()
                raise
            self._conn = conn
        return self._conn

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        async with self._lock:
            conn = await self._connection()
            try:
                # IMMEDIATE takes the write lock up front: two processes never deadlock upgrading a read lock.
                self.counts.transactions += 1
                await conn.execute("BEGIN IMMEDIATE")
                yield _SqliteConnection(conn, self.counts)
                await conn.execute("COMMIT")
            except BaseException:
                # Also reached when the task is cancelled during BEGIN or COMMIT: the shared connection must never
                # be left inside a transaction. Shielded so a second cancellation cannot interrupt the rollback.
                await asyncio.shield(self._rollback(conn))
                raise

    @asynccontextmanager
    async def single(self, sql: str) -> AsyncIterator[Connection]:
        """A statement on its own runs without BEGIN IMMEDIATE, in SQLite's autocommit mode: one call instead of
        three, and a query waits for no writer (WAL lets readers and the one writer run at once). A write on its
        own is as safe: SQLite takes the write lock when the statement starts, waiting for it under the busy
        timeout (IMMEDIATE matters for a transaction that reads before it writes). Still under the lock, so that it
        never runs on the shared connection inside another task's transaction (it would see, or be committed with,
        that transaction's rows)."""
        del sql  # every statement alike
        async with self._lock:
            self.counts.single += 1
            yield _SqliteConnection(await self._connection(), self.counts)

    @staticmethod
    async def _rollback(conn: aiosqlite.Connection) -> None:
        # Always queue the ROLLBACK: a cancelled BEGIN may still be running in aiosqlite's thread, and statements
        # run there in order, so checking `in_transaction` now would race it.
        with contextlib.suppress(sqlite3.OperationalError):  # no transaction open (cancelled before BEGIN ran)
            await conn.execute("ROLLBACK")

    async def execute_script(self, sql: str) -> None:
        async with self._lock:
            conn = await self._connection()
            self.counts.transactions += 1
            self.counts.statements += 1
            await conn.executescript(f"BEGIN IMMEDIATE;\n{sql}\nCOMMIT;")

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
