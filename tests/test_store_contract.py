"""The persistence contract, run against SQLite and the real PostgreSQL from TEST_DATABASE_URL."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from store import Database, open_database
from store.appointments import AppointmentRepository, SlotTaken, slot_starts
from store.clients import ClientRepository
from store.inbound import InboundRepository
from store.migrate import applied_versions, load_migrations, migrate

START = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


async def _table_names(db: Database) -> set[str]:
    if db.dialect == "sqlite":
        rows = await db.fetch_all("SELECT name FROM sqlite_master WHERE type = 'table'")
    else:
        rows = await db.fetch_all(
            "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema()"
        )
    return {r["name"] for r in rows}


async def test_migrations_create_every_table_and_twice_changes_nothing(db: Database) -> None:
    tables = await _table_names(db)
    assert {
        "clients",
        "appointments",
        "calendar_claims",
        "inbound_messages",
        "outbox",
        "calendar_events",
        "reminders",
        "conversations",
        "schema_migrations",
    } <= tables
    before = await db.fetch_all("SELECT version, applied_at FROM schema_migrations ORDER BY version")
    assert await migrate(db) == []
    after = await db.fetch_all("SELECT version, applied_at FROM schema_migrations ORDER BY version")
    assert before == after
    assert await applied_versions(db) == {m.version for m in load_migrations(db.dialect)}
    assert await _table_names(db) == tables


async def test_duplicate_message_sid_from_two_concurrent_tasks_stores_one_row(
    db: Database, database_url: str, now: datetime
) -> None:
    # Two separate connections (two Database objects), as two server processes would have.
    other = open_database(database_url)
    try:
        results = await asyncio.gather(
            *(
                InboundRepository(conn).receive(
                    message_sid="SMf7cbe2cac02a991278c8c0f33d3e19cf",
                    wa_id="whatsapp:+34600123456",
                    body="Hola, quiero una cita",
                    received_at=now,
                )
                for conn in (db, other, db, other)
            )
        )
    finally:
        await other.close()
    assert sum(r is not None for r in results) == 1
    count = await db.fetch_value("SELECT COUNT(*) AS n FROM inbound_messages")
    assert count == 1


async def test_concurrent_double_booking_of_the_last_seat_yields_one_booking(
    db: Database, database_url: str, now: datetime
) -> None:
    clients = ClientRepository(db)
    ana = await clients.ensure("whatsapp:+34600000001", now=now)
    bea = await clients.ensure("whatsapp:+34600000002", now=now)
    end = START + timedelta(minutes=45)
    other = open_database(database_url)

    async def book(database: Database, client_id: int) -> str:
        try:
            appointment = await AppointmentRepository(database).create(
                client_id=client_id,
                service="Corte y Peinado",
                start_at=START,
                end_at=end,
                source="agent",
                calendar="local",
                now=now,
                claim_slots=slot_starts(START, end, 15),
                capacity=1,
            )
        except SlotTaken:
            return "taken"
        return appointment.id

    try:
        outcomes = await asyncio.gather(book(db, ana.id), book(other, bea.id))
    finally:
        await other.close()
    assert outcomes.count("taken") == 1
    confirmed = await db.fetch_value("SELECT COUNT(*) AS n FROM appointments WHERE status = 'confirmed'")
    assert confirmed == 1
    claims = await db.fetch_all("SELECT DISTINCT appointment_id FROM calendar_claims")
    assert len(claims) == 1


async def test_capacity_two_takes_two_bookings_then_refuses_an_overlapping_third(db: Database, now: datetime) -> None:
    repo = AppointmentRepository(db)
    client = await ClientRepository(db).ensure("whatsapp:+34600000003", now=now)

    async def book(start: datetime, minutes: int) -> None:
        end = start + timedelta(minutes=minutes)
        await repo.create(
            client_id=client.id,
            service="Tinte",
            start_at=start,
            end_at=end,
            source="agent",
            calendar="local",
            now=now,
            claim_slots=slot_starts(start, end, 15),
            capacity=2,
        )

    await book(START, 90)
    await book(START + timedelta(minutes=30), 45)
    with pytest.raises(SlotTaken):
        await book(START + timedelta(minutes=60), 30)  # both chairs busy 10:00-10:15
    # Nothing of the refused booking remains.
    assert await db.fetch_value("SELECT COUNT(*) AS n FROM appointments") == 2
    await book(START + timedelta(minutes=90), 30)  # chair 1 is free again at 10:30


async def test_cancelling_frees_the_seat(db: Database, now: datetime) -> None:
    repo = AppointmentRepository(db)
    client = await ClientRepository(db).ensure("whatsapp:+34600000004", now=now)
    end = START + timedelta(minutes=30)
    kwargs = dict(
        client_id=client.id,
        service="Peinado",
        start_at=START,
        end_at=end,
        source="agent",
        calendar="local",
        now=now,
        claim_slots=slot_starts(START, end, 15),
        capacity=1,
    )
    first = await repo.create(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(SlotTaken):
        await repo.create(**kwargs)  # type: ignore[arg-type]
    cancelled = await repo.cancel(first.id, now=now, reason="no puedo")
    assert cancelled is not None and cancelled.status == "cancelled"
    second = await repo.create(**kwargs)  # type: ignore[arg-type]
    assert second.id != first.id


async def test_idempotency_key_never_books_twice(db: Database, now: datetime) -> None:
    repo = AppointmentRepository(db)
    end = START + timedelta(minutes=30)
    results = await asyncio.gather(
        *(
            repo.create(
                client_id=None,
                service="Peinado",
                start_at=START,
                end_at=end,
                source="agent",
                calendar="local",
                now=now,
                idempotency_key="turn-1:call-1",
                claim_slots=slot_starts(START, end, 15),
                capacity=3,
            )
            for _ in range(3)
        )
    )
    assert len({r.id for r in results}) == 1
    assert await db.fetch_value("SELECT COUNT(*) AS n FROM appointments") == 1


async def test_datetimes_round_trip_aware(db: Database, now: datetime) -> None:
    clients = ClientRepository(db)
    client = await clients.ensure("whatsapp:+34600000005", now=now, profile_name="Ana")
    updated = await clients.update_profile(
        client.wa_id, now=now, email="ana@example.com", preferences={"stylist": "Lucía"}, last_visit_at=START
    )
    assert updated.last_visit_at == START
    assert updated.preferences == {"stylist": "Lucía"}
    assert updated.display_name == "Ana"
    assert await clients.find_by_contact(email="ANA@example.com") is None  # typed, not proven
    await clients.prove_email(client.id, " Ana@Example.com ", source="agent_booking", now=now)
    found = await clients.find_by_contact(email="ANA@example.com")
    assert found is not None and found.id == client.id


@pytest.mark.postgres
async def test_postgres_connections_never_prepare_statements() -> None:
    from store.postgres import PostgresDatabase
    from tests.conftest import postgres_url

    url = postgres_url()
    if url is None:
        pytest.skip("TEST_DATABASE_URL not set (CI sets it; see .ci/run)")
    db = open_database(url)
    try:
        assert isinstance(db, PostgresDatabase)
        pool = await db.pool()
        async with pool.connection() as conn:
            # Supabase's transaction pooler (:6543) breaks prepared statements; they must stay off.
            assert conn.prepare_threshold is None
            assert conn.autocommit is True
    finally:
        await db.close()


async def test_sqlite_connection_survives_a_task_cancelled_mid_transaction(tmp_path: Path, now: datetime) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'c.db'}")
    await migrate(db)
    try:
        clients = ClientRepository(db)
        for _ in range(20):
            task = asyncio.create_task(clients.ensure("whatsapp:+34600000009", now=now))
            await asyncio.sleep(0)  # cancelled wherever it is: before, during or after BEGIN/COMMIT
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        # The shared connection is usable and not stuck inside a transaction.
        client = await clients.ensure("whatsapp:+34600000009", now=now)
        assert client.wa_id == "whatsapp:+34600000009"
    finally:
        await db.close()
