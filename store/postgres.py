"""PostgreSQL implementation of `Database` (production, Supabase): a psycopg 3 async pool, pooler-safe."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import lru_cache
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from store.database import Connection, Database, DatabaseCounts, Dialect, IntegrityConflict, Params, Row

_NAMED_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")

# Supabase's transaction pooler (:6543) cannot keep prepared statements between transactions: never prepare.
CONNECTION_KWARGS: dict[str, Any] = {"autocommit": True, "prepare_threshold": None, "row_factory": dict_row}

# Unless DATABASE_URL says otherwise. libpq would wait for the operating system to give up on a host that drops
# packets (about two minutes), and the pool's reconnection attempts would be that slow to notice the database is back;
# keepalives notice a server that vanished without closing its connections (host down, network cut) in about a
# minute rather than the kernel's two hours. No server-side statement_timeout here: migrations and LangGraph's
# `CREATE INDEX CONCURRENTLY` run on this pool, and a transaction pooler (Supabase :6543) would carry a session
# setting over to other clients; callers that must answer in time (the webhooks) bound their own wait.
LIVENESS_DEFAULTS: dict[str, int] = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}
# The pool retries a lost connection with doubling delays (1, 2, 4... s): after a 5-minute outage the next try could be
# two minutes away. Giving a chain of retries up after this long lets the next request start a new one at once, so the
# database being back is noticed within seconds.
RECONNECT_TIMEOUT_SECONDS = 10.0

# Notifications (`Connection.notify`) go to a channel named after the schema: deployments, or test runs, sharing one
# database in different schemas never wake each other. The schema is cut so the name fits PostgreSQL's 63 bytes.
_CHANNEL = "'asistente_work.' || left(coalesce(current_schema(), ''), 40)"

# How often a process waiting for an advisory lock asks again: soon at first, then at most twice a second.
_LOCK_POLL_FIRST = 0.05
_LOCK_POLL_MAX = 0.5


@lru_cache(maxsize=512)
def to_pyformat(sql: str) -> str:
    """Rewrite `:name` parameters to psycopg's `%(name)s` (and escape literal percent signs)."""
    return _NAMED_PARAM.sub(r"%(\1)s", sql.replace("%", "%%"))


def _adapt(params: Params | None) -> dict[str, object]:
    return {key: Jsonb(value) if isinstance(value, Mapping | list) else value for key, value in (params or {}).items()}


def connection_kwargs(url: str) -> dict[str, Any]:
    """`CONNECTION_KWARGS` plus the liveness defaults the URL does not set itself."""
    given = conninfo_to_dict(url)
    return {**{key: value for key, value in LIVENESS_DEFAULTS.items() if key not in given}, **CONNECTION_KWARGS}


def _notify_statement(payloads: Sequence[str]) -> sql.Composed:
    # Literals, no parameters: one simple query, whatever the number of payloads.
    calls = [sql.SQL("pg_notify(" + _CHANNEL + ", {})").format(sql.Literal(p)) for p in payloads]
    return sql.SQL("SELECT {}").format(sql.SQL(", ").join(calls))


async def _payloads(conn: psycopg.AsyncConnection[Row], channel: str) -> AsyncIterator[str]:
    async for notification in conn.notifies():
        if notification.channel == channel:
            yield notification.payload


class _PostgresConnection(Connection):
    def __init__(self, conn: psycopg.AsyncConnection[Row], counts: DatabaseCounts) -> None:
        self._conn = conn
        self._counts = counts
        self.notifications: list[str] = []

    async def notify(self, payload: str) -> None:
        # Sent in one statement just before the commit (`PostgresDatabase.transaction`), each payload once.
        if payload not in self.notifications:
            self.notifications.append(payload)

    async def execute(self, sql: str, params: Params | None = None) -> int:
        self._counts.statements += 1
        try:
            cursor = await self._conn.execute(to_pyformat(sql), _adapt(params))
        except psycopg.errors.UniqueViolation as exc:
            raise IntegrityConflict(str(exc)) from exc
        return cursor.rowcount

    async def fetch_all(self, sql: str, params: Params | None = None) -> list[Row]:
        self._counts.statements += 1
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
            url,
            min_size=min_size,
            max_size=max_size,
            kwargs=connection_kwargs(url),
            open=False,
            reconnect_timeout=RECONNECT_TIMEOUT_SECONDS,
        )
        self._opened = False
        self._open_lock = asyncio.Lock()
        self.counts = DatabaseCounts()

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
            self.counts.transactions += 1
            wrapped = _PostgresConnection(conn, self.counts)
            yield wrapped
            if wrapped.notifications:
                # PostgreSQL holds them with the transaction: delivered when it commits, dropped if it rolls back.
                self.counts.statements += 1
                await conn.execute(_notify_statement(wrapped.notifications))

    @asynccontextmanager
    async def single(self, sql: str) -> AsyncIterator[Connection]:
        """One statement on its own runs on an autocommit connection: as atomic as in a transaction of its own, in
        one round trip instead of three (no BEGIN, no COMMIT)."""
        pool = await self.pool()
        async with pool.connection() as conn:
            self.counts.single += 1
            yield _PostgresConnection(conn, self.counts)

    async def execute_script(self, sql: str, *, then: tuple[str, Params] | None = None) -> None:
        """Run a multi-statement script in one transaction; `then` (one statement with `:name` parameters, e.g. a
        migration's ledger row) runs in the same transaction, so both commit or neither does."""
        pool = await self.pool()
        async with pool.connection() as conn, conn.transaction():
            self.counts.transactions += 1
            self.counts.statements += 1 + (then is not None)
            # Bytes without parameters: psycopg sends the script as one simple query, several statements allowed.
            await conn.execute(sql.encode())
            if then is not None:
                await conn.execute(to_pyformat(then[0]), _adapt(then[1]))

    @asynccontextmanager
    async def exclusive(self, namespace: int, name: str, *, give_up_after: float) -> AsyncIterator[None]:
        """Hold the advisory lock (`namespace`, hash of `name`) in this database for the block; other sessions
        asking for it wait (up to `give_up_after` seconds, then `TimeoutError`).

        The lock is a transaction lock held by a dedicated connection that stays idle in its transaction while the
        block runs its statements on the pool. A session lock (`pg_advisory_lock`) would, behind a transaction pooler
        (Supabase's :6543), be taken on one server connection and possibly never released; a transaction pins its
        server connection, and ending it (or losing the connection) always releases the lock. Waiting is polled with
        `pg_try_advisory_xact_lock`, never blocked in `pg_advisory_xact_lock`: a waiter blocked in a statement keeps a
        snapshot open, and `CREATE INDEX CONCURRENTLY` (LangGraph's setup runs it) inside the block waits for every
        such snapshot, which is a deadlock across processes.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + give_up_after
        delay = _LOCK_POLL_FIRST
        conn = await psycopg.AsyncConnection.connect(
            self.url, prepare_threshold=None, autocommit=False, connect_timeout=max(1, round(self.open_timeout))
        )
        # Composed without parameters: psycopg sends a simple query, whose snapshot ends with it. With parameters,
        # the finished statement's portal (and its snapshot) would live on while the holder sits idle, and
        # `CREATE INDEX CONCURRENTLY` in the block would wait for the holder for ever. SET LOCAL (set_config's true):
        # a database-wide idle-in-transaction timeout must not end the holder mid-block.
        try_lock = sql.SQL(
            "SELECT set_config('idle_in_transaction_session_timeout', '0', true), "
            "pg_try_advisory_xact_lock({}, hashtext({})) AS locked"
        ).format(sql.Literal(namespace), sql.Literal(name))
        try:
            while True:
                row = await (await conn.execute(try_lock)).fetchone()
                if row is not None and row[1]:
                    break
                await conn.rollback()
                if loop.time() + delay > deadline:
                    raise TimeoutError(
                        f"advisory lock ({namespace}, {name!r}) still held by another session after {give_up_after:g} s"
                    )
                await asyncio.sleep(delay)
                delay = min(delay * 2, _LOCK_POLL_MAX)
            yield
        finally:
            # Ending the transaction releases the lock at once (closing alone would too, once the server notices).
            with contextlib.suppress(psycopg.Error):
                await conn.rollback()
            await conn.close()

    def listen(self) -> AbstractAsyncContextManager[AsyncIterator[str]]:
        """`LISTEN` on a connection of its own (a session: the pool's connections come and go), with the liveness
        settings, so a vanished server is noticed. Behind a transaction pooler (Supabase :6543) a session is not kept
        and notifications may never arrive: a listener should see one of its own arrive before relying on them."""
        return self._listen()

    @asynccontextmanager
    async def _listen(self) -> AsyncIterator[AsyncIterator[str]]:
        conn: psycopg.AsyncConnection[Row] = await psycopg.AsyncConnection.connect(
            self.url, **connection_kwargs(self.url)
        )
        try:
            row = await (await conn.execute(f"SELECT {_CHANNEL} AS channel")).fetchone()
            channel = str(row["channel"]) if row else ""
            await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
            yield _payloads(conn, channel)
        finally:
            await conn.close()

    async def close(self) -> None:
        if self._opened:
            await self._pool.close()
            self._opened = False
