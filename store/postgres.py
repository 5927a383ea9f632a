"""PostgreSQL implementation of `Database` (production, Supabase): a psycopg 3 async pool, pooler-safe."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from store.database import Connection, Database, Dialect, IntegrityConflict, Params, Row

_NAMED_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")

# Supabase's transaction pooler (:6543) cannot keep prepared statements between transactions: never prepare.
CONNECTION_KWARGS: dict[str, Any] = {"autocommit": True, "prepare_threshold": None, "row_factory": dict_row}


@lru_cache(maxsize=512)
def to_pyformat(sql: str) -> str:
    """Rewrite `:name` parameters to psycopg's `%(name)s` (and escape literal percent signs)."""
    return _NAMED_PARAM.sub(r"%(\1)s", sql.replace("%", "%%"))


def _adapt(params: Params | None) -> dict[str, object]:
    return {key: Jsonb(value) if isinstance(value, Mapping | list) else value for key, value in (params or {}).items()}


class _PostgresConnection(Connection):
    def __init__(self, conn: psycopg.AsyncConnection[Row]) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Params | None = None) -> int:
        try:
            cursor = await self._conn.execute(to_pyformat(sql), _adapt(params))
        except psycopg.errors.UniqueViolation as exc:
            raise IntegrityConflict(str(exc)) from exc
        return cursor.rowcount

    async def fetch_all(self, sql: str, params: Params | None = None) -> list[Row]:
        try:
            cursor = await self._conn.execute(to_pyformat(sql), _adapt(params))
        except psycopg.errors.UniqueViolation as exc:
            raise IntegrityConflict(str(exc)) from exc
        return await cursor.fetchall()


class PostgresDatabase(Database):
    """A lazily opened `AsyncConnectionPool`; the LangGraph Postgres checkpointer can share it (`pool`)."""

    dialect = Dialect.POSTGRES

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 10, open_timeout: float = 10.0) -> None:
        self.url = url
        self.open_timeout = open_timeout
        self._pool = AsyncConnectionPool(
            url, min_size=min_size, max_size=max_size, kwargs=CONNECTION_KWARGS, open=False
        )
        self._opened = False
        self._open_lock = asyncio.Lock()

    async def pool(self) -> AsyncConnectionPool[Any]:
        """The open connection pool (opened on first use, once, even when many tasks ask at the same time)."""
        if not self._opened:
            async with self._open_lock:
                if not self._opened:
                    await self._pool.open(wait=True, timeout=self.open_timeout)
                    self._opened = True
        return self._pool

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        pool = await self.pool()
        async with pool.connection() as conn, conn.transaction():
            yield _PostgresConnection(conn)

    async def execute_script(self, sql: str) -> None:
        pool = await self.pool()
        async with pool.connection() as conn, conn.transaction():
            await conn.execute(sql.encode())

    async def close(self) -> None:
        if self._opened:
            await self._pool.close()
            self._opened = False
