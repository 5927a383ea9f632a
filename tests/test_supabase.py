"""Supabase: every table closed to the Data API roles, and the Supabase CLI's migration ledger (real PostgreSQL).

Supabase serves `public` over HTTP to `anon` (anyone with the project's anon key) and `authenticated`, and its
default privileges grant both every right on new tables there. These tests reproduce that on the test cluster
(the two roles, created if missing and never dropped: roles are cluster-wide and other databases may use them) and
migrate as a non-superuser owner, as Supabase's `postgres` is, since a superuser bypasses row-level security anyway.
"""

from __future__ import annotations

import tomllib
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, urlsplit

import psycopg
import pytest
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

from agent.checkpointer import CHECKPOINT_TABLES, migrate_with_checkpoints
from store import Database, open_database
from store.clients import ClientRepository
from store.database import Dialect
from store.inbound import InboundRepository
from store.migrate import SUPABASE_LEDGER, application_tables, applied_versions, load_migrations, migrate
from store.postgres import PostgresDatabase
from tests.conftest import postgres_url

ROOT = Path(__file__).resolve().parent.parent
DATA_API_ROLES = ("anon", "authenticated")
# Owns what the tests migrate: a plain role, like Supabase's `postgres` (not a superuser there).
OWNER = "asistente_test_owner"
NOW = datetime(2026, 11, 24, 21, 0, tzinfo=UTC)


def test_supabase_config_is_the_cli_layout_and_exposes_no_extra_schema() -> None:
    config = tomllib.loads((ROOT / "supabase" / "config.toml").read_text(encoding="utf-8"))
    assert config["project_id"] == "asistente"
    assert config["db"]["major_version"] in (15, 17)
    # The CLI's defaults: neither supabase_migrations nor any other schema is added to the Data API.
    assert config["api"]["schemas"] == ["public", "graphql_public"]
    assert (ROOT / "supabase" / "migrations").is_dir()


def base_url() -> str:
    """TEST_DATABASE_URL, or skip."""
    url = postgres_url()
    if url is None:
        pytest.skip("TEST_DATABASE_URL not set (CI sets it; see .ci/run)")
    return url


def ensure_roles(conn: psycopg.Connection[tuple[object, ...]], *names: str) -> None:
    """Create NOLOGIN roles that do not exist yet (concurrent creators tolerated)."""
    for name in names:
        conn.execute(
            f"DO $$ BEGIN CREATE ROLE {name} NOLOGIN; "
            "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
        )


def grant_like_supabase(conn: psycopg.Connection[tuple[object, ...]], schema: str, owner: str) -> None:
    """What Supabase does for `public`: the Data API roles may use the schema and get every right on what the
    owner creates there from now on."""
    ensure_roles(conn, *DATA_API_ROLES)
    roles = ", ".join(DATA_API_ROLES)
    conn.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO {roles}')
    conn.execute(f'ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA "{schema}" GRANT ALL ON TABLES TO {roles}')
    conn.execute(f'ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA "{schema}" GRANT ALL ON SEQUENCES TO {roles}')


def with_options(url: str, options: str) -> str:
    """`url` with libpq startup options (e.g. `-c search_path=x`)."""
    return f"{url}{'&' if '?' in url else '?'}options={quote(options)}"


@contextmanager
def fresh_database(base: str) -> Iterator[str]:
    """A new, empty database on TEST_DATABASE_URL's server (its `public` included), dropped afterwards."""
    name = f"asistente_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlsplit(base)._replace(path=f"/{name}").geturl()
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def owned_schema() -> Iterator[tuple[str, str, str]]:
    """(schema, URL migrating it as OWNER, superuser URL on it): a fresh schema set up like Supabase's `public`."""
    base = base_url()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as conn:
        ensure_roles(conn, OWNER)
        conn.execute(f'CREATE SCHEMA "{schema}" AUTHORIZATION {OWNER}')
        grant_like_supabase(conn, schema, OWNER)
    try:
        yield (
            schema,
            with_options(base, f"-c search_path={schema} -c role={OWNER}"),
            with_options(base, f"-c search_path={schema}"),
        )
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


async def _populate(db: Database) -> None:
    # One row in the tables every conversation writes: a client, a message, a checkpoint with a blob and a write.
    await ClientRepository(db).ensure("whatsapp:+34600123456", now=NOW)
    await InboundRepository(db).receive(
        message_sid="SM00000000000000000000000000000001", wa_id="whatsapp:+34600123456", body="Hola", received_at=NOW
    )
    assert isinstance(db, PostgresDatabase)
    saver = AsyncPostgresSaver(conn=await db.pool())
    checkpoint = empty_checkpoint()
    checkpoint["channel_values"] = {"messages": ["Hola"]}
    config = await saver.aput(
        {"configurable": {"thread_id": "whatsapp:+34600123456", "checkpoint_ns": ""}},
        checkpoint,
        {"source": "input", "step": -1, "parents": {}},
        {"messages": 1},
    )
    await saver.aput_writes(config, [("messages", "Hola")], task_id="task-1")


@pytest.fixture
async def migrated(owned_schema: tuple[str, str, str]) -> AsyncIterator[tuple[str, str]]:
    """(schema, superuser URL) once the owner has migrated everything and stored a conversation."""
    schema, owner_url, super_url = owned_schema
    db = open_database(owner_url)
    try:
        await migrate_with_checkpoints(db)
        await _populate(db)
    finally:
        await db.close()
    yield schema, super_url


def _relations(conn: psycopg.Connection[tuple[object, ...]], kinds: str) -> dict[str, tuple[bool, bool]]:
    rows = conn.execute(
        "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity FROM pg_class c "
        "WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = ANY (%s)",
        (list(kinds),),
    ).fetchall()
    return {str(name): (bool(rls), bool(forced)) for name, rls, forced in rows}


def _count(conn: psycopg.Connection[tuple[object, ...]], relation: str, role: str | None = None) -> int:
    """Rows of `relation` that `role` (or the superuser) can see."""
    conn.execute(f"SET ROLE {role}" if role else "RESET ROLE")
    try:
        row = conn.execute(f'SELECT count(*) FROM "{relation}"').fetchone()
    finally:
        conn.execute("RESET ROLE")
    assert row is not None
    return int(str(row[0]))


@pytest.mark.postgres
def test_data_api_roles_are_denied_every_table_and_sequence(migrated: tuple[str, str]) -> None:
    _, super_url = migrated
    with psycopg.connect(super_url, autocommit=True) as conn:
        tables = _relations(conn, "rp")
        # Our tables, LangGraph's and the ledger: all there, all with row-level security, none FORCEd (the owner
        # connection must keep reading them).
        assert application_tables() | CHECKPOINT_TABLES <= set(tables)
        assert {name for name, (rls, forced) in tables.items() if not rls or forced} == set()
        sequences = _relations(conn, "S")
        assert "clients_id_seq" in sequences
        for role in DATA_API_ROLES:
            for relation in [*tables, *sequences]:
                # Privileges revoked: not even zero rows, the query itself is refused.
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    _count(conn, relation, role)


@pytest.mark.postgres
def test_row_level_security_hides_every_row_even_if_privileges_come_back(migrated: tuple[str, str]) -> None:
    schema, super_url = migrated
    with psycopg.connect(super_url, autocommit=True) as conn:
        tables = list(_relations(conn, "rp"))
        # A later GRANT (by hand, or a tool re-applying Supabase's defaults) must still expose nothing.
        conn.execute(f'GRANT SELECT ON ALL TABLES IN SCHEMA "{schema}" TO {", ".join(DATA_API_ROLES)}')
        for role in DATA_API_ROLES:
            assert {table: _count(conn, table, role) for table in tables} == dict.fromkeys(tables, 0)
        # ...while the owner, not a superuser, still reads every row there is.
        owner_rows = {table: _count(conn, table, OWNER) for table in tables}
        assert owner_rows == {table: _count(conn, table) for table in tables}
    written = {"clients", "inbound_messages", "checkpoints", "checkpoint_blobs", "checkpoint_writes"}
    assert {table for table in written if owner_rows[table] == 0} == set()


@pytest.mark.postgres
async def test_public_records_versions_in_the_supabase_cli_ledger() -> None:
    with fresh_database(base_url()) as url:
        db = open_database(url)
        try:
            applied = await migrate_with_checkpoints(db)
            assert await migrate(db) == []
            columns = await db.fetch_all(
                "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
                "WHERE table_schema = 'supabase_migrations' AND table_name = 'schema_migrations' ORDER BY column_name"
            )
            rows = await db.fetch_all(
                "SELECT version, name, statements FROM supabase_migrations.schema_migrations ORDER BY version"
            )
            stray = await db.fetch_value("SELECT to_regclass('public.schema_migrations') IS NOT NULL AS present")
        finally:
            await db.close()
    migrations = load_migrations(Dialect.POSTGRES)
    assert applied == [m.name for m in migrations]
    assert columns == [
        {"column_name": "name", "data_type": "text", "is_nullable": "YES"},
        {"column_name": "statements", "data_type": "ARRAY", "is_nullable": "YES"},
        {"column_name": "version", "data_type": "text", "is_nullable": "NO"},
    ]
    # As the CLI records them: version, the name after it, and the SQL.
    assert rows == [{"version": m.version, "name": m.short_name, "statements": [m.sql]} for m in migrations]
    assert stray is False  # no ledger of our own in `public`


@pytest.mark.postgres
async def test_versions_supabase_db_push_applied_are_not_applied_again() -> None:
    first, *rest = load_migrations(Dialect.POSTGRES)
    with fresh_database(base_url()) as url:
        # `supabase db push` applied the first file and recorded it its own way (its statements, in one transaction).
        with psycopg.connect(url) as conn:
            conn.execute(SUPABASE_LEDGER.create.encode())
            conn.execute(first.sql.encode())
            conn.execute(
                "INSERT INTO supabase_migrations.schema_migrations(version, name, statements) VALUES (%s, %s, %s)",
                (first.version, first.short_name, ["-- statements as the CLI split them"]),
            )
        db = open_database(url)
        try:
            applied = await migrate_with_checkpoints(db)
            versions = await applied_versions(db)
        finally:
            await db.close()
    assert applied == [m.name for m in rest]
    assert versions == {first.version} | {m.version for m in rest}


@pytest.mark.postgres
async def test_an_earlier_ledger_in_public_is_adopted() -> None:
    *before, last = load_migrations(Dialect.POSTGRES)
    with fresh_database(base_url()) as url:
        # A deployment migrated by an earlier version: every file but the last, recorded in public.schema_migrations.
        with psycopg.connect(url) as conn:
            conn.execute("CREATE TABLE schema_migrations (version TEXT PRIMARY KEY, name TEXT, applied_at TEXT)")
            for migration in before:
                conn.execute(migration.sql.encode())
                conn.execute(
                    "INSERT INTO schema_migrations VALUES (%s, %s, %s)", (migration.version, migration.name, "earlier")
                )
        db = open_database(url)
        try:
            applied = await migrate_with_checkpoints(db)
            adopted = await db.fetch_all("SELECT version, name FROM supabase_migrations.schema_migrations")
            old_ledger_rls = await db.fetch_value(
                "SELECT relrowsecurity FROM pg_class WHERE oid = 'public.schema_migrations'::regclass"
            )
        finally:
            await db.close()
    assert applied == [last.name]
    expected = {m.version: m.short_name for m in [*before, last]}
    assert {row["version"]: row["name"] for row in adopted} == expected
    # Kept for older code, but closed like every table in `public`.
    assert old_ledger_rls is True


@pytest.mark.postgres
async def test_each_schema_other_than_public_keeps_its_own_ledger() -> None:
    with fresh_database(base_url()) as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE SCHEMA salon_a")
            conn.execute("CREATE SCHEMA salon_b")
        applied: dict[str, list[str]] = {}
        for schema in ("salon_a", "salon_b"):
            db = open_database(with_options(url, f"-c search_path={schema}"))
            try:
                applied[schema] = await migrate(db)
                assert await db.fetch_value("SELECT count(*) AS n FROM schema_migrations") == len(applied[schema])
            finally:
                await db.close()
        with psycopg.connect(url) as conn:
            shared = conn.execute("SELECT to_regnamespace('supabase_migrations') IS NOT NULL").fetchone()
    everything = [m.name for m in load_migrations(Dialect.POSTGRES)]
    # The second schema is migrated in full: a database-wide ledger would have called it up to date.
    assert applied == {"salon_a": everything, "salon_b": everything}
    assert shared == (False,)
