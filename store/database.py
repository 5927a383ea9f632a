"""The one database interface the repositories use (`store.engines` opens SQLite or PostgreSQL behind it).

Queries are written once, in the SQL both engines share, with `:name` parameters. Each implementation adapts
parameter style and value types (datetimes, JSON, booleans) so repositories never branch on the engine, except
where `dialect` says a feature exists on one side only (e.g. `FOR UPDATE SKIP LOCKED`).
"""

from __future__ import annotations

import abc
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

Row = dict[str, Any]
Params = Mapping[str, object]


class Dialect(StrEnum):
    """The SQL engine behind a `Database`."""

    SQLITE = "sqlite"
    POSTGRES = "postgres"


class Work(StrEnum):
    """What a notification tells the workers of other processes to look for (see `Connection.notify`)."""

    TURN = "turn"  # inbound messages or system events to run as turns
    DELIVERY = "delivery"  # outbox rows to send


class IntegrityConflict(Exception):
    """A write refused by a UNIQUE or PRIMARY KEY constraint (e.g. the slot was just taken by someone else)."""


@dataclass
class DatabaseCounts:
    """What a `Database` sent to its engine: integer counters, always on (an increment costs nothing measurable).

    `transactions` are explicit ones (BEGIN ... COMMIT or ROLLBACK); `single` are statements run on their own
    outside any (one implicit transaction each on the server); `statements` counts every statement, inside a
    transaction or not. Compare two snapshots (`copy()`, then subtract) to see what some work cost.
    """

    transactions: int = 0
    single: int = 0
    statements: int = 0

    @property
    def server_transactions(self) -> int:
        """Transactions the engine ran: the explicit ones plus one per single statement."""
        return self.transactions + self.single

    @property
    def round_trips(self) -> int:
        """Requests to the engine: every statement, plus BEGIN and COMMIT of each explicit transaction."""
        return self.statements + 2 * self.transactions

    def copy(self) -> DatabaseCounts:
        """A snapshot of the counters as they are now."""
        return DatabaseCounts(self.transactions, self.single, self.statements)

    def __sub__(self, earlier: DatabaseCounts) -> DatabaseCounts:
        return DatabaseCounts(*(getattr(self, f.name) - getattr(earlier, f.name) for f in fields(self)))


class Connection(abc.ABC):
    """One connection inside a transaction: every statement commits or rolls back together."""

    @abc.abstractmethod
    async def execute(self, sql: str, params: Params | None = None) -> int:
        """Run a statement; return the number of rows it changed."""

    @abc.abstractmethod
    async def fetch_all(self, sql: str, params: Params | None = None) -> list[Row]:
        """Run a query and return every row as a dict."""

    async def fetch_one(self, sql: str, params: Params | None = None) -> Row | None:
        """Run a query and return its first row, or None."""
        rows = await self.fetch_all(sql, params)
        return rows[0] if rows else None

    async def fetch_value(self, sql: str, params: Params | None = None) -> Any:
        """Run a query and return the first column of its first row, or None."""
        row = await self.fetch_one(sql, params)
        return next(iter(row.values())) if row else None

    async def notify(self, payload: str) -> None:
        """Tell every process listening (`Database.listen`) that this transaction wrote work (a `Work`), once it
        commits; nothing is sent if it rolls back. A no-op on engines without a push channel (SQLite: its one
        process's worker is woken in memory), so store code calls it whatever the engine."""
        del payload


class Database(abc.ABC):
    """A pool of connections to one database. Use `transaction()` for anything that writes more than one row."""

    dialect: Dialect
    url: str
    counts: DatabaseCounts  # set by each engine

    @abc.abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[Connection]:
        """An async context manager yielding a `Connection`; commits on success, rolls back on error."""

    def single(self, sql: str) -> AbstractAsyncContextManager[Connection]:
        """Where the conveniences below run `sql`, one statement on its own: by default in its own transaction; an
        engine may run it without one where a lone statement is just as atomic (and cheaper)."""
        return self.transaction()

    @abc.abstractmethod
    async def execute_script(self, sql: str) -> None:
        """Run a multi-statement SQL script (migrations) in one transaction."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release every connection."""

    def listen(self) -> AbstractAsyncContextManager[AsyncIterator[str]] | None:
        """A session on its own connection receiving the payloads `Connection.notify` sends from any process, as
        they commit; None when the engine has no push channel. The iterator raises when the connection is lost."""
        return None

    async def ping(self) -> None:
        """Raise if the database cannot be reached."""
        async with self.transaction() as conn:
            await conn.fetch_value("SELECT 1 AS ok")

    # Conveniences for single statements: each is atomic on its own (see `single`).
    async def execute(self, sql: str, params: Params | None = None) -> int:
        """Run one statement on its own."""
        async with self.single(sql) as conn:
            return await conn.execute(sql, params)

    async def fetch_all(self, sql: str, params: Params | None = None) -> list[Row]:
        """Run one query on its own."""
        async with self.single(sql) as conn:
            return await conn.fetch_all(sql, params)

    async def fetch_one(self, sql: str, params: Params | None = None) -> Row | None:
        """Run one query on its own and return its first row."""
        async with self.single(sql) as conn:
            return await conn.fetch_one(sql, params)

    async def fetch_value(self, sql: str, params: Params | None = None) -> Any:
        """Run one query on its own and return its first value."""
        async with self.single(sql) as conn:
            return await conn.fetch_value(sql, params)


def utc_text(value: datetime) -> str:
    """A timezone-aware datetime as fixed-width UTC text, so SQLite compares and sorts it correctly."""
    if value.tzinfo is None:
        raise ValueError("naive datetime passed to the database; every datetime must be timezone-aware")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def to_json_text(value: Mapping[str, object] | Sequence[object]) -> str:
    """JSON text for a dict or list parameter (non-ASCII kept readable)."""
    return json.dumps(value, ensure_ascii=False, default=str)


def parse_json(value: object) -> Any:
    """A JSON column read back: PostgreSQL already decodes JSONB, SQLite returns text."""
    if isinstance(value, str | bytes):
        return json.loads(value)
    return value


def parse_datetime(value: object) -> datetime | None:
    """A timestamp column read back as an aware datetime (SQLite returns text, PostgreSQL datetimes)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def in_list(values: Sequence[object], prefix: str = "id") -> tuple[str, Params]:
    """Named placeholders and parameters for `IN (...)` over `values`; portable across both engines."""
    names = [f"{prefix}{i}" for i in range(len(values))]
    return ", ".join(f":{n}" for n in names), dict(zip(names, values, strict=True))
