"""Fewer round trips (issue 11), at the store: what each change saves, and that it keeps the guarantees it touches.

Statements on their own run without BEGIN/COMMIT (and, on SQLite, without waiting for another process's writer),
yet never inside another task's transaction; intake decides a message's status in the transaction that stores it;
a lease is taken in one statement by exactly one of many workers; an answer can hand the lease back in its own
transaction; the parts of a message go in with one statement, in order.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from store import Database, open_database
from store.conversations import ConversationRepository
from store.database import Dialect
from store.inbound import InboundRepository
from store.intake_status import IntakeRules
from store.migrate import migrate
from store.outbox_insert import insert_outbox
from store.system_events import SystemEventRepository

WA = "whatsapp:+34600123456"


async def test_the_counters_tell_transactions_from_statements_on_their_own(db: Database) -> None:
    before = db.counts.copy()
    async with db.transaction() as conn:
        await conn.execute("INSERT INTO conversations (wa_id, updated_at) VALUES (:w, :n)", {"w": WA, "n": _now()})
        await conn.fetch_value("SELECT COUNT(*) AS n FROM conversations")
    assert await db.fetch_value("SELECT COUNT(*) AS n FROM conversations") == 1
    await db.execute("UPDATE conversations SET paused = :p WHERE wa_id = :w", {"p": True, "w": WA})
    spent = db.counts - before
    assert (spent.transactions, spent.single, spent.statements) == (1, 2, 4)
    assert (spent.server_transactions, spent.round_trips) == (3, 6)


async def test_a_statement_on_its_own_never_runs_inside_another_tasks_transaction(db: Database) -> None:
    # On SQLite every task shares one connection: a read slipped between the statements of another task's
    # transaction would see its uncommitted row. It waits for the transaction instead, and sees it rolled back.
    inserted, finish = asyncio.Event(), asyncio.Event()

    async def failing_transaction() -> None:
        async with db.transaction() as conn:
            await conn.execute("INSERT INTO conversations (wa_id, updated_at) VALUES (:w, :n)", {"w": WA, "n": _now()})
            inserted.set()
            await finish.wait()
            raise RuntimeError("rolled back")

    writer = asyncio.create_task(failing_transaction())
    await inserted.wait()
    reader = asyncio.create_task(db.fetch_value("SELECT COUNT(*) AS n FROM conversations"))
    finish.set()
    with pytest.raises(RuntimeError, match="rolled back"):
        await writer
    assert await reader == 0


async def test_on_sqlite_a_read_does_not_wait_for_another_process_writing(tmp_path: Path) -> None:
    # Two processes on one file. Before, every read took BEGIN IMMEDIATE and waited for the other's write
    # transaction to end (up to the 10 s busy timeout); WAL lets it read the last committed state at once.
    url = f"sqlite:///{tmp_path / 'two.db'}"
    first, second = open_database(url), open_database(url)
    try:
        await migrate(first)
        await ConversationRepository(first).record_inbound(WA, at=_now())
        writing, done = asyncio.Event(), asyncio.Event()

        async def long_write() -> None:
            async with second.transaction() as conn:
                await conn.execute("DELETE FROM conversations")
                writing.set()
                await done.wait()

        writer = asyncio.create_task(long_write())
        await writing.wait()
        try:
            # The other process holds the write lock: the read answers at once, from what was committed.
            assert await asyncio.wait_for(ConversationRepository(first).get(WA), timeout=2) is not None
        finally:
            done.set()
            await writer
        assert await ConversationRepository(first).get(WA) is None
    finally:
        await first.close()
        await second.close()


async def test_intake_decides_the_status_in_the_transaction_that_stores_the_message(db: Database) -> None:
    inbound, conversations = InboundRepository(db), ConversationRepository(db)
    rules = IntakeRules(limit=2, since=_now() - timedelta(minutes=1))

    async def receive(sid: str, seconds: int) -> str | None:
        at = _now() + timedelta(seconds=seconds)
        before = db.counts.copy()
        stored = await inbound.receive(message_sid=sid, wa_id=WA, body="hola", received_at=at, rules=rules)
        assert (db.counts - before).transactions == 1  # status, message and window: one transaction
        return stored.status if stored else None

    assert [await receive("SM1", 1), await receive("SM2", 2), await receive("SM3", 3)] == [
        "pending",
        "pending",
        "rate_limited",
    ]
    assert await receive("SM1", 4) is None  # Twilio's retry: nothing stored
    await conversations.set_paused(WA, paused=True, by="staff", now=_now())
    assert await receive("SM4", 5) == "paused"
    conversation = await conversations.get(WA)
    assert conversation is not None and conversation.last_inbound_at == _now() + timedelta(seconds=5)


async def test_a_lease_is_won_by_exactly_one_of_many_workers_in_one_statement(db: Database, database_url: str) -> None:
    other = open_database(database_url)  # a second process
    try:
        for attempt, at in enumerate((_now(), _now() + timedelta(minutes=5))):  # a new conversation, then expired
            repos = [ConversationRepository(d) for d in (db, other, db, other, db, other)]
            won = await asyncio.gather(
                *(
                    repo.acquire_lease(WA, owner=f"w{attempt}-{i}", now=at, until=at + timedelta(seconds=15))
                    for i, repo in enumerate(repos)
                )
            )
            assert sum(won) == 1, won
            conversation = await ConversationRepository(db).get(WA)
            assert conversation is not None and conversation.lease_owner == f"w{attempt}-{won.index(True)}"
            # The holder takes it again; nobody else does while it is live.
            owner = conversation.lease_owner
            later = at + timedelta(seconds=5)
            assert await repos[0].acquire_lease(WA, owner=owner, now=later, until=later + timedelta(seconds=15))
            assert not await repos[0].acquire_lease(WA, owner="late", now=later, until=later)
    finally:
        await other.close()
    before = db.counts.copy()
    await ConversationRepository(db).acquire_lease(WA, owner="x", now=_now() + timedelta(hours=1), until=_now())
    assert (db.counts - before).statements == 1


async def test_an_answer_hands_the_lease_back_only_when_nothing_else_is_due(db: Database) -> None:
    inbound, conversations = InboundRepository(db), ConversationRepository(db)
    now = _now()
    first = await inbound.receive(message_sid="SM1", wa_id=WA, body="hola", received_at=now)
    second = await inbound.receive(message_sid="SM2", wa_id=WA, body="¿sigues?", received_at=now)
    assert first is not None and second is not None
    assert await conversations.acquire_lease(WA, owner="w1", now=now, until=now + timedelta(seconds=15))

    async def answer(message_id: int) -> bool:
        answered = await inbound.answer(
            [message_id], wa_id=WA, replies=[["vale"]], reply_to=message_id, now=now, owner="w1", release_when_done=True
        )
        return answered.released

    assert not await answer(first.id)  # "¿sigues?" is still to answer: the worker keeps the conversation
    event = await SystemEventRepository(db).enqueue(
        wa_id=WA, source="calendly", description="cita cancelada", dedupe_key="e1", now=now
    )
    assert event is not None
    assert not await answer(second.id)  # a calendar event is due too
    await db.execute("UPDATE system_events SET next_attempt_at = :later", {"later": now + timedelta(minutes=1)})
    third = await inbound.receive(message_sid="SM3", wa_id=WA, body="gracias", received_at=now)
    assert third is not None
    assert await answer(third.id)  # the event waits out a backoff: nothing is due, the lease goes back
    conversation = await conversations.get(WA)
    assert conversation is not None and conversation.lease_owner is None


async def test_the_parts_of_a_message_go_in_with_one_statement_in_order_and_once(db: Database) -> None:
    parts = ["primera parte", "segunda parte", "tercera parte"]
    before = db.counts.copy()
    async with db.transaction() as conn:
        ids = await insert_outbox(conn, wa_id=WA, parts=parts, kind="reply", now=_now(), dedupe_key="reply:1:0")
    assert (db.counts - before).statements == 1 + (db.dialect is Dialect.POSTGRES)  # PostgreSQL: + NOTIFY
    rows = await db.fetch_all("SELECT id, body, dedupe_key FROM outbox ORDER BY id")
    assert [r["id"] for r in rows] == ids == sorted(ids)
    assert [r["body"] for r in rows] == parts
    assert [r["dedupe_key"] for r in rows] == ["reply:1:0#0", "reply:1:0#1", "reply:1:0#2"]
    async with db.transaction() as conn:  # the same message again (a retried turn): nothing new
        assert await insert_outbox(conn, wa_id=WA, parts=parts, kind="reply", now=_now(), dedupe_key="reply:1:0") == []


def _now() -> datetime:
    return datetime.fromisoformat("2026-11-24T21:00:00+00:00")
