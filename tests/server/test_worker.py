"""The worker: crash recovery (answered exactly once), leases, several workers on one database."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

from core.clock import FixedClock
from server.options import ServerOptions
from store import Database, open_database
from store.inbound import InboundRepository
from tests.server.conftest import FAST, RunningApp, Secrets, StartApp
from tests.server.helpers import CUSTOMER, FakeAgent, TwilioDouble, inbound_form, post_signed, wait_until


async def _answered(db: Database, count: int = 1) -> None:
    async def done() -> bool:
        sent = await db.fetch_value("SELECT COUNT(*) FROM outbox WHERE status = 'sent'")
        return int(sent) >= count

    await wait_until(done)


async def test_worker_killed_mid_turn_then_restarted_answers_exactly_once(
    start_app: StartApp, db: Database, database_url: str, keys: Secrets, twilio: TwilioDouble, clock: FixedClock
) -> None:
    first_agent = FakeAgent(gate=asyncio.Event())
    # The first "process" has its own connection, abandoned when it dies, as a real crash would.
    first_db = open_database(database_url)
    async with start_app(agent=first_agent, db=first_db) as first:
        await post_signed(first.client, keys.twilio_token, "/webhook/whatsapp", inbound_form("SMk", "hola"))
        await asyncio.wait_for(first_agent.entered.wait(), 5)
        await first.services.worker.stop(grace_seconds=0)  # killed inside the turn
    await first_db.close()
    # A killed process cannot release its lease: the next worker waits for it to expire.
    clock.advance(timedelta(seconds=FAST.lease_seconds + 1))
    row = await db.fetch_one("SELECT status FROM inbound_messages WHERE message_sid = 'SMk'")
    assert row == {"status": "processing"}
    assert await db.fetch_all("SELECT id FROM outbox") == []
    assert first_agent.completed == []

    second_agent = FakeAgent()
    async with start_app(agent=second_agent):
        await _answered(db)
        await asyncio.sleep(0.3)
    assert [c.texts for c in second_agent.completed] == [["hola"]]
    outbox = await db.fetch_all("SELECT body, status FROM outbox")
    assert outbox == [{"body": "echo: hola", "status": "sent"}]
    assert len(twilio.messages()) == 1
    assert (await db.fetch_one("SELECT status FROM inbound_messages"))["status"] == "processed"  # type: ignore[index]


async def _crashed_turn(db: Database, clock: FixedClock, *, lease_left: timedelta) -> None:
    """What a worker killed with SIGKILL leaves: a message marked 'processing' under its (unreleased) lease."""
    stored = await InboundRepository(db).store(
        message_sid="SMcrash", wa_id=CUSTOMER, body="quiero cita", received_at=clock.now(), status="processing"
    )
    assert stored is not None
    await db.execute(
        "INSERT INTO conversations (wa_id, last_inbound_at, lease_owner, lease_until, updated_at) "
        "VALUES (:wa_id, :now, 'dead-worker', :until, :now)",
        {"wa_id": CUSTOMER, "now": clock.now(), "until": clock.now() + lease_left},
    )


async def test_processing_message_under_an_expired_lease_is_resumed_on_start(
    start_app: StartApp, db: Database, clock: FixedClock, agent: FakeAgent
) -> None:
    await _crashed_turn(db, clock, lease_left=timedelta(seconds=-1))
    async with start_app():
        await _answered(db)
        await asyncio.sleep(0.3)
    assert [c.texts for c in agent.completed] == [["quiero cita"]]
    assert len(await db.fetch_all("SELECT id FROM outbox")) == 1
    conversation = await db.fetch_one("SELECT lease_owner FROM conversations")
    assert conversation == {"lease_owner": None}


async def test_a_live_lease_of_another_worker_is_respected_until_it_expires(
    start_app: StartApp, db: Database, clock: FixedClock, agent: FakeAgent
) -> None:
    await _crashed_turn(db, clock, lease_left=timedelta(seconds=30))
    async with start_app():
        await asyncio.sleep(0.4)
        assert agent.calls == []  # the other worker might still be running that turn
        clock.advance(timedelta(seconds=31))
        await _answered(db)
    assert [c.texts for c in agent.completed] == [["quiero cita"]]


async def test_two_workers_twenty_customers_every_message_answered_once_never_concurrently(
    start_app: StartApp, db: Database, database_url: str, keys: Secrets
) -> None:
    agent = FakeAgent(delay=0.05)
    other_agent = agent.twin()
    second_db = open_database(database_url)
    customers = [f"whatsapp:+346001000{n:02d}" for n in range(20)]
    try:
        async with start_app(agent=agent) as one, start_app(agent=other_agent, db=second_db) as two:

            async def customer_writes(index: int, wa_id: str) -> None:
                for n in range(3):
                    app: RunningApp = (one, two)[(index + n) % 2]
                    form = inbound_form(f"SM{index:02d}x{n}", f"{wa_id[-2:]}-{n}", wa_id=wa_id)
                    response = await post_signed(app.client, keys.twilio_token, "/webhook/whatsapp", form)
                    assert response.status_code == 200

            await asyncio.gather(*(customer_writes(i, wa) for i, wa in enumerate(customers)))

            async def all_processed() -> bool:
                statuses = await db.fetch_all("SELECT status FROM inbound_messages")
                return len(statuses) == 60 and all(s["status"] == "processed" for s in statuses)

            await wait_until(all_processed, within=20)
            await asyncio.sleep(0.3)
    finally:
        await second_db.close()

    assert agent.completed and other_agent.completed  # both workers took part
    turns = agent.completed + other_agent.completed
    seen = Counter(text for call in turns for text in call.texts)
    assert len(seen) == 60 and set(seen.values()) == {1}  # every message in exactly one completed turn
    assert max(agent.max_concurrent.values()) == 1  # shared tracker: never two turns at once for a customer
    for wa_id in customers:
        calls = sorted((c for c in turns if c.wa_id == wa_id), key=lambda c: c.texts[0])
        texts = [t for c in calls for t in c.texts]
        assert texts == [f"{wa_id[-2:]}-{n}" for n in range(3)]
        for call in calls:
            assert call.texts == sorted(call.texts)  # arrival order inside each turn
    replies = await db.fetch_all("SELECT wa_id, inbound_message_id FROM outbox WHERE kind = 'reply'")
    assert len(replies) == len(turns)
    assert len({r["inbound_message_id"] for r in replies}) == len(replies)


async def test_a_worker_that_loses_its_lease_abandons_the_turn_without_answering(
    start_app: StartApp, db: Database, keys: Secrets
) -> None:
    agent = FakeAgent(gate=asyncio.Event())
    options = ServerOptions(**{**FAST.__dict__, "lease_seconds": 0.3})
    async with start_app(agent=agent, options=options) as running:
        await post_signed(running.client, keys.twilio_token, "/webhook/whatsapp", inbound_form("SMl", "hola"))
        await asyncio.wait_for(agent.entered.wait(), 5)
        # Another worker took the conversation over (this one's lease had expired, e.g. a long GC pause).
        await db.execute("UPDATE conversations SET lease_owner = 'other-worker'")

        await asyncio.sleep(0.5)  # a heartbeat (every 0.1 s) finds the lease gone and cancels the turn
        agent.gate.set()  # type: ignore[union-attr]
        await asyncio.sleep(0.2)
    assert agent.completed == []  # the turn was cancelled, not finished
    assert await db.fetch_all("SELECT id FROM outbox") == []
    row = await db.fetch_one("SELECT status FROM inbound_messages")
    assert row == {"status": "processing"}  # left for the new owner
    assert await db.fetch_one("SELECT lease_owner FROM conversations") == {"lease_owner": "other-worker"}
