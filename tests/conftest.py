"""Shared fixtures: a migrated database on each engine, a fixed clock, the example business."""

from __future__ import annotations

import os
import socket
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from _pytest.terminal import TerminalReporter

from core.business import Business, example_business
from store import Database, open_database
from store.migrate import migrate

# Copies of ../shared/fixtures (public payload shapes and signature vectors), so a clone is self-contained.
FIXTURES = Path(__file__).resolve().parent / "fixtures"


_real_connect = socket.socket.connect


def _loopback_only(self: socket.socket, address: object) -> None:
    # Real model, Twilio or Calendly requests are blocked: only this machine (PostgreSQL, test servers) is reachable.
    host = address[0] if isinstance(address, tuple) else address
    if self.family in (socket.AF_INET, socket.AF_INET6) and host not in ("127.0.0.1", "::1", "localhost"):
        raise ConnectionRefusedError(f"network access blocked in tests: {address!r}")
    _real_connect(self, address)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _offline_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests never read a developer's .env or reach a real model or tracer.
    monkeypatch.setenv("LANGSMITH_TRACING", "false")
    monkeypatch.setenv("LANGSMITH_TEST_TRACKING", "false")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setattr(socket.socket, "connect", _loopback_only)


def postgres_url() -> str | None:
    """The throwaway PostgreSQL database CI creates, if any."""
    return os.environ.get("TEST_DATABASE_URL")


class PostgresSchema:
    """A fresh schema per test inside TEST_DATABASE_URL, so tests never see each other's rows."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.name = f"t_{uuid.uuid4().hex[:12]}"

    @property
    def url(self) -> str:
        sep = "&" if "?" in self.base_url else "?"
        return f"{self.base_url}{sep}options={quote(f'-c search_path={self.name}')}"

    def create(self) -> None:
        with psycopg.connect(self.base_url, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{self.name}"')

    def drop(self) -> None:
        with psycopg.connect(self.base_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{self.name}" CASCADE')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL for an empty database on each engine (SQLite file, or a fresh PostgreSQL schema)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'asistente.db'}"
        return
    base = postgres_url()
    if base is None:
        pytest.skip("TEST_DATABASE_URL not set (CI sets it; see .ci/run)")
    schema = PostgresSchema(base)
    schema.create()
    try:
        yield schema.url
    finally:
        schema.drop()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """A migrated database on each engine."""
    database = open_database(database_url)
    await migrate(database)
    try:
        yield database
    finally:
        await database.close()


def _skip_reason(report: pytest.TestReport) -> str:
    # A skip's longrepr is (path, line, "Skipped: <reason>").
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return reason.removeprefix("Skipped: ")


def pytest_terminal_summary(terminalreporter: TerminalReporter) -> None:
    """One line per skip reason instead of one per test (`-rs` would list ~135 PostgreSQL tests one by one)."""
    reasons = Counter(_skip_reason(r) for r in terminalreporter.stats.get("skipped", []))
    # The PostgreSQL half is skipped with slightly different wordings; it is one cause, so one line.
    postgres = sum(count for reason, count in reasons.items() if "TEST_DATABASE_URL" in reason)
    if postgres:
        terminalreporter.write_line(f"skipped {postgres} PostgreSQL tests: TEST_DATABASE_URL not set (see .ci/run)")
    for reason, count in sorted(reasons.items()):
        if "TEST_DATABASE_URL" not in reason:
            terminalreporter.write_line(f"skipped {count}: {reason}")


@pytest.fixture
def business() -> Business:
    """The shipped example salon (Madrid)."""
    return example_business()


@pytest.fixture
def now() -> datetime:
    """A fixed 'now': Tuesday 24 November 2026, 21:00 UTC (22:00 in Madrid)."""
    return datetime(2026, 11, 24, 21, 0, tzinfo=UTC)
