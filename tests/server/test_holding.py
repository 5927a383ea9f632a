"""A model outage: one holding message after about a minute, retries go on, the real answer follows once it is back."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from core.clock import FixedClock
from prompts import render_localized
from server.options import ServerOptions
from server.pipeline.holding import HOLDING_AFTER, HoldingNotifier
from server.pipeline.turns import TURN_RETRY_BACKOFF
from store import Database
from store.clients import ClientRepository
from store.conversations import ConversationRepository
from store.inbound import InboundRepository
from tests.server.conftest import FAST, Secrets, StartApp
from tests.server.helpers import CUSTOMER, TwilioDouble, inbound_form, post_signed, wait_until
from tests.server.scripted_turns import ScriptedTurns, customer_message, make_runner

OTHER = "whatsapp:+34600999888"
HOLDING_ES = render_localized("messages/holding", "es")


def _notifier(db: Database, clock: FixedClock) -> HoldingNotifier:
    return HoldingNotifier(db=db, clients=ClientRepository(db), clock=clock, language="es")


async def _outbox(db: Database) -> list[dict[str, object]]:
    return await db.fetch_all("SELECT wa_id, body, kind, inbound_message_id FROM outbox ORDER BY id")


async def test_after_a_minute_of_failing_turns_one_holding_message_then_the_answer(
    db: Database, clock: FixedClock
) -> None:
    agent = ScriptedTurns(script=["raise"] * 3)
    first = await customer_message(db, clock)
    runner = make_runner(db, clock, agent)
    notifier = _notifier(db, clock)

    await runner.run(CUSTOMER)  # fails: retried later
    clock.advance(HOLDING_AFTER - timedelta(seconds=1))
    assert await notifier.notify_waiting() == 0  # not a minute yet
    assert await _outbox(db) == []

    clock.advance(timedelta(seconds=2))
    assert await notifier.notify_waiting() == 1
    await runner.run(CUSTOMER)  # fails again
    assert await notifier.notify_waiting() == 0  # once per waiting turn, however many passes see it
    holding = {"wa_id": CUSTOMER, "body": HOLDING_ES, "kind": "system", "inbound_message_id": first}
    assert await _outbox(db) == [holding]

    for pause in TURN_RETRY_BACKOFF[1:4]:  # the model comes back on the fourth try
        clock.advance(pause)
        await runner.run(CUSTOMER)
    assert agent.calls == ["customer"] * 4
    reply = {"wa_id": CUSTOMER, "body": "te respondo", "kind": "reply", "inbound_message_id": first}
    assert await _outbox(db) == [holding, reply]
    assert await db.fetch_value("SELECT status FROM inbound_messages") == "processed"


async def test_no_holding_message_for_a_message_merely_queued_or_already_answered(
    db: Database, clock: FixedClock
) -> None:
    await customer_message(db, clock)  # waiting for a free turn slot: nothing failed
    clock.advance(timedelta(minutes=5))
    notifier = _notifier(db, clock)
    assert await notifier.notify_waiting() == 0

    runner = make_runner(db, clock, ScriptedTurns())
    await runner.run(CUSTOMER)
    clock.advance(timedelta(minutes=5))
    assert await notifier.notify_waiting() == 0
    assert [row["kind"] for row in await _outbox(db)] == ["reply"]


async def test_a_turn_hanging_for_a_minute_gets_the_holding_message_in_the_customers_language(
    db: Database, clock: FixedClock
) -> None:
    first = await customer_message(db, clock, body="hello")
    await ClientRepository(db).update_profile(CUSTOMER, now=clock.now(), language="en")
    clock.advance(timedelta(minutes=10))  # stored late (e.g. drained from the webhook spool): not the turn's fault
    await InboundRepository(db).mark([first], "processing", now=clock.now())  # its turn starts, the model hangs
    assert await _notifier(db, clock).notify_waiting() == 0
    clock.advance(HOLDING_AFTER + timedelta(seconds=1))
    assert await _notifier(db, clock).notify_waiting() == 1
    assert [row["body"] for row in await _outbox(db)] == [render_localized("messages/holding", "en")]


async def test_a_turn_that_succeeds_after_an_outage_re_drives_the_other_failed_turns(
    db: Database, clock: FixedClock
) -> None:
    agent = ScriptedTurns(script=["raise", "raise", "raise"])
    runner = make_runner(db, clock, agent)
    conversations = ConversationRepository(db)
    await customer_message(db, clock, "SMa", wa_id=OTHER)
    for pause in TURN_RETRY_BACKOFF[:2]:  # OTHER fails three times: its next try is a minute away
        await runner.run(OTHER)
        clock.advance(pause)
    await runner.run(OTHER)
    await customer_message(db, clock, "SMb")
    assert await conversations.with_work(now=clock.now()) == [CUSTOMER]

    await runner.run(CUSTOMER)  # the model is back
    assert await conversations.with_work(now=clock.now()) == [OTHER]  # at once, not in a minute
    await runner.run(OTHER)
    assert [row["wa_id"] for row in await _outbox(db)] == [CUSTOMER, OTHER]


async def test_through_the_worker_the_customer_hears_the_holding_message_then_the_answer(
    start_app: StartApp, db: Database, keys: Secrets, clock: FixedClock, twilio: TwilioDouble
) -> None:
    agent = ScriptedTurns(script=["raise"] * 3)
    options = ServerOptions(**{**FAST.__dict__, "holding_check_seconds": 0.02})
    async with start_app(agent=agent, options=options) as running:
        await post_signed(running.client, keys.twilio_token, "/webhook/whatsapp", inbound_form("SMh", "hola"))

        async def sent(count: int) -> bool:
            return len(twilio.messages()) >= count

        async def failed(times: int) -> bool:
            attempts = await db.fetch_value("SELECT attempts FROM inbound_messages")
            return int(attempts) >= times

        await wait_until(lambda: failed(1))
        clock.advance(TURN_RETRY_BACKOFF[0])
        await wait_until(lambda: failed(2))
        clock.advance(TURN_RETRY_BACKOFF[1])
        await wait_until(lambda: failed(3))
        # A minute after the message, before the next retry is due: the holding message goes out on its own.
        clock.advance(HOLDING_AFTER - TURN_RETRY_BACKOFF[0] - TURN_RETRY_BACKOFF[1] + timedelta(seconds=1))
        await wait_until(lambda: sent(1))
        clock.advance(TURN_RETRY_BACKOFF[2])
        await wait_until(lambda: sent(2))
        await asyncio.sleep(0.2)  # nothing more goes out
    assert [m["Body"] for m in twilio.messages()] == [HOLDING_ES, "te respondo"]
    assert agent.calls == ["customer"] * 4
