"""A database outage loses no message: the webhook answers within its bound, spools what the database did not take,
and the drainer stores each spooled webhook once, with its arrival time, when the database answers again."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl

import pytest

from core.clock import FixedClock
from core.settings import Settings
from server.pipeline.spool import SpoolUnavailable, WebhookSpool
from store import Database
from store.conversations import ConversationRepository
from store.database import Connection, Params, Row
from store.inbound import InboundRepository
from store.postgres import connection_kwargs
from tests.server.conftest import FAST, RunningApp, Secrets, StartApp
from tests.server.helpers import (
    CUSTOMER,
    FakeAgent,
    TwilioDouble,
    fixture_text,
    inbound_form,
    outbox_settled,
    post_signed,
    wait_until,
)

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
# The bound under test: tiny, so that a webhook answered while the database still hangs proves the bound held.
BOUNDED = replace(FAST, intake_timeout_seconds=0.2, spool_retry_seconds=0.05)

SAFETY_NET_SECONDS = 10.0

Mode = Literal["up", "fail", "hang", "hang_commit"]


class _Watched(Connection):
    """A connection that remembers the statements run on it."""

    def __init__(self, inner: Connection) -> None:
        self._inner = inner
        self.statements: list[str] = []

    async def execute(self, sql: str, params: Params | None = None) -> int:
        self.statements.append(sql)
        return await self._inner.execute(sql, params)

    async def fetch_all(self, sql: str, params: Params | None = None) -> list[Row]:
        self.statements.append(sql)
        return await self._inner.fetch_all(sql, params)


class FlakyDatabase(Database):
    """The test database behind a switch. `fail`: every transaction raises, as with the server stopped. `hang`:
    every transaction waits before reaching the server. `hang_commit`: a transaction that stored an inbound message
    waits at its commit and, like a driver waiting for the server's answer, does not give up when cancelled: it
    commits once released, after the webhook has answered (the late commit that makes a message both spooled and
    stored)."""

    def __init__(self, inner: Database) -> None:
        self._inner = inner
        self.dialect = inner.dialect
        self.url = inner.url
        self.mode: Mode = "up"
        self._released = asyncio.Event()

    def release(self) -> None:
        """The database answers again: everything waiting goes on, nothing waits any more."""
        self.mode = "up"
        self._released.set()

    def hold(self, mode: Mode) -> None:
        """Switch to a failure mode."""
        self._released.clear()
        self.mode = mode

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        if self.mode == "fail":
            raise ConnectionRefusedError("connection to the database refused")
        if self.mode == "hang":
            await self._released.wait()
        cancelled = False
        async with self._inner.transaction() as conn:
            watched = _Watched(conn)
            yield watched
            if self.mode == "hang_commit" and any("INSERT INTO inbound_messages" in s for s in watched.statements):
                while not self._released.is_set():
                    try:
                        await self._released.wait()
                    except asyncio.CancelledError:
                        cancelled = True
        if cancelled:
            raise asyncio.CancelledError

    async def execute_script(self, sql: str) -> None:
        await self._inner.execute_script(sql)

    async def close(self) -> None:
        """Owned by the test's `db` fixture."""


@pytest.fixture
def flaky(db: Database) -> FlakyDatabase:
    """The app's database, switchable."""
    return FlakyDatabase(db)


@pytest.fixture
def spool_dir(tmp_path: Path) -> Path:
    """This test's spool directory (not created: the first spooled webhook creates it)."""
    return tmp_path / "spool"


@pytest.fixture
def start_bounded(
    start_app: StartApp, flaky: FlakyDatabase, make_settings: Callable[..., Settings], spool_dir: Path
) -> Callable[..., Any]:
    """Start the app on the switchable database, with the small bound and this test's spool."""

    def start(**overrides: Any) -> Any:
        fields: dict[str, Any] = {"db": flaky, "options": BOUNDED, "settings": make_settings(spool_dir=spool_dir)}
        return start_app(**(fields | overrides))

    return start


def spooled(spool_dir: Path) -> list[str]:
    return sorted(p.name for p in spool_dir.glob("*.json")) if spool_dir.exists() else []


def spool_count(server: RunningApp, kind: str, outcome: str) -> float:
    value = server.services.metrics.registry.get_sample_value(
        "asistente_webhook_spool_total", {"kind": kind, "outcome": outcome}
    )
    return value or 0.0


async def post(server: RunningApp, keys: Secrets, sid: str, body: str) -> tuple[int, str]:
    # The outer limit only turns a webhook that hangs with the database into a failure instead of a stuck test.
    request = post_signed(server.client, keys.twilio_token, "/webhook/whatsapp", inbound_form(sid, body))
    response = await asyncio.wait_for(request, SAFETY_NET_SECONDS)
    return response.status_code, response.text


async def stored(db: Database) -> list[tuple[str, datetime]]:
    return [(m.message_sid, m.received_at) for m in await InboundRepository(db).for_conversation(CUSTOMER)]


async def _all_answered(db: Database) -> bool:
    return int(await db.fetch_value("SELECT COUNT(*) FROM inbound_messages WHERE status <> 'processed'")) == 0


async def test_database_down_messages_are_spooled_then_stored_once_with_arrival_time_and_answered(
    start_bounded: Callable[..., Any],
    flaky: FlakyDatabase,
    db: Database,
    keys: Secrets,
    clock: FixedClock,
    spool_dir: Path,
    agent: FakeAgent,
    twilio: TwilioDouble,
) -> None:
    async with start_bounded() as server:
        flaky.hold("fail")
        first_at = clock.now()
        assert await post(server, keys, "SM1", "Hola") == (200, EMPTY_TWIML)
        clock.advance(timedelta(seconds=5))
        second_at = clock.now()
        assert await post(server, keys, "SM2", "quiero cita") == (200, EMPTY_TWIML)
        assert await post(server, keys, "SM1", "Hola") == (200, EMPTY_TWIML)  # Twilio's retry, while spooled

        assert spooled(spool_dir) == ["inbound-SM1.json", "inbound-SM2.json"]
        entry = json.loads((spool_dir / "inbound-SM1.json").read_text())
        assert (entry["received_at"], entry["form"]["Body"]) == (first_at.isoformat(), "Hola")
        assert await stored(db) == []
        assert (spool_count(server, "inbound", "spooled"), spool_count(server, "inbound", "duplicate")) == (2, 1)

        clock.advance(timedelta(seconds=30))  # the database comes back later: stored times must not be that
        flaky.release()

        async def drained() -> bool:
            # The count goes up just after the file is removed: waited for too, not raced.
            counted = spool_count(server, "inbound", "drained") == 2
            return counted and not spooled(spool_dir) and len(await stored(db)) == 2

        await wait_until(drained)
        assert await stored(db) == [("SM1", first_at), ("SM2", second_at)]
        conversation = await ConversationRepository(db).get(CUSTOMER)
        assert conversation is not None and conversation.last_inbound_at == second_at  # the 24-hour window

        # SM1 has long been quiet, so its turn may start before SM2 is stored: one turn or two, in order.
        await wait_until(lambda: _all_answered(db))
        await outbox_settled(db)
        assert agent.customer_texts() == ["Hola", "quiero cita"]
        assert [m.status for m in await InboundRepository(db).for_conversation(CUSTOMER)] == ["processed"] * 2
        assert len(twilio.messages()) == len(await db.fetch_all("SELECT id FROM outbox")) >= 1


async def test_hanging_database_the_webhook_answers_within_its_bound_and_nothing_waits_on_it(
    start_bounded: Callable[..., Any], flaky: FlakyDatabase, db: Database, keys: Secrets, spool_dir: Path
) -> None:
    async with start_bounded() as server:
        flaky.hold("hang")
        # Answered while the database has still not answered anything: the 0.2 s bound, not the database, ended it.
        assert await post(server, keys, "SM1", "Hola") == (200, EMPTY_TWIML)
        assert spooled(spool_dir) == ["inbound-SM1.json"]
        assert server.services.receiver.timeout_seconds == BOUNDED.intake_timeout_seconds

        flaky.release()

        async def drained() -> bool:
            return not spooled(spool_dir) and [sid for sid, _ in await stored(db)] == ["SM1"]

        await wait_until(drained)
        await outbox_settled(db)


async def test_a_write_that_commits_after_the_timeout_and_its_spooled_copy_are_one_message(
    start_bounded: Callable[..., Any],
    flaky: FlakyDatabase,
    db: Database,
    keys: Secrets,
    spool_dir: Path,
    agent: FakeAgent,
    twilio: TwilioDouble,
) -> None:
    async with start_bounded() as server:
        flaky.hold("hang_commit")
        assert await post(server, keys, "SM1", "Hola") == (200, EMPTY_TWIML)
        assert spooled(spool_dir) == ["inbound-SM1.json"]

        flaky.release()  # the abandoned write commits now; the drainer then finds SM1 already stored

        async def drained() -> bool:
            return not spooled(spool_dir) and [sid for sid, _ in await stored(db)] == ["SM1"]

        await wait_until(drained)
        await outbox_settled(db)
        await asyncio.sleep(0.2)  # room for a second turn or reply, if the message had been taken twice
        assert [sid for sid, _ in await stored(db)] == ["SM1"]
        assert [c.texts for c in agent.calls] == [["Hola"]]
        assert len(twilio.messages()) == 1


async def test_newer_messages_queue_behind_spooled_ones_and_a_spool_left_by_a_crash_is_drained_in_order(
    start_bounded: Callable[..., Any],
    flaky: FlakyDatabase,
    db: Database,
    keys: Secrets,
    clock: FixedClock,
    spool_dir: Path,
    agent: FakeAgent,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Left by a process killed during an outage.
    left_at = clock.now() - timedelta(minutes=2)
    assert WebhookSpool(spool_dir).put("inbound", "SMold", inbound_form("SMold", "primero"), left_at)
    flaky.hold("fail")
    async with start_bounded(options=replace(BOUNDED, spool_retry_seconds=3600.0)) as server:

        async def start_pass_met_the_outage() -> bool:
            return any(r.getMessage().startswith("database unavailable") for r in caplog.records)

        await wait_until(start_pass_met_the_outage)
        flaky.release()
        # The database answers, but SMold still waits (the drainer retries later): SMnew must queue behind it, or it
        # would get the lower id and be answered first.
        assert await post(server, keys, "SMnew", "segundo") == (200, EMPTY_TWIML)
        assert spooled(spool_dir) == ["inbound-SMnew.json", "inbound-SMold.json"]

        assert await server.services.receiver.drain() == 0
        assert await stored(db) == [("SMold", left_at), ("SMnew", clock.now())]

        # SMold has long been quiet, so its turn may start before SMnew is stored: one turn or two, in order.
        await wait_until(lambda: _all_answered(db))
        await outbox_settled(db)
        assert agent.customer_texts() == ["primero", "segundo"]


async def test_a_spool_left_by_a_crash_is_drained_at_start(
    start_bounded: Callable[..., Any], db: Database, clock: FixedClock, spool_dir: Path, agent: FakeAgent
) -> None:
    left_at = clock.now() - timedelta(minutes=1)
    assert WebhookSpool(spool_dir).put("inbound", "SMcrash", inbound_form("SMcrash", "hola"), left_at)
    async with start_bounded():

        async def drained() -> bool:
            return not spooled(spool_dir) and await stored(db) == [("SMcrash", left_at)]

        await wait_until(drained)
        await outbox_settled(db)
        assert agent.customer_texts() == ["hola"]


async def test_delivery_status_callbacks_are_spooled_and_applied_later(
    start_bounded: Callable[..., Any], flaky: FlakyDatabase, db: Database, keys: Secrets, spool_dir: Path
) -> None:
    async with start_bounded() as server:
        assert await post(server, keys, "SM1", "Hola") == (200, EMPTY_TWIML)
        sid = (await outbox_settled(db))[0]["twilio_sid"]
        flaky.hold("fail")
        form = dict(parse_qsl(fixture_text("twilio-status-callback-failed.form")))
        form["MessageSid"] = form["SmsSid"] = sid
        response = await post_signed(server.client, keys.twilio_token, "/webhook/whatsapp/status", form)
        assert response.status_code == 204
        assert spooled(spool_dir) == [f"status-{sid}-{form['MessageStatus']}.json"]

        flaky.release()

        async def applied() -> bool:
            rows = await db.fetch_all("SELECT status, error_code FROM outbox")
            return not spooled(spool_dir) and [(r["status"], r["error_code"]) for r in rows] == [("failed", "63016")]

        await wait_until(applied)


async def test_neither_database_nor_spool_means_503_never_200(
    start_bounded: Callable[..., Any],
    flaky: FlakyDatabase,
    db: Database,
    keys: Secrets,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    async with start_bounded(settings=make_settings(spool_dir=blocker / "spool")) as server:
        flaky.hold("fail")
        response = await post_signed(server.client, keys.twilio_token, "/webhook/whatsapp", inbound_form("SM1", "Hola"))
        assert response.status_code == 503
        assert "Hola" not in response.text and CUSTOMER not in response.text
        assert spool_count(server, "inbound", "write_failed") == 1
        assert (await server.client.get("/health")).json()["spool"]["writable"] is False
        flaky.release()
        assert await stored(db) == []


async def test_health_and_metrics_show_the_spool_depth(
    start_bounded: Callable[..., Any], flaky: FlakyDatabase, keys: Secrets
) -> None:
    async with start_bounded() as server:
        flaky.hold("fail")
        await post(server, keys, "SM1", "Hola")
        health = (await server.client.get("/health")).json()
        metrics = server.services.metrics.registry.get_sample_value(
            "asistente_webhook_spool_depth", {"kind": "inbound"}
        )
        flaky.release()
    assert health["spool"] == {"inbound": 1, "status": 0, "writable": True}
    assert health["dependencies"]["database"]["ok"] is False
    assert metrics == 1


def test_spool_entries_are_whole_files_kept_once_per_key_and_read_back_oldest_first(
    tmp_path: Path, now: datetime
) -> None:
    spool = WebhookSpool(tmp_path / "spool")
    assert spool.put("inbound", "SMb", {"Body": "segundo"}, now + timedelta(seconds=1))
    assert spool.put("inbound", "SMa", {"Body": "primero"}, now)
    assert not spool.put("inbound", "SMa", {"Body": "primero"}, now + timedelta(minutes=5))  # a retry: first kept
    assert spool.put("status", "../../etc/passwd", {"MessageSid": "x"}, now)  # never a path outside the spool
    (tmp_path / "spool" / "inbound-SMbroken.json").write_text("{not json")

    reopened = WebhookSpool(tmp_path / "spool")  # as after a restart
    entries = reopened.entries()
    assert [(e.kind, e.form, e.received_at) for e in entries] == [
        ("inbound", {"Body": "primero"}, now),
        ("status", {"MessageSid": "x"}, now),
        ("inbound", {"Body": "segundo"}, now + timedelta(seconds=1)),
    ]
    assert all(e.path.parent == tmp_path / "spool" for e in entries)
    assert not list((tmp_path / "spool").glob(".*"))  # no temporary file left behind
    assert (tmp_path / "spool" / "rejected" / "inbound-SMbroken.json").exists()  # set aside, not deleted
    assert reopened.depth() == {"inbound": 2, "status": 1}

    reopened.remove(entries[0])
    assert reopened.depth() == {"inbound": 1, "status": 1}


def test_an_unusable_spool_directory_is_reported_and_refuses_entries(tmp_path: Path, now: datetime) -> None:
    (tmp_path / "file").write_text("")
    spool = WebhookSpool(tmp_path / "file" / "spool")
    assert spool.problem() is not None
    with pytest.raises(SpoolUnavailable):
        spool.put("inbound", "SM1", {"Body": "hola"}, now)
    assert WebhookSpool(tmp_path / "fresh" / "spool").problem() is None


def test_postgres_connections_give_up_in_seconds_unless_the_url_says_otherwise() -> None:
    assert connection_kwargs("postgresql://u@db.internal/app")["connect_timeout"] == 5
    assert connection_kwargs("postgresql://u@db.internal/app")["keepalives_idle"] == 30
    assert "connect_timeout" not in connection_kwargs("postgresql://u@db.internal/app?connect_timeout=20")
