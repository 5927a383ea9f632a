"""Versioned schema migrations for both engines, applied idempotently (`asistente db migrate`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

from store.database import Database, Dialect

_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    applied_at  TEXT NOT NULL
)
"""

# Serialises concurrent `migrate` runs against one PostgreSQL (several servers starting together).
_PG_MIGRATION_LOCK = 7_262_024_001


@dataclass(frozen=True)
class Migration:
    """One SQL file: its version is the part of the file name before the first underscore."""

    version: str
    name: str
    sql: str


def migrations_dir(dialect: Dialect) -> Path:
    """Where the SQL files for an engine live (the Supabase CLI layout for PostgreSQL when run from a checkout)."""
    package = Path(str(resources.files("store"))) / "migrations"
    if dialect is Dialect.SQLITE:
        return package / "sqlite"
    in_checkout = Path(__file__).resolve().parent.parent / "supabase" / "migrations"
    return in_checkout if in_checkout.is_dir() else package / "postgres"


def load_migrations(dialect: Dialect) -> list[Migration]:
    """Every migration for an engine, in version order."""
    files = sorted(migrations_dir(dialect).glob("*.sql"))
    if not files:
        raise FileNotFoundError(f"no migrations found in {migrations_dir(dialect)}")
    return [Migration(version=f.stem.split("_", 1)[0], name=f.stem, sql=f.read_text(encoding="utf-8")) for f in files]


async def applied_versions(db: Database) -> set[str]:
    """Versions already recorded in the ledger."""
    await db.execute(_LEDGER)
    rows = await db.fetch_all("SELECT version FROM schema_migrations")
    return {str(row["version"]) for row in rows}


async def migrate(db: Database) -> list[str]:
    """Apply every migration not yet recorded; return the names applied (empty when up to date)."""
    await db.execute(_LEDGER)
    applied: list[str] = []
    for migration in load_migrations(db.dialect):
        ledger_insert = (
            "INSERT INTO schema_migrations (version, name, applied_at) "
            f"VALUES ('{migration.version}', '{migration.name}', '{datetime.now(UTC).isoformat()}') "
            "ON CONFLICT (version) DO NOTHING;"
        )
        guard = ""
        if db.dialect is Dialect.POSTGRES:
            guard = f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK});\n"
        if migration.version in await applied_versions(db):
            continue
        # The file and its ledger row commit together: a failed migration leaves no trace.
        await db.execute_script(f"{guard}{migration.sql}\n{ledger_insert}")
        applied.append(migration.name)
    return applied
