"""Twilio outages: Retry-After honoured, transient failures retried for hours and re-driven when Twilio answers
again, refusals final at once, and staff told about every message that will never arrive (never about their own)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from core.business import Business
from core.clock import FixedClock
from core.settings import Settings
from integrations.twilio.http_client import retry_after_seconds
from server.options import ServerOptions
from store import Database
from store.clients import ClientRepository
from store.conversations import ConversationRepository
from store.outbox import OutboxRepository
from store.outbox_message import OutboxMessage
from tests.server.conftest import FAST, RunningApp, Secrets, StartApp
from tests.server.delivery_harness import STAFF, STAFF_TEMPLATE, direct_delivery, drain
from tests.server.helpers import (
    CUSTOMER,
    FakeAgent,
    TwilioDouble,
    inbound_form,
    outbox_settled,
    post_signed,
    wait_until,
)

OTHER = "whatsapp:+34600765432"


async def rows_now(running: RunningApp, clock: FixedClock) -> list[OutboxMessage]:
    return await running.services.outbox_messages.created_since(clock.now() - timedelta(days=2))


async def quiet(running: RunningApp, clock: FixedClock) -> list[OutboxMessage]:
    """Wait until the worker has made every attempt due at the clock's time (nothing 'sending', nothing `due()`
    would hand out); the rows then."""
    repository = running.services.outbox_messages

    async def nothing_due() -> bool:
        rows = await rows_now(running, clock)
        return all(r.status != "sending" for r in rows) and not await repository.due(now=clock.now())

    await wait_until(nothing_due)
    return await rows_now(running, clock)


def test_retry_after_is_read_as_seconds_or_as_an_http_date() -> None:
    now = datetime(2026, 11, 24, 21, 0, tzinfo=UTC)
    assert retry_after_seconds({"Retry-After": "30"}, now=now) == 30.0
    assert retry_after_seconds({"Retry-After": "Tue, 24 Nov 2026 21:01:00 GMT"}, now=now) == 60.0
    assert retry_after_seconds({"Retry-After": "soon"}, now=now) is None
    assert retry_after_seconds({}, now=now) is None


async def test_429_retry_after_holds_even_when_twilio_answers_other_sends(
    db: Database, clock: FixedClock, twilio: TwilioDouble
) -> None:
    outbox, conversations = OutboxRepository(db), ConversationRepository(db)
    start = clock.now()
    for wa_id in (CUSTOMER, OTHER):
        await conversations.record_inbound(wa_id, at=start)
    async with direct_delivery(db, clock, twilio) as delivery:
        twilio.fail(429, times=1, retry_after=30)
        [limited] = await outbox.enqueue(wa_id=CUSTOMER, parts=["hola"], kind="reply", now=start)
        assert await drain(delivery) == 1
        row = await outbox.get(limited)
        assert row is not None and (row.status, row.attempts, row.error_code) == ("pending", 1, "20429")
        assert row.next_attempt_at == row.retry_not_before == start + timedelta(seconds=30)  # not the 2 s backoff

        # Twilio answers another customer's message: the backlog is re-driven, but never past a Retry-After.
        await outbox.enqueue(wa_id=OTHER, parts=["buenas"], kind="reply", now=start)
        assert await drain(delivery) == 1
        clock.advance(timedelta(seconds=29))
        assert await drain(delivery) == 0
        clock.advance(timedelta(seconds=1))
        assert await drain(delivery) == 1
    assert [m["To"] for m in twilio.messages()] == [CUSTOMER, OTHER, CUSTOMER]
    assert twilio.delivered_to(CUSTOMER) == ["hola"]


async def test_a_ten_minute_outage_loses_nothing_and_the_backlog_drains_when_twilio_answers(
    start_app: StartApp, db: Database, clock: FixedClock, twilio: TwilioDouble
) -> None:
    twilio.now = clock.now
    options = ServerOptions(**{**FAST.__dict__, "delivery_first_retry_seconds": 2.0})  # production's schedule
    customers = [f"whatsapp:+3460010000{n}" for n in range(4)]
    twilio.fail(500)
    async with start_app(options=options) as running:
        outbox = running.services.outbox
        for minute in range(10):
            if minute < len(customers):  # customers write at different minutes of the outage: two parts each
                wa_id = customers[minute]
                await running.services.conversations.record_inbound(wa_id, at=clock.now())
                for part in (1, 2):
                    await outbox.enqueue(wa_id, f"Parte {part} para {wa_id[-1]}", kind="reply")
            for _ in range(4):  # a pass every 15 s of the minute
                await quiet(running, clock)
                clock.advance(timedelta(seconds=15))
                outbox.notify()
        waiting = await quiet(running, clock)
        assert {r.status for r in waiting} == {"pending"}  # nothing given up, nothing lost
        assert sorted(r.attempts > 0 for r in waiting) == [False] * 4 + [True] * 4  # second parts wait their turn
        outage_posts = len(twilio.messages())
        assert outage_posts <= 4 * 10  # hours-long schedule: a handful of attempts per message in ten minutes

        twilio.restore()
        retrying = sorted(r.next_attempt_at for r in waiting if r.attempts)
        assert retrying[-1] - retrying[0] >= timedelta(seconds=60)  # without a re-drive, minutes more to wait
        clock.set(retrying[0])  # only the first scheduled attempt is due: Twilio answers it
        outbox.notify()
        rows = await outbox_settled(db, 8)
        assert clock.now() == retrying[0]  # everything else went out without waiting for its own schedule
    assert {r["status"] for r in rows} == {"sent"}
    for wa_id in customers:
        assert twilio.delivered_to(wa_id) == [f"Parte 1 para {wa_id[-1]}", f"Parte 2 para {wa_id[-1]}"]
    assert len(twilio.messages()) == outage_posts + 8


def staff_settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(staff_whatsapp_number=STAFF, twilio_template_staff_alert_sid=STAFF_TEMPLATE)


async def test_an_invalid_number_fails_at_once_with_one_staff_alert_per_turn(
    start_app: StartApp,
    make_settings: Callable[..., Settings],
    db: Database,
    clock: FixedClock,
    keys: Secrets,
    agent: FakeAgent,
    twilio: TwilioDouble,
) -> None:
    twilio.invalid_numbers = {CUSTOMER}
    agent.reply_text = lambda texts: "\n\n".join(f"Párrafo {n}. " + "Texto. " * 150 for n in range(2))
    # The real assistant records the customer on their first turn; the fake agent does not.
    await ClientRepository(db).ensure(CUSTOMER, now=clock.now(), profile_name="Ghanshyam Agrawal")
    async with start_app(settings=staff_settings(make_settings)) as running:
        await post_signed(running.client, keys.twilio_token, "/webhook/whatsapp", inbound_form("SM21211", "hola"))
        rows = await outbox_settled(db, 3)
    customer = [r for r in rows if r["wa_id"] == CUSTOMER]
    assert [(r["status"], r["attempts"], r["error_code"]) for r in customer] == [("failed", 1, "21211")] * 2
    [alert] = [r for r in rows if r["wa_id"] == STAFF]  # the turn's two parts failed: one alert
    assert (alert["kind"], alert["status"]) == ("staff", "sent")
    assert "+34600123456 (Ghanshyam Agrawal)" in alert["body"] and "21211" in alert["body"]
    posts = twilio.messages()
    # Refusals are not retried: each part posted once. The alert is another conversation, so it may go out before
    # the turn's second part is refused (a notification wakes delivery as soon as it is queued).
    assert sorted(p["To"] for p in posts) == sorted([CUSTOMER, CUSTOMER, STAFF])
    [staff_post] = [p for p in posts if p["To"] == STAFF]
    variables = json.loads(staff_post["ContentVariables"])
    assert staff_post["ContentSid"] == STAFF_TEMPLATE
    assert (variables["1"], variables["2"]) == ("+34600123456", "Ghanshyam Agrawal") and "21211" in variables["3"]


async def test_a_staff_alert_that_cannot_be_delivered_raises_no_alert_of_its_own(
    db: Database, clock: FixedClock, twilio: TwilioDouble, business: Business
) -> None:
    twilio.invalid_numbers = {CUSTOMER, STAFF}
    outbox = OutboxRepository(db)
    await ConversationRepository(db).record_inbound(CUSTOMER, at=clock.now())
    templates = {"staff": STAFF_TEMPLATE}
    async with direct_delivery(db, clock, twilio, templates=templates, business=business) as delivery:
        await outbox.enqueue(wa_id=CUSTOMER, parts=["hola"], kind="reply", now=clock.now())
        assert await drain(delivery) == 2  # the reply, then the alert about it
    rows = await db.fetch_all("SELECT * FROM outbox ORDER BY id")
    assert [(r["wa_id"], r["kind"], r["status"], r["error_code"]) for r in rows] == [
        (CUSTOMER, "reply", "failed", "21211"),
        (STAFF, "staff", "failed", "21211"),
    ]
    assert len(twilio.messages()) == 2


async def pending_with(db: Database, wa_id: str, attempts: int) -> None:
    async def reached() -> bool:
        rows = await db.fetch_all("SELECT status, attempts FROM outbox WHERE wa_id = :w", {"w": wa_id})
        return [(r["status"], r["attempts"]) for r in rows] == [("pending", attempts)]

    await wait_until(reached)


async def test_giving_up_after_the_retry_period_alerts_staff(
    start_app: StartApp, make_settings: Callable[..., Settings], db: Database, clock: FixedClock, twilio: TwilioDouble
) -> None:
    twilio.fail(503)
    schedule = {"delivery_first_retry_seconds": 20.0, "delivery_give_up_after_seconds": 30.0}
    async with start_app(
        settings=staff_settings(make_settings), options=ServerOptions(**{**FAST.__dict__, **schedule})
    ) as running:
        await running.services.conversations.record_inbound(CUSTOMER, at=clock.now())
        await running.services.outbox.enqueue(CUSTOMER, "Tu cita es mañana", kind="reply")
        await pending_with(db, CUSTOMER, 1)
        clock.advance(timedelta(seconds=20))
        running.services.outbox.notify()
        await pending_with(db, CUSTOMER, 2)
        clock.advance(timedelta(seconds=40))  # the third attempt fails past the 30 s give-up time
        running.services.outbox.notify()
        await pending_with(db, STAFF, 1)  # the alert is queued and waits out the outage like any message
        twilio.restore()
        clock.advance(timedelta(seconds=20))
        running.services.outbox.notify()
        rows = await outbox_settled(db, 2)
    customer, alert = rows
    assert (customer["status"], customer["attempts"]) == ("failed", 3)
    assert customer["error_message"].startswith("gave up after 3 attempts")
    assert (alert["wa_id"], alert["status"]) == (STAFF, "sent")
    assert "Tu cita es mañana" in alert["body"] and "reintentos" in alert["body"]


async def test_a_reply_whose_window_closed_during_the_outage_is_reported_to_staff(
    start_app: StartApp, make_settings: Callable[..., Settings], db: Database, clock: FixedClock, twilio: TwilioDouble
) -> None:
    twilio.fail(500)
    options = ServerOptions(**{**FAST.__dict__, "delivery_first_retry_seconds": 20.0})
    async with start_app(settings=staff_settings(make_settings), options=options) as running:
        # The customer wrote almost 24 hours ago; Twilio fails until the window has closed.
        await running.services.conversations.record_inbound(CUSTOMER, at=clock.now() - timedelta(hours=24, seconds=-10))
        await running.services.outbox.enqueue(CUSTOMER, "¿Te va bien el jueves?", kind="reply")
        await pending_with(db, CUSTOMER, 1)
        twilio.restore()
        clock.advance(timedelta(seconds=20))
        running.services.outbox.notify()
        rows = await outbox_settled(db, 2)
    customer, alert = rows
    assert (customer["status"], customer["attempts"]) == ("undeliverable", 1)
    assert "24-hour window" in customer["error_message"]
    assert (alert["wa_id"], alert["status"]) == (STAFF, "sent") and "24 horas" in alert["body"]
    assert [p["To"] for p in twilio.messages()] == [CUSTOMER, STAFF]


async def test_a_message_queued_outside_the_window_raises_no_alert(
    db: Database, clock: FixedClock, twilio: TwilioDouble, business: Business
) -> None:
    outbox = OutboxRepository(db)
    await ConversationRepository(db).record_inbound(CUSTOMER, at=clock.now() - timedelta(hours=30))
    async with direct_delivery(db, clock, twilio, templates={"staff": STAFF_TEMPLATE}, business=business) as delivery:
        await outbox.enqueue(wa_id=CUSTOMER, parts=["¿Sigues ahí?"], kind="reply", now=clock.now())
        assert await drain(delivery) == 1
    rows = await db.fetch_all("SELECT * FROM outbox ORDER BY id")
    assert [(r["status"], r["wa_id"]) for r in rows] == [("undeliverable", CUSTOMER)]  # a known limit, not an outage
    assert twilio.messages() == []
