"""The worker: crash recovery (answered exactly once), leases, several workers on one database."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import pytest

from core.clock import FixedClock
from prompts import render_localized
from server.options import ServerOptions
from server.pipeline.turns import TURN_MAX_ATTEMPTS, TURN_RETRY_BACKOFF, ConversationRunner
from store import Database, open_database
from store.conversations import ConversationRepository, LeaseLost
from store.inbound import InboundRepository
from store.system_events import SystemEventRepository
from tests.server.conftest import FAST, RunningApp, Secrets, StartApp
from tests.server.helpers import CUSTOMER, FakeAgent, TwilioDouble, inbound_form, post_signed, wait_until
from tests.server.scripted_turns import ScriptedTurns, customer_message, make_runner


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
    stored = await InboundRepository(db).receive(
        message_sid="SMcrash", wa_id=CUSTOMER, body="quiero cita", received_at=clock.now(), status="processing"
    )
    assert stored is not None
    # `receive` opened the conversation row (and its 24-hour window); the dead worker still holds its lease.
    await db.execute(
        "UPDATE conversations SET lease_owner = 'dead-worker', lease_until = :until WHERE wa_id = :wa_id",
        {"wa_id": CUSTOMER, "until": clock.now() + lease_left},
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


# --- Turns re-run after a crash, a lost lease or an agent failure (runner-level, deterministic clock) ---------------


async def _run_until_sent_then_kill(runner: ConversationRunner, agent: ScriptedTurns) -> None:
    task = asyncio.create_task(runner.run(CUSTOMER))
    await asyncio.wait_for(agent.sent.wait(), 5)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_a_system_turn_rerun_after_a_crash_sends_its_message_once(db: Database, clock: FixedClock) -> None:
    agent = ScriptedTurns(send_text="Tu cita del martes se ha cancelado.", script=["hang"])
    event = await SystemEventRepository(db).enqueue(
        wa_id=CUSTOMER, source="calendly", description="cancelled", dedupe_key="calendly:1", now=clock.now()
    )
    assert event is not None
    runner = make_runner(db, clock, agent)
    await _run_until_sent_then_kill(runner, agent)  # sent, then the worker died before recording the turn
    assert await db.fetch_value("SELECT status FROM system_events") == "processing"

    assert await runner.run(CUSTOMER)  # the turn is run again from the start and sends again
    assert agent.calls == ["system", "system"]
    outbox = await db.fetch_all("SELECT body, dedupe_key FROM outbox")
    assert outbox == [{"body": "Tu cita del martes se ha cancelado.", "dedupe_key": f"turn:system:{event.id}:0#0"}]
    assert await db.fetch_value("SELECT status FROM system_events") == "processed"


async def test_a_customer_turn_rerun_after_a_crash_sends_once_and_replies_once(db: Database, clock: FixedClock) -> None:
    agent = ScriptedTurns(send_text="Un momento, lo miro.", script=["hang"])
    first = await customer_message(db, clock)
    runner = make_runner(db, clock, agent)
    await _run_until_sent_then_kill(runner, agent)
    assert await runner.run(CUSTOMER)
    assert agent.calls == ["customer", "customer"]
    outbox = await db.fetch_all("SELECT body, inbound_message_id FROM outbox ORDER BY id")
    assert outbox == [
        {"body": "Un momento, lo miro.", "inbound_message_id": first},
        {"body": "te respondo", "inbound_message_id": first},
    ]


async def test_a_failing_agent_is_retried_with_backoff_and_answers_once(db: Database, clock: FixedClock) -> None:
    agent = ScriptedTurns(script=["raise", "raise"])
    await customer_message(db, clock)
    runner = make_runner(db, clock, agent)
    conversations = ConversationRepository(db)

    assert await runner.run(CUSTOMER)
    row = await db.fetch_one("SELECT status, attempts, error FROM inbound_messages")
    assert row is not None and (row["status"], row["attempts"]) == ("pending", 1)
    assert "model provider is down" in row["error"]
    # Waiting out the backoff: not picked up, and a run meanwhile does not call the agent.
    assert await conversations.with_work(now=clock.now()) == []
    assert await runner.run(CUSTOMER) and agent.calls == ["customer"]

    clock.advance(TURN_RETRY_BACKOFF[0] + timedelta(seconds=1))
    assert await conversations.with_work(now=clock.now()) == [CUSTOMER]
    assert await runner.run(CUSTOMER)
    assert (await db.fetch_one("SELECT status, attempts FROM inbound_messages")) == {"status": "pending", "attempts": 2}
    clock.advance(TURN_RETRY_BACKOFF[0] + timedelta(seconds=1))
    assert await runner.run(CUSTOMER) and len(agent.calls) == 2  # the second pause is longer
    clock.advance(TURN_RETRY_BACKOFF[1])

    assert await runner.run(CUSTOMER)
    assert agent.calls == ["customer"] * 3
    assert await db.fetch_all("SELECT body, kind FROM outbox") == [{"body": "te respondo", "kind": "reply"}]
    assert await db.fetch_value("SELECT status FROM inbound_messages") == "processed"


async def test_an_agent_that_keeps_failing_gives_up_with_one_apology(db: Database, clock: FixedClock) -> None:
    agent = ScriptedTurns(script=["raise"] * 10)
    first = await customer_message(db, clock)
    runner = make_runner(db, clock, agent)
    for _ in range(TURN_MAX_ATTEMPTS + 2):
        await runner.run(CUSTOMER)
        clock.advance(TURN_RETRY_BACKOFF[-1])
    assert len(agent.calls) == TURN_MAX_ATTEMPTS
    row = await db.fetch_one("SELECT status, attempts FROM inbound_messages")
    assert row == {"status": "failed", "attempts": TURN_MAX_ATTEMPTS}
    outbox = await db.fetch_all("SELECT body, kind, inbound_message_id FROM outbox")
    assert outbox == [
        {"body": render_localized("messages/agent_unavailable", "es"), "kind": "system", "inbound_message_id": first}
    ]


async def test_a_failing_system_turn_is_retried_then_failed_without_an_apology(db: Database, clock: FixedClock) -> None:
    agent = ScriptedTurns(script=["raise"] * 10)
    await SystemEventRepository(db).enqueue(
        wa_id=CUSTOMER, source="calendly", description="cancelled", dedupe_key="calendly:2", now=clock.now()
    )
    runner = make_runner(db, clock, agent)
    await runner.run(CUSTOMER)
    assert await db.fetch_one("SELECT status, attempts FROM system_events") == {"status": "pending", "attempts": 1}
    for _ in range(TURN_MAX_ATTEMPTS + 2):
        clock.advance(TURN_RETRY_BACKOFF[-1])
        await runner.run(CUSTOMER)
    assert len(agent.calls) == TURN_MAX_ATTEMPTS
    assert await db.fetch_one("SELECT status, attempts FROM system_events") == {
        "status": "failed",
        "attempts": TURN_MAX_ATTEMPTS,
    }
    assert await db.fetch_all("SELECT id FROM outbox") == []


async def test_the_worker_retries_a_failed_turn_once_its_backoff_passed(
    start_app: StartApp, db: Database, keys: Secrets, clock: FixedClock, twilio: TwilioDouble
) -> None:
    agent = ScriptedTurns(script=["raise", "raise"])
    async with start_app(agent=agent) as running:
        await post_signed(running.client, keys.twilio_token, "/webhook/whatsapp", inbound_form("SMf", "hola"))

        def attempts(n: int) -> Callable[[], Awaitable[bool]]:
            async def reached() -> bool:  # the n-th turn ran and its failure was recorded
                status = await db.fetch_value("SELECT status FROM inbound_messages")
                return len(agent.calls) >= n and status != "processing"

            return reached

        await wait_until(attempts(1))
        clock.advance(TURN_RETRY_BACKOFF[0])
        await wait_until(attempts(2))
        clock.advance(TURN_RETRY_BACKOFF[1])
        await _answered(db)
        await asyncio.sleep(0.3)
    assert agent.calls == ["customer"] * 3
    assert [m["Body"] for m in twilio.messages()] == ["te respondo"]


# --- Lease fencing ------------------------------------------------------------------------------------------------


async def test_answer_is_refused_when_the_lease_passed_to_another_worker(db: Database, clock: FixedClock) -> None:
    conversations = ConversationRepository(db)
    inbound = InboundRepository(db)
    first = await customer_message(db, clock)
    now = clock.now()
    assert await conversations.acquire_lease(CUSTOMER, owner="worker-1", now=now, until=now + timedelta(seconds=1))
    # worker-1 stalls past its lease; worker-2 takes the conversation.
    later = now + timedelta(seconds=2)
    assert await conversations.acquire_lease(CUSTOMER, owner="worker-2", now=later, until=later + timedelta(minutes=1))

    with pytest.raises(LeaseLost):
        await inbound.answer([first], wa_id=CUSTOMER, replies=[["tarde"]], reply_to=first, now=later, owner="worker-1")
    assert await db.fetch_all("SELECT id FROM outbox") == []
    assert await db.fetch_value("SELECT status FROM inbound_messages") == "pending"
    event = await SystemEventRepository(db).enqueue(
        wa_id=CUSTOMER, source="calendly", description="x", dedupe_key="calendly:3", now=now
    )
    assert event is not None
    with pytest.raises(LeaseLost):
        await SystemEventRepository(db).finish(event, now=later, owner="worker-1")
    assert await db.fetch_value("SELECT status FROM system_events") == "pending"

    # The owner's answer goes through.
    await inbound.answer([first], wa_id=CUSTOMER, replies=[["a tiempo"]], reply_to=first, now=later, owner="worker-2")
    assert await db.fetch_all("SELECT body FROM outbox") == [{"body": "a tiempo"}]
    assert await db.fetch_value("SELECT status FROM inbound_messages") == "processed"


class _RenewalsFail(ConversationRepository):
    """The database rejects every lease renewal (e.g. a network partition to PostgreSQL)."""

    async def renew_lease(self, wa_id: str, *, owner: str, now: datetime, until: datetime) -> bool:
        raise ConnectionError("database unreachable")


async def test_a_turn_stops_when_its_lease_runs_out_while_renewals_fail(db: Database, clock: FixedClock) -> None:
    agent = ScriptedTurns(send_text="…", script=["hang"])
    await customer_message(db, clock)
    runner = make_runner(db, clock, agent, lease_seconds=0.3, conversations=_RenewalsFail(db))
    task = asyncio.create_task(runner.run(CUSTOMER))
    await asyncio.wait_for(agent.sent.wait(), 5)
    clock.advance(timedelta(seconds=1))  # past lease_until: another worker may now take the conversation
    assert await asyncio.wait_for(task, 5)  # the heartbeat cancelled the turn instead of letting it run on
    assert await db.fetch_value("SELECT status FROM inbound_messages") == "processing"  # left for the next owner
    assert agent.calls == ["customer"]
