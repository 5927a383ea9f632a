"""Versioned schema migrations for both engines, applied idempotently (`asistente db migrate`).

Where applied versions are recorded (the ledger):

- SQLite: `schema_migrations` (version, name, applied_at) in the file.
- PostgreSQL whose target schema (`current_schema()`, the first existing schema of the search_path) is `public`: the
  Supabase CLI's own ledger, `supabase_migrations.schema_migrations` (version, statements, name), so that
  `supabase db push` and `asistente db migrate` agree on what is applied. A `public.schema_migrations` left by earlier
  versions of Asistente is merged into it on every run (and kept, closed like every table, for older code).
- PostgreSQL with any other target schema: `schema_migrations` inside that schema (the SQLite shape). One ledger per
  schema, because a database-wide ledger would make a second schema of the same database (one per test, or staging
  beside production) look migrated when it is empty.

On PostgreSQL a run holds the target schema's advisory lock (`schema_lock`) from its first statement to its last, so
processes starting together against a new database take turns, and it closes every table to Supabase's Data API
roles (`secure_tables`) before letting go.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

from store.database import Database, Dialect
from store.postgres import PostgresDatabase

# The advisory lock every schema change on PostgreSQL holds (the migrations, LangGraph's setup, securing tables) is
# (SCHEMA_LOCK_NAMESPACE, hash of the target schema): one fixed lock for a deployment, which uses one schema, while
# schemas of one database that share nothing (one per test) do not wait for each other. A two-part key: it can never
# be the single-number key earlier versions took, blocking, inside each migration's transaction (such a waiter keeps
# a snapshot open, which `CREATE INDEX CONCURRENTLY` under this lock would wait for, for ever).
SCHEMA_LOCK_NAMESPACE = 726_202_402
# A run waits this long for another process's run before giving up with TimeoutError.
SCHEMA_LOCK_TIMEOUT_SECONDS = 300.0

# Supabase's Data API roles; PUBLIC too, since every role (anon included) holds what PUBLIC is granted.
_DATA_API_ROLES = ("anon", "authenticated")

_CREATE_TABLE = re.compile(r'CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?"?(\w+)"?', re.IGNORECASE)


@dataclass(frozen=True)
class Migration:
    """One SQL file, `<version>_<name>.sql` as the Supabase CLI names them."""

    version: str
    name: str  # the file name without `.sql`, e.g. "20261124120000_initial_schema"
    sql: str

    @property
    def short_name(self) -> str:
        """The name without its version, as the Supabase CLI records it ("initial_schema")."""
        return self.name.split("_", 1)[1] if "_" in self.name else ""


@dataclass(frozen=True)
class Ledger:
    """A table recording applied versions: `create` makes it (idempotent), `record` adds one row (`:version`,
    `:name`, `:short_name`, `:sql`, `:applied_at` parameters)."""

    table: str
    create: str
    record: str


_PLAIN_LEDGER = Ledger(
    table="schema_migrations",
    create="""
        CREATE TABLE IF NOT EXISTS schema_migrations (
            version     TEXT PRIMARY KEY,
            name        TEXT NOT NULL,
            applied_at  TEXT NOT NULL
        );
    """,
    record="INSERT INTO schema_migrations (version, name, applied_at) VALUES (:version, :name, :applied_at) "
    "ON CONFLICT (version) DO NOTHING",
)

# The Supabase CLI's statements (pkg/migration/history.go), run as it runs them: older CLIs made the table without
# the last two columns. It stores each statement of a file apart; we store the whole file as one.
SUPABASE_LEDGER = Ledger(
    table="supabase_migrations.schema_migrations",
    create="""
        CREATE SCHEMA IF NOT EXISTS supabase_migrations;
        CREATE TABLE IF NOT EXISTS supabase_migrations.schema_migrations (version text NOT NULL PRIMARY KEY);
        ALTER TABLE supabase_migrations.schema_migrations ADD COLUMN IF NOT EXISTS statements text[];
        ALTER TABLE supabase_migrations.schema_migrations ADD COLUMN IF NOT EXISTS name text;
    """,
    record="INSERT INTO supabase_migrations.schema_migrations (version, name, statements) "
    "VALUES (:version, :short_name, ARRAY[CAST(:sql AS text)]) ON CONFLICT (version) DO NOTHING",
)

_ADOPT_OLD_LEDGER = """
INSERT INTO supabase_migrations.schema_migrations (version, name)
SELECT version, regexp_replace(name, '^[0-9]+_', '') FROM public.schema_migrations
ON CONFLICT (version) DO NOTHING
"""

# Each table among `:tables` in the target schema, and each sequence one of them owns (identity columns), with
# whether row-level security is on and which of PUBLIC and `:roles` hold any privilege on it. Looked up by name and
# dependency (index lookups), never by scanning the catalogue, whose statistics may be stale enough to invite JIT.
_EXPOSURE = """
WITH wanted AS (
    SELECT to_regclass(format('%I.%I', current_schema(), name))::oid AS oid
    FROM unnest(string_to_array(:tables, ',')) AS name
), relations AS (
    SELECT oid FROM wanted WHERE oid IS NOT NULL
    UNION
    SELECT d.objid FROM pg_depend AS d JOIN wanted AS w ON d.refobjid = w.oid
    WHERE d.refclassid = 'pg_class'::regclass AND d.classid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
)
SELECT format('%I.%I', n.nspname, c.relname) AS qualified, c.relkind AS kind, c.relrowsecurity AS rls,
       ARRAY(SELECT DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END
             FROM aclexplode(c.relacl) AS a LEFT JOIN pg_roles AS r ON r.oid = a.grantee
             WHERE a.grantee = 0 OR r.rolname = ANY (string_to_array(:roles, ','))) AS grantees
FROM relations JOIN pg_class AS c ON c.oid = relations.oid JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'S')
ORDER BY c.relkind, c.relname
"""


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


def created_tables(scripts: Iterable[str]) -> set[str]:
    """The names of the tables `CREATE TABLE` statements in `scripts` make (unqualified, lower case)."""
    return {match.group(1).lower() for script in scripts for match in _CREATE_TABLE.finditer(script)}


def application_tables() -> set[str]:
    """Every table our PostgreSQL migrations create, and the ledger a schema may hold (`schema_migrations`)."""
    return created_tables(m.sql for m in load_migrations(Dialect.POSTGRES)) | {"schema_migrations"}


async def ledger_for(db: Database) -> Ledger:
    """The ledger `db` records versions in (the rule is in the module docstring)."""
    if db.dialect is Dialect.SQLITE:
        return _PLAIN_LEDGER
    schema = await db.fetch_value("SELECT current_schema() AS schema")
    if schema is None:
        raise RuntimeError("no schema to migrate: no schema of the connection's search_path exists")
    return SUPABASE_LEDGER if schema == "public" else _PLAIN_LEDGER


async def applied_versions(db: Database) -> set[str]:
    """Versions already recorded in `db`'s ledger (empty when there is none yet)."""
    ledger = await ledger_for(db)
    if db.dialect is Dialect.SQLITE:
        await db.execute(ledger.create)
    elif not await db.fetch_value("SELECT to_regclass(:table) IS NOT NULL AS present", {"table": ledger.table}):
        # Reading never creates the ledger: only `migrate`, under the schema lock, changes the schema.
        return set()
    rows = await db.fetch_all(f"SELECT version FROM {ledger.table}")
    return {str(row["version"]) for row in rows}


@asynccontextmanager
async def schema_lock(db: Database) -> AsyncIterator[None]:
    """Hold the schema lock for the block on PostgreSQL (other processes' schema changes wait); nothing on SQLite,
    whose file lock already serialises each migration's transaction."""
    if isinstance(db, PostgresDatabase):
        schema = await db.fetch_value("SELECT current_schema() AS schema")
        async with db.exclusive(SCHEMA_LOCK_NAMESPACE, str(schema), give_up_after=SCHEMA_LOCK_TIMEOUT_SECONDS):
            yield
    else:
        yield


async def migrate(db: Database, *, then: Callable[[], Awaitable[None]] | None = None) -> list[str]:
    """Apply every migration not yet recorded and close the tables to the Data API roles, then run `then` (e.g.
    LangGraph's setup), all under one schema lock; return the names applied (empty when up to date)."""
    async with schema_lock(db):
        applied = await _apply(db)
        await secure_tables(db, application_tables())
        if then is not None:
            await then()
    return applied


async def _apply(db: Database) -> list[str]:
    ledger = await ledger_for(db)
    await db.execute_script(ledger.create)
    if ledger is SUPABASE_LEDGER and await db.fetch_value(
        "SELECT to_regclass('public.schema_migrations') IS NOT NULL AS present"
    ):
        # A deployment migrated before the Supabase ledger was adopted: what it applied stays applied.
        await db.execute(_ADOPT_OLD_LEDGER)
    done = await applied_versions(db)
    applied: list[str] = []
    for migration in load_migrations(db.dialect):
        if migration.version in done:
            continue
        row = {
            "version": migration.version,
            "name": migration.name,
            "short_name": migration.short_name,
            "sql": migration.sql,
            "applied_at": datetime.now(UTC).isoformat(),
        }
        # The file and its ledger row commit together: a failed migration leaves no trace.
        if isinstance(db, PostgresDatabase):
            await db.execute_script(migration.sql, then=(ledger.record, row))
        else:
            # SQLite's scripts take no parameters; the values come from our own file names and the clock.
            await db.execute_script(
                f"{migration.sql}\nINSERT INTO schema_migrations (version, name, applied_at) "
                f"VALUES ('{row['version']}', '{row['name']}', '{row['applied_at']}') ON CONFLICT (version) DO NOTHING;"
            )
        applied.append(migration.name)
    return applied


async def secure_tables(db: Database, tables: Iterable[str]) -> list[str]:
    """Close `tables` (those present in the target schema) and their sequences to Supabase's Data API: row-level
    security on, with no policy, and every privilege PUBLIC, `anon` or `authenticated` holds revoked. Return the
    statements run (none once secure, so a routine start takes no table lock). Nothing to do on SQLite.

    The service connection owns the tables, and row-level security (not FORCEd) does not apply to the owner.
    """
    if db.dialect is not Dialect.POSTGRES:
        return []
    params = {"tables": ",".join(sorted(tables)), "roles": ",".join(_DATA_API_ROLES)}
    statements: list[str] = []
    for row in await db.fetch_all(_EXPOSURE, params):
        if row["kind"] != "S" and not row["rls"]:
            statements.append(f"ALTER TABLE {row['qualified']} ENABLE ROW LEVEL SECURITY")
        if row["grantees"]:
            kind = "SEQUENCE" if row["kind"] == "S" else "TABLE"
            statements.append(f"REVOKE ALL ON {kind} {row['qualified']} FROM {', '.join(row['grantees'])}")
    if statements:
        await db.execute_script(";\n".join(statements))
    return statements
