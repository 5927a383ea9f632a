"""Checkable sends: a row a dead worker left 'sending' is looked up at Twilio before it goes again, so a reply that
went out is recorded (no second POST) and one that did not goes exactly once."""

from __future__ import annotations

from datetime import timedelta

from core.clock import FixedClock
from integrations.twilio.transport import LogTransport
from store import Database
from store.conversations import ConversationRepository
from store.outbox import OutboxRepository
from tests.server.conftest import StartApp
from tests.server.delivery_harness import direct_delivery, drain
from tests.server.helpers import CUSTOMER, TwilioDouble, wait_until
from tests.server.twilio_double import SENDER

REPLY = "Tu cita está confirmada para el martes a las 10:30"
STUCK = timedelta(seconds=31)  # past the 30 s default after which a 'sending' row is a dead worker's
CONFIRMATION_TEMPLATE = "HX00000000000000000000000000000conf"


async def dead_worker_claim(db: Database, clock: FixedClock) -> int:
    """Queue a reply and claim it as a worker does just before its POST; that worker then dies."""
    outbox = OutboxRepository(db)
    [row_id] = await outbox.enqueue(wa_id=CUSTOMER, parts=[REPLY], kind="reply", now=clock.now())
    assert await outbox.claim(row_id, now=clock.now())
    return row_id


async def row_status(db: Database, row_id: int) -> tuple[str, str | None, int]:
    row = await OutboxRepository(db).get(row_id)
    assert row is not None
    return row.status, row.twilio_sid, row.attempts


async def test_a_send_twilio_holds_is_recorded_by_the_next_worker_without_a_second_post(
    start_app: StartApp, db: Database, clock: FixedClock, twilio: TwilioDouble
) -> None:
    twilio.now = clock.now
    await ConversationRepository(db).record_inbound(CUSTOMER, at=clock.now())
    row_id = await dead_worker_claim(db, clock)
    sid = twilio.accept({"To": CUSTOMER, "From": SENDER, "Body": REPLY})["sid"]  # Twilio took it; the worker died
    # Twilio reported delivery while no row knew the SID: kept for when one does.
    await OutboxRepository(db).apply_status(
        sid, status="delivered", now=clock.now(), error_code=None, error_message=None
    )
    clock.advance(STUCK)

    async with start_app():  # the next worker: its maintenance recovers the row

        async def settled() -> bool:
            return (await row_status(db, row_id))[0] != "sending"

        await wait_until(settled)
    assert await row_status(db, row_id) == ("delivered", sid, 1)
    assert len(twilio.messages()) == 1  # the dead worker's POST only
    [lookup] = twilio.lookups()
    assert (lookup["To"], lookup["From"]) == (CUSTOMER, SENDER) and "DateSent>" in lookup


async def test_a_send_twilio_does_not_hold_goes_exactly_once(
    start_app: StartApp, db: Database, clock: FixedClock, twilio: TwilioDouble
) -> None:
    twilio.now = clock.now
    await ConversationRepository(db).record_inbound(CUSTOMER, at=clock.now())
    # An earlier reply with other words went out: Twilio holds a message to this customer, but not this one.
    twilio.accept({"To": CUSTOMER, "From": SENDER, "Body": "Hola, ¿en qué te ayudo?"})
    row_id = await dead_worker_claim(db, clock)  # the worker died before its POST
    clock.advance(STUCK)

    async with start_app():

        async def sent() -> bool:
            return (await row_status(db, row_id))[0] == "sent"

        await wait_until(sent)
    status, sid, attempts = await row_status(db, row_id)
    assert (status, attempts) == ("sent", 1)
    assert [m["Body"] for m in twilio.messages()] == ["Hola, ¿en qué te ayudo?", REPLY]
    assert twilio.delivered_to(CUSTOMER)[-1] == REPLY and sid == twilio.held[-1]["sid"]


async def test_a_send_that_got_no_answer_is_checked_not_repeated(
    db: Database, clock: FixedClock, twilio: TwilioDouble
) -> None:
    twilio.lose_answers = 1  # Twilio accepts the message, the answer never arrives (read timeout)
    outbox = OutboxRepository(db)
    await ConversationRepository(db).record_inbound(CUSTOMER, at=clock.now())
    [row_id] = await outbox.enqueue(wa_id=CUSTOMER, parts=[REPLY], kind="reply", now=clock.now())
    async with direct_delivery(db, clock, twilio) as delivery:
        assert await drain(delivery) == 1
        assert (await row_status(db, row_id))[0::2] == ("sending", 1)  # not retried blind
        clock.advance(STUCK)
        assert await delivery.recover() == 1
    assert await row_status(db, row_id) == ("sent", twilio.held[0]["sid"], 2)
    assert len(twilio.messages()) == 1


async def test_a_slow_send_younger_than_the_threshold_is_left_alone(
    start_app: StartApp, db: Database, clock: FixedClock, twilio: TwilioDouble
) -> None:
    await ConversationRepository(db).record_inbound(CUSTOMER, at=clock.now())
    row_id = await dead_worker_claim(db, clock)
    clock.advance(timedelta(seconds=20))  # past the 15 s conversation lease, within the send's margin
    async with start_app(run_worker=False) as running:
        await running.services.worker.maintenance()
    assert await row_status(db, row_id) == ("sending", None, 0)
    assert twilio.requests == []


async def test_while_twilio_cannot_be_asked_the_row_waits_then_goes_once(
    db: Database, clock: FixedClock, twilio: TwilioDouble
) -> None:
    await ConversationRepository(db).record_inbound(CUSTOMER, at=clock.now())
    row_id = await dead_worker_claim(db, clock)
    clock.advance(STUCK)
    twilio.fail(503)
    async with direct_delivery(db, clock, twilio) as delivery:
        assert await delivery.recover() == 0  # sending blind could send it twice; asked again on the next pass
        assert (await row_status(db, row_id))[0] == "sending"
        twilio.restore()
        assert await delivery.recover() == 1
        assert await drain(delivery) == 1
    assert (await row_status(db, row_id))[0] == "sent"
    assert [m["Body"] for m in twilio.messages()] == [REPLY]


async def test_a_template_send_is_found_by_a_sid_no_row_records(
    db: Database, clock: FixedClock, twilio: TwilioDouble
) -> None:
    outbox = OutboxRepository(db)
    await ConversationRepository(db).record_inbound(CUSTOMER, at=clock.now() - timedelta(hours=30))
    templates = {"confirmation": CONFIRMATION_TEMPLATE}
    async with direct_delivery(db, clock, twilio, templates=templates) as delivery:
        # One confirmation goes out normally: Twilio holds it, its row records the SID.
        await outbox.enqueue(wa_id=CUSTOMER, parts=["Cita 1"], kind="confirmation", now=clock.now())
        assert await drain(delivery) == 1
        clock.advance(timedelta(seconds=20))

        # A second one: claimed, POSTed (Twilio lists it rendered, not by template), and the worker dies.
        [second] = await outbox.enqueue(
            wa_id=CUSTOMER, parts=["Cita 2"], kind="confirmation", now=clock.now(), template_variables={"1": "2"}
        )
        assert await outbox.claim(second, now=clock.now())
        dead_sid = twilio.accept({"To": CUSTOMER, "From": SENDER, "ContentSid": CONFIRMATION_TEMPLATE})["sid"]
        # A third one: claimed, and the worker dies before its POST.
        clock.advance(timedelta(seconds=20))
        [third] = await outbox.enqueue(
            wa_id=CUSTOMER, parts=["Cita 3"], kind="confirmation", now=clock.now(), template_variables={"1": "3"}
        )
        clock.advance(STUCK)
        assert await delivery.recover() == 1
        assert await row_status(db, second) == ("sent", dead_sid, 1)
        assert await outbox.claim(third, now=clock.now())
        clock.advance(STUCK)
        # Both messages Twilio holds for this customer are recorded by rows: neither is the third's.
        assert await delivery.recover() == 1
        assert await drain(delivery) == 1
    assert (await row_status(db, third))[0] == "sent"
    assert len(twilio.messages()) == 3 and len(twilio.held) == 3


async def test_the_log_transport_cannot_tell_so_the_row_goes_again(
    db: Database, clock: FixedClock, twilio: TwilioDouble
) -> None:
    await ConversationRepository(db).record_inbound(CUSTOMER, at=clock.now())
    row_id = await dead_worker_claim(db, clock)
    clock.advance(STUCK)
    async with direct_delivery(db, clock, twilio, transport=LogTransport()) as delivery:
        assert await delivery.recover() == 1
        assert await drain(delivery) == 1
    status, sid, _ = await row_status(db, row_id)
    assert status == "sent" and sid is not None and sid.startswith("LOG")
