"""`asistente check` and `asistente db migrate` as a user runs them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from core.settings import get_settings
from store import Dialect, open_database
from store.migrate import applied_versions, load_migrations

runner = CliRunner()


@pytest.fixture(autouse=True)
def _fresh_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for key in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "CALENDLY_ACCESS_TOKEN", "JWT_SECRET", "BUSINESS_CONFIG"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'data' / 'a.db'}")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_check_on_defaults_passes_and_lists_backends() -> None:
    result = runner.invoke(app, ["check", "--offline"])
    assert result.exit_code == 0, result.output
    assert "Peluquería RB" in result.output
    assert "database  ok" in result.output


def test_check_with_broken_env_exits_1_naming_the_key(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("CALENDLY_ACCESS_TOKEN=tu_access_token\n")
    result = runner.invoke(app, ["check", "--offline"])
    assert result.exit_code == 1
    assert "CALENDLY_ACCESS_TOKEN" in result.output


def test_check_with_broken_business_yaml_exits_1_naming_the_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "salon.yaml").write_text(
        "name: X\nservices: [{name: Corte, duration_minutes: 30, price_eur: gratis}]\nopening_hours: {}\n"
    )
    monkeypatch.setenv("BUSINESS_CONFIG", str(tmp_path / "salon.yaml"))
    result = runner.invoke(app, ["check", "--offline"])
    assert result.exit_code == 1
    assert "services.0.price_eur" in result.output


def test_check_reports_an_unreachable_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/nowhere?connect_timeout=1")
    result = runner.invoke(app, ["check", "--offline"])
    assert result.exit_code == 1
    assert "database  FAILED" in result.output


def test_db_migrate_creates_the_file_and_is_idempotent(tmp_path: Path) -> None:
    first = runner.invoke(app, ["db", "migrate"])
    assert first.exit_code == 0, first.output
    assert "applied: 0001_initial_schema" in first.output
    second = runner.invoke(app, ["db", "migrate"])
    assert second.exit_code == 0 and "schema up to date" in second.output

    async def inspect() -> tuple[set[str], set[str]]:
        db = open_database(f"sqlite:///{tmp_path / 'data' / 'a.db'}")
        try:
            rows = await db.fetch_all("SELECT name FROM sqlite_master WHERE type='table'")
            return await applied_versions(db), {r["name"] for r in rows}
        finally:
            await db.close()

    versions, tables = asyncio.run(inspect())
    assert versions == {m.version for m in load_migrations(Dialect.SQLITE)}
    assert {"checkpoints", "writes", "appointments"} <= tables  # LangGraph's tables set up too


@pytest.mark.postgres
def test_db_migrate_on_postgres_sets_up_the_schema_and_checkpoint_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import PostgresSchema, postgres_url

    base = postgres_url()
    if base is None:
        pytest.skip("TEST_DATABASE_URL not set")
    schema = PostgresSchema(base)
    schema.create()
    try:
        monkeypatch.setenv("DATABASE_URL", schema.url)
        get_settings.cache_clear()
        assert runner.invoke(app, ["db", "migrate"]).exit_code == 0
        again = runner.invoke(app, ["db", "migrate"])
        assert again.exit_code == 0 and "schema up to date" in again.output

        async def tables() -> set[str]:
            db = open_database(schema.url)
            try:
                rows = await db.fetch_all(
                    "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema()"
                )
                return {r["name"] for r in rows}
            finally:
                await db.close()

        assert {"appointments", "checkpoints", "checkpoint_writes", "checkpoint_migrations"} <= asyncio.run(tables())
    finally:
        schema.drop()
