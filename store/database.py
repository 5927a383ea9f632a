"""The one database interface the repositories use (`store.engines` opens SQLite or PostgreSQL behind it).

Queries are written once, in the SQL both engines share, with `:name` parameters. Each implementation adapts
parameter style and value types (datetimes, JSON, booleans) so repositories never branch on the engine, except
where `dialect` says a feature exists on one side only (e.g. `FOR UPDATE SKIP LOCKED`).
"""

from __future__ import annotations

import abc
import json
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

Row = dict[str, Any]
Params = Mapping[str, object]


class Dialect(StrEnum):
    """The SQL engine behind a `Database`."""

    SQLITE = "sqlite"
    POSTGRES = "postgres"


class IntegrityConflict(Exception):
    """A write refused by a UNIQUE or PRIMARY KEY constraint (e.g. the slot was just taken by someone else)."""


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


class Database(abc.ABC):
    """A pool of connections to one database. Use `transaction()` for anything that writes more than one row."""

    dialect: Dialect
    url: str

    @abc.abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[Connection]:
        """An async context manager yielding a `Connection`; commits on success, rolls back on error."""

    @abc.abstractmethod
    async def execute_script(self, sql: str) -> None:
        """Run a multi-statement SQL script (migrations) in one transaction."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release every connection."""

    async def ping(self) -> None:
        """Raise if the database cannot be reached."""
        async with self.transaction() as conn:
            await conn.fetch_value("SELECT 1 AS ok")

    # Conveniences for single statements.
    async def execute(self, sql: str, params: Params | None = None) -> int:
        """Run one statement in its own transaction."""
        async with self.transaction() as conn:
            return await conn.execute(sql, params)

    async def fetch_all(self, sql: str, params: Params | None = None) -> list[Row]:
        """Run one query in its own transaction."""
        async with self.transaction() as conn:
            return await conn.fetch_all(sql, params)

    async def fetch_one(self, sql: str, params: Params | None = None) -> Row | None:
        """Run one query in its own transaction and return its first row."""
        async with self.transaction() as conn:
            return await conn.fetch_one(sql, params)

    async def fetch_value(self, sql: str, params: Params | None = None) -> Any:
        """Run one query in its own transaction and return its first value."""
        async with self.transaction() as conn:
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
