"""Workers woken by the database, not by polling: PostgreSQL `LISTEN/NOTIFY` sent by the transactions that store work,
a listener per worker that survives losing its connection, and a worker in another process answering at once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import replace

import psycopg
import pytest

from core.clock import FixedClock
from server.pipeline.wakeup import Wakeup
from server.pipeline.work_listener import WorkListener
from store import Database, open_database
from store.database import Connection, Params, Row, Work
from store.inbound import InboundRepository
from store.outbox import OutboxRepository
from store.system_events import SystemEventRepository
from tests.server.conftest import FAST, Secrets, StartApp
from tests.server.helpers import CUSTOMER, FakeAgent, inbound_form, post_signed, wait_until

# Polls so slow that only a notification explains a prompt answer.
SLOW_POLLS = replace(FAST, poll_seconds=60.0, notify_poll_seconds=60.0)
OTHER = "whatsapp:+34600999111"


def _postgres_only(db: Database) -> None:
    if db.dialect != "postgres":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's; SQLite's one process wakes its worker in memory")


@asynccontextmanager
async def _raw_listener(url: str) -> AsyncIterator[psycopg.AsyncConnection[tuple[str]]]:
    """A plain psycopg session listening on the schema's channel, independent of the code under test."""
    conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
    try:
        row = await (await conn.execute("SELECT 'asistente_work.' || left(current_schema(), 40)")).fetchone()
        assert row is not None
        await conn.execute(psycopg.sql.SQL("LISTEN {}").format(psycopg.sql.Identifier(row[0])))
        yield conn
    finally:
        await conn.close()


async def _received(listener: psycopg.AsyncConnection[tuple[str]], db: Database) -> list[str]:
    """Payloads that arrived before a marker committed now: notifications come in commit order, so whatever an
    earlier transaction sent is in the list, and what it did not send is not (no waiting for silence)."""
    marker = f"marker:{uuid.uuid4().hex}"
    async with db.transaction() as conn:
        await conn.notify(marker)
    got: list[str] = []
    async with asyncio.timeout(5):
        async for notification in listener.notifies():
            if notification.payload == marker:
                return got
            got.append(notification.payload)
    raise AssertionError("the marker never arrived")


async def test_a_notification_is_sent_when_its_transaction_commits_and_never_when_it_rolls_back(
    db: Database, database_url: str
) -> None:
    _postgres_only(db)
    async with _raw_listener(database_url) as listener:
        with pytest.raises(RuntimeError):
            async with db.transaction() as conn:
                await conn.notify(Work.TURN)
                raise RuntimeError("rolled back")
        assert await _received(listener, db) == []

        async with db.transaction() as open_one:
            await open_one.notify(Work.TURN)
            await open_one.notify(Work.DELIVERY)
            await open_one.notify(Work.TURN)
            # Still open: a transaction committed meanwhile is heard of, this one not yet.
            assert await _received(listener, db) == []
        assert await _received(listener, db) == ["turn", "delivery"]  # at the commit, each kind once


async def test_storing_work_notifies_its_kind_and_a_duplicate_or_held_message_does_not(
    db: Database, database_url: str
) -> None:
    _postgres_only(db)
    inbound, outbox, events = InboundRepository(db), OutboxRepository(db), SystemEventRepository(db)
    at = await db.fetch_value("SELECT now()")
    async with _raw_listener(database_url) as listener:
        stored = await inbound.receive(message_sid="SM1", wa_id=CUSTOMER, body="hola", received_at=at)
        assert stored is not None
        assert await _received(listener, db) == ["turn"]
        assert await inbound.receive(message_sid="SM1", wa_id=CUSTOMER, body="hola", received_at=at) is None
        await inbound.receive(message_sid="SM2", wa_id=CUSTOMER, body="x", received_at=at, status="paused")
        assert await _received(listener, db) == []  # a Twilio retry, a message held for staff: nothing to run

        assert await outbox.enqueue(wa_id=CUSTOMER, parts=["a", "b"], kind="system", now=at, dedupe_key="k")
        assert await _received(listener, db) == ["delivery"]
        assert await outbox.enqueue(wa_id=CUSTOMER, parts=["a", "b"], kind="system", now=at, dedupe_key="k") == []
        assert await _received(listener, db) == []

        await inbound.answer([stored.id], wa_id=CUSTOMER, replies=[["echo"]], reply_to=stored.id, now=at)
        assert await _received(listener, db) == ["delivery"]

        for expected in (True, False):  # the second is a retried delivery of the same change
            queued = await events.enqueue(wa_id=CUSTOMER, source="calendly", description="x", dedupe_key="e", now=at)
            assert (queued is not None) is expected
        assert await _received(listener, db) == ["turn"]


async def test_sqlite_has_no_listener_and_notify_changes_nothing(db: Database) -> None:
    if db.dialect != "sqlite":
        pytest.skip("the engine without a push channel")
    assert db.listen() is None
    async with db.transaction() as conn:
        await conn.notify(Work.TURN)
    wakeups = _Counted(), _Counted()
    await asyncio.wait_for(WorkListener(db, turn=wakeups[0], delivery=wakeups[1]).run(), 1)  # returns at once
    assert (wakeups[0].count, wakeups[1].count) == (0, 0)


class _Counted(Wakeup):
    """A wakeup that counts how often it was set."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def set(self) -> None:
        self.count += 1
        super().set()


async def _listener_pid(db: Database) -> int | None:
    value = await db.fetch_value(
        "SELECT pid FROM pg_stat_activity WHERE query LIKE 'LISTEN %' AND query LIKE '%' || current_schema() || '%'"
    )
    return int(value) if value is not None else None


async def test_the_listener_reconnects_after_its_connection_is_killed_and_wakes_again(db: Database) -> None:
    _postgres_only(db)
    turn, delivery = _Counted(), _Counted()
    listener = WorkListener(db, turn=turn, delivery=delivery, first_retry_seconds=0.05)
    task = asyncio.create_task(listener.run())
    try:

        async def active() -> bool:
            return listener.active

        await wait_until(active)
        first_pid = await _listener_pid(db)
        assert first_pid is not None
        assert await db.fetch_value("SELECT pg_terminate_backend(:pid)", {"pid": first_pid})

        async def back() -> bool:
            return listener.sessions == 2 and listener.active

        await wait_until(back)
        assert await _listener_pid(db) not in (None, first_pid)

        turns, deliveries = turn.count, delivery.count
        at = await db.fetch_value("SELECT now()")
        await InboundRepository(db).receive(message_sid="SMr", wa_id=CUSTOMER, body="hola", received_at=at)

        async def woken() -> bool:
            return turn.count > turns

        await wait_until(woken)
        assert delivery.count == deliveries  # the kind that was stored, not everything
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert not listener.active

    async def closed() -> bool:  # its connection closed with it (the server ends the backend soon after)
        return await _listener_pid(db) is None

    await wait_until(closed)


class _SwallowedNotifications(Database):
    """The test database, except that notifications never leave (as behind a transaction pooler)."""

    def __init__(self, inner: Database) -> None:
        self._inner, self.dialect, self.url = inner, inner.dialect, inner.url
        self.counts = inner.counts

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        async with self._inner.transaction() as conn:
            yield _Mute(conn)

    def listen(self) -> AbstractAsyncContextManager[AsyncIterator[str]] | None:
        return self._inner.listen()

    async def execute_script(self, sql: str) -> None:
        await self._inner.execute_script(sql)

    async def close(self) -> None:
        """Owned by the test's `db` fixture."""


class _Mute(Connection):
    """A connection whose `notify` is the no-op of engines without a push channel."""

    def __init__(self, inner: Connection) -> None:
        self._inner = inner

    async def execute(self, sql: str, params: Params | None = None) -> int:
        return await self._inner.execute(sql, params)

    async def fetch_all(self, sql: str, params: Params | None = None) -> list[Row]:
        return await self._inner.fetch_all(sql, params)


async def test_a_listener_whose_probe_never_arrives_stays_inactive_so_the_worker_keeps_polling(
    db: Database,
) -> None:
    _postgres_only(db)
    turn, delivery = _Counted(), _Counted()
    listener = WorkListener(
        _SwallowedNotifications(db), turn=turn, delivery=delivery, first_retry_seconds=0.05, probe_timeout_seconds=0.2
    )
    task = asyncio.create_task(listener.run())
    try:
        # The listening session itself is up (its LISTEN ran), yet it is not trusted.
        async def listening_session() -> bool:
            return await _listener_pid(db) is not None

        await wait_until(listening_session)
        for _ in range(3):  # several probe periods
            await asyncio.sleep(0.2)
            assert not listener.active
        assert listener.sessions == 0
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_a_worker_in_another_process_answers_at_once_when_notified(
    start_app: StartApp, db: Database, database_url: str, keys: Secrets, agent: FakeAgent, clock: FixedClock
) -> None:
    _postgres_only(db)
    web_db = open_database(database_url)  # the web process's own pool, as in `serve --no-worker`
    try:
        async with (
            start_app(agent=None, run_worker=False, db=web_db) as web,
            start_app(agent=agent, options=SLOW_POLLS) as worker_app,
        ):
            worker = worker_app.services.worker

            async def listening() -> bool:
                return worker.listening

            await wait_until(listening)  # the listener `server.wiring` gives the worker is up
            await asyncio.sleep(0.3)  # the scan its (re)connection asks for is over
            # Control: a message written without a notification waits for the next poll, a minute away.
            quiet = InboundRepository(_SwallowedNotifications(db))
            assert await quiet.receive(message_sid="SMq", wa_id=OTHER, body="sin aviso", received_at=clock.now())
            await asyncio.sleep(0.5)
            assert agent.calls == []

            response = await post_signed(
                web.client, keys.twilio_token, "/webhook/whatsapp", inbound_form("SMn", "hola")
            )
            assert response.status_code == 200

            async def both_answered() -> bool:
                sent = await db.fetch_value("SELECT COUNT(*) FROM outbox WHERE status = 'sent'")
                return int(sent) == 2

            await wait_until(both_answered)  # 5 s at most: a poll cannot explain it, the notification does
            assert worker.listening
    finally:
        await web_db.close()
    assert sorted(text for call in agent.completed for text in call.texts) == ["hola", "sin aviso"]
