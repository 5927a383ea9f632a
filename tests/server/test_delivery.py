"""Delivery: retries and backoff, final failures with Twilio's code, the 24-hour window, templates, splitting."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl

import httpx

from core.clock import FixedClock
from core.settings import Settings
from server.options import ServerOptions
from store import Database
from store.outbox import OutboxRepository
from tests.server.conftest import FAST, RunningApp, Secrets, StartApp
from tests.server.helpers import (
    CUSTOMER,
    TwilioDouble,
    fixture_text,
    inbound_form,
    outbox_settled,
    post_signed,
    wait_until,
)


async def outbox_rows(db: Database) -> list[dict[str, Any]]:
    return await db.fetch_all("SELECT * FROM outbox ORDER BY id")


settled = outbox_settled


async def open_window(running: RunningApp, clock: FixedClock, *, ago: timedelta = timedelta(0)) -> None:
    await running.services.conversations.record_inbound(CUSTOMER, at=clock.now() - ago)


async def test_twilio_500_twice_then_201_is_delivered_once_with_attempts_recorded(
    server: RunningApp, db: Database, keys: Secrets, twilio: TwilioDouble
) -> None:
    twilio.script = [500, 500]
    await post_signed(server.client, keys.twilio_token, "/webhook/whatsapp", inbound_form("SM500", "hola"))

    rows = await settled(db)
    assert [(r["status"], r["attempts"], r["error_code"]) for r in rows] == [("sent", 3, None)]
    assert rows[0]["twilio_sid"] == "SM" + f"{1:032x}"  # the one 201 the double answered
    assert [m["Body"] for m in twilio.messages()] == ["echo: hola"] * 3


async def test_network_errors_are_retried(
    start_app: StartApp, db: Database, clock: FixedClock, twilio: TwilioDouble
) -> None:
    failures = iter([True])

    def flaky(request: httpx.Request) -> httpx.Response:
        if next(failures, False):
            raise httpx.ConnectError("connection refused", request=request)
        return twilio.transport.handle_request(request)  # type: ignore[return-value]

    async with start_app(twilio_http=httpx.MockTransport(flaky)) as running:
        await open_window(running, clock)
        await running.services.outbox.enqueue(CUSTOMER, "Tu cita está confirmada", kind="confirmation")
        rows = await settled(db)
    assert [(r["status"], r["attempts"]) for r in rows] == [("sent", 2)]


async def test_refusal_is_final_and_recorded_with_twilios_error_code(
    server: RunningApp, db: Database, clock: FixedClock, twilio: TwilioDouble
) -> None:
    twilio.script = [400]
    await open_window(server, clock)
    await server.services.outbox.enqueue(CUSTOMER, "hola", kind="reply")

    rows = await settled(db)
    assert [(r["status"], r["attempts"], r["error_code"]) for r in rows] == [("failed", 1, "21211")]
    assert "not a valid phone number" in rows[0]["error_message"]
    assert len(twilio.messages()) == 1  # a 4xx is not retried


async def test_retries_stop_once_the_message_is_older_than_the_give_up_time(
    start_app: StartApp, db: Database, clock: FixedClock, twilio: TwilioDouble
) -> None:
    twilio.fail(503)
    schedule = {"delivery_first_retry_seconds": 20.0, "delivery_give_up_after_seconds": 60.0}
    options = ServerOptions(**{**FAST.__dict__, **schedule})
    async with start_app(options=options) as running:
        await open_window(running, clock)
        await running.services.outbox.enqueue(CUSTOMER, "hola", kind="reply")
        for attempts, wait in ((1, 20), (2, 40)):  # 20 s after the first failure, then 40 s after the second

            async def attempted(n: int = attempts) -> bool:
                return [(r["status"], r["attempts"]) for r in await outbox_rows(db)] == [("pending", n)]

            await wait_until(attempted)
            clock.advance(timedelta(seconds=wait))
            running.services.outbox.notify()
        rows = await settled(db)
    assert [(r["status"], r["attempts"]) for r in rows] == [("failed", 3)]
    assert rows[0]["error_message"].startswith("gave up after 3 attempts")
    assert len(twilio.messages()) == 3


async def test_backoff_delays_the_next_attempt(
    start_app: StartApp, db: Database, clock: FixedClock, twilio: TwilioDouble
) -> None:
    twilio.script = [500]
    options = ServerOptions(**{**FAST.__dict__, "delivery_first_retry_seconds": 30.0})
    async with start_app(options=options) as running:
        await open_window(running, clock)
        await running.services.outbox.enqueue(CUSTOMER, "hola", kind="reply")

        async def retry_scheduled() -> bool:
            rows = await outbox_rows(db)
            return rows[0]["attempts"] == 1 and rows[0]["status"] == "pending"

        await wait_until(retry_scheduled)
        assert len(twilio.messages()) == 1  # not due yet: the clock stands still
        clock.advance(timedelta(seconds=31))
        running.services.outbox.notify()
        rows = await settled(db)
    assert [(r["status"], r["attempts"]) for r in rows] == [("sent", 2)]


async def test_outside_the_window_a_template_is_sent_with_its_variables(
    start_app: StartApp,
    make_settings: Callable[..., Settings],
    db: Database,
    clock: FixedClock,
    twilio: TwilioDouble,
) -> None:
    settings = make_settings(twilio_template_reminder_sid="HX0000000000000000000000000000remi")
    async with start_app(settings=settings) as running:
        await open_window(running, clock, ago=timedelta(hours=30))
        variables = {"1": "Ana", "2": "Corte", "3": "01/12/2026", "4": "10:30"}
        await running.services.outbox.enqueue(
            CUSTOMER, "Te recordamos tu cita", kind="reminder", template_variables=variables
        )
        rows = await settled(db)
    sent = twilio.messages()
    assert len(sent) == 1
    assert sent[0]["ContentSid"] == "HX0000000000000000000000000000remi"
    assert json.loads(sent[0]["ContentVariables"]) == variables
    assert "Body" not in sent[0]
    assert [(r["status"], r["template_sid"]) for r in rows] == [("sent", "HX0000000000000000000000000000remi")]


async def test_outside_the_window_free_text_or_a_kind_without_template_is_undeliverable(
    server: RunningApp, db: Database, clock: FixedClock, twilio: TwilioDouble
) -> None:
    await open_window(server, clock, ago=timedelta(hours=25))
    await server.services.outbox.enqueue(CUSTOMER, "¿Sigues ahí?", kind="reply")
    await server.services.outbox.enqueue(CUSTOMER, "Cita cancelada", kind="cancellation")

    rows = await settled(db, 2)
    assert [(r["status"], r["attempts"]) for r in rows] == [("undeliverable", 0), ("undeliverable", 0)]
    assert "24-hour window" in rows[0]["error_message"]
    assert twilio.messages() == []


async def test_long_reply_is_split_at_paragraphs_and_sent_in_order(
    server: RunningApp, db: Database, keys: Secrets, agent: Any, twilio: TwilioDouble
) -> None:
    paragraphs = [(f"Párrafo {n}. " + "Texto de relleno. " * 40).strip() for n in range(6)]
    agent.reply_text = lambda texts: "\n\n".join(paragraphs)
    await post_signed(server.client, keys.twilio_token, "/webhook/whatsapp", inbound_form("SMlong", "info"))

    rows = await settled(db, 3)
    bodies = [m["Body"] for m in twilio.messages()]
    assert all(len(b) <= 1600 for b in bodies) and len(bodies) == len(rows) >= 3
    assert "\n\n".join(bodies) == "\n\n".join(paragraphs)  # cut only between paragraphs
    assert {r["inbound_message_id"] for r in rows} == {rows[0]["inbound_message_id"]}


async def test_status_callback_records_63016_failure(
    server: RunningApp, db: Database, clock: FixedClock, keys: Secrets
) -> None:
    await open_window(server, clock)
    await server.services.outbox.enqueue(CUSTOMER, "hola", kind="reply")
    rows = await settled(db)
    form = dict(parse_qsl(fixture_text("twilio-status-callback-failed.form")))
    form["MessageSid"] = form["SmsSid"] = rows[0]["twilio_sid"]

    unsigned = await post_signed(server.client, keys.twilio_token, "/webhook/whatsapp/status", form, signature=None)
    signed = await post_signed(server.client, keys.twilio_token, "/webhook/whatsapp/status", form)

    assert (unsigned.status_code, signed.status_code) == (403, 204)
    row = (await outbox_rows(db))[0]
    assert (row["status"], row["error_code"]) == ("failed", "63016")


async def test_status_callbacks_never_move_a_status_backwards(
    server: RunningApp, db: Database, clock: FixedClock, keys: Secrets
) -> None:
    await open_window(server, clock)
    await server.services.outbox.enqueue(CUSTOMER, "hola", kind="reply")
    sid = (await settled(db))[0]["twilio_sid"]
    for status in ("read", "delivered", "sent"):
        form = {"MessageSid": sid, "MessageStatus": status, "To": CUSTOMER, "AccountSid": "AC1"}
        response = await post_signed(server.client, keys.twilio_token, "/webhook/whatsapp/status", form)
        assert response.status_code == 204
    unknown = {"MessageSid": "SMunknown", "MessageStatus": "delivered"}
    assert (await post_signed(server.client, keys.twilio_token, "/webhook/whatsapp/status", unknown)).status_code == 204
    assert (await outbox_rows(db))[0]["status"] == "read"


CONFIRMATION_TEMPLATE = "HX00000000000000000000000000000conf"
BOOKING = {"1": "Ana", "2": "Corte", "3": "01/12/2026", "4": "10:30"}


async def test_outside_the_window_a_split_message_goes_as_one_template(
    start_app: StartApp,
    make_settings: Callable[..., Settings],
    db: Database,
    clock: FixedClock,
    twilio: TwilioDouble,
) -> None:
    settings = make_settings(twilio_template_confirmation_sid=CONFIRMATION_TEMPLATE)
    async with start_app(settings=settings) as running:
        await open_window(running, clock, ago=timedelta(hours=30))
        body = ("Tu cita está confirmada. " * 128).strip()  # 3,199 characters: more than one WhatsApp message
        ids = await running.services.outbox.enqueue(CUSTOMER, body, kind="confirmation", template_variables=BOOKING)
        assert len(ids) >= 2
        rows = await settled(db, len(ids))
    sent = twilio.messages()
    assert len(sent) == 1 and sent[0]["ContentSid"] == CONFIRMATION_TEMPLATE
    assert json.loads(sent[0]["ContentVariables"]) == BOOKING
    assert (rows[0]["status"], rows[0]["template_sid"]) == ("sent", CONFIRMATION_TEMPLATE)
    for row in rows[1:]:
        assert (row["status"], row["attempts"], row["twilio_sid"]) == ("undeliverable", 0, None)
        assert row["error_message"] == f"covered by the template sent for row {ids[0]}"


async def test_outside_the_window_a_turns_second_message_of_a_kind_is_covered_by_the_first_template(
    start_app: StartApp,
    make_settings: Callable[..., Settings],
    db: Database,
    clock: FixedClock,
    twilio: TwilioDouble,
) -> None:
    settings = make_settings(twilio_template_confirmation_sid=CONFIRMATION_TEMPLATE)
    async with start_app(settings=settings) as running:
        await open_window(running, clock, ago=timedelta(hours=30))
        outbox = running.services.outbox
        # A system turn sends one message, it is delivered, then the agent sends another of the same kind.
        await outbox.enqueue(CUSTOMER, "Cita confirmada", kind="confirmation", template_variables=BOOKING)
        await settled(db)
        clock.advance(timedelta(seconds=20))
        await outbox.enqueue(CUSTOMER, "Te esperamos", kind="confirmation", template_variables=BOOKING)
        rows = await settled(db, 2)
    assert len(twilio.messages()) == 1
    assert [r["status"] for r in rows] == ["sent", "undeliverable"]
    assert rows[1]["error_message"] == f"covered by the template sent for row {rows[0]['id']}"


async def test_outside_the_window_the_same_template_hours_later_is_sent_again(
    start_app: StartApp,
    make_settings: Callable[..., Settings],
    db: Database,
    clock: FixedClock,
    twilio: TwilioDouble,
) -> None:
    settings = make_settings(twilio_template_reminder_sid="HX0000000000000000000000000000remi")
    async with start_app(settings=settings) as running:
        await open_window(running, clock, ago=timedelta(hours=30))
        outbox = running.services.outbox
        await outbox.enqueue(CUSTOMER, "Mañana tienes cita", kind="reminder", template_variables=BOOKING)
        await settled(db)
        clock.advance(timedelta(hours=22))  # the next reminder of the same appointment
        await outbox.enqueue(CUSTOMER, "Hoy tienes cita", kind="reminder", template_variables=BOOKING)
        rows = await settled(db, 2)
    assert len(twilio.messages()) == 2
    assert [r["status"] for r in rows] == ["sent", "sent"]


async def test_outside_the_window_a_template_refused_for_good_fails_its_whole_group_once(
    start_app: StartApp,
    make_settings: Callable[..., Settings],
    db: Database,
    clock: FixedClock,
    twilio: TwilioDouble,
) -> None:
    twilio.script = [400]
    settings = make_settings(twilio_template_confirmation_sid=CONFIRMATION_TEMPLATE)
    async with start_app(settings=settings) as running:
        await open_window(running, clock, ago=timedelta(hours=30))
        body = ("Tu cita está confirmada. " * 128).strip()
        ids = await running.services.outbox.enqueue(CUSTOMER, body, kind="confirmation", template_variables=BOOKING)
        rows = await settled(db, len(ids))
    assert len(twilio.messages()) == 1
    assert [(r["status"], r["error_code"]) for r in rows] == [("failed", "21211")] * len(ids)
    assert rows[1]["error_message"].startswith(f"the template for row {ids[0]} failed:")


async def test_status_callback_before_the_sid_is_recorded_is_applied_when_it_is(
    start_app: StartApp, db: Database, clock: FixedClock, keys: Secrets, twilio: TwilioDouble
) -> None:
    app: list[RunningApp] = []
    callbacks: list[int] = []

    async def racing(request: httpx.Request) -> httpx.Response:
        # Twilio's failure callback reaches the webhook before the create response reaches the worker.
        response = twilio.transport.handle_request(request)
        assert isinstance(response, httpx.Response)
        if request.url.path.endswith("/Messages.json") and response.status_code == 201:
            await response.aread()
            form = dict(parse_qsl(fixture_text("twilio-status-callback-failed.form")))
            form["MessageSid"] = form["SmsSid"] = response.json()["sid"]
            posted = await post_signed(app[0].client, keys.twilio_token, "/webhook/whatsapp/status", form)
            callbacks.append(posted.status_code)
        return response

    async with start_app(twilio_http=httpx.MockTransport(racing)) as running:
        app.append(running)
        await open_window(running, clock)
        await running.services.outbox.enqueue(CUSTOMER, "hola", kind="reply")

        async def failed() -> bool:
            # Not `settled`: the row is 'sent' for a moment before the kept callback is applied.
            return [r["status"] for r in await outbox_rows(db)] == ["failed"]

        await wait_until(failed)
    rows = await outbox_rows(db)
    assert callbacks == [204]
    assert [(r["status"], r["error_code"]) for r in rows] == [("failed", "63016")]
    assert rows[0]["twilio_sid"] is not None
    assert await db.fetch_all("SELECT * FROM outbox_early_status") == []


async def test_mark_sent_never_moves_a_row_back(db: Database, clock: FixedClock) -> None:
    outbox = OutboxRepository(db)
    now = clock.now()
    # A slow send taken for a dead worker's: requeue_stuck resets the row, then Twilio's answer arrives.
    [slow] = await outbox.enqueue(wa_id=CUSTOMER, parts=["hola"], kind="reply", now=now)
    assert await outbox.claim(slow, now=now)
    [stuck] = await outbox.stuck(claimed_before=now + timedelta(seconds=1))
    assert await outbox.requeue_stuck(stuck, now=now)
    await outbox.mark_sent(slow, twilio_sid="SMslow", now=now)
    row = await outbox.get(slow)
    assert row is not None and (row.status, row.twilio_sid, row.attempts) == ("sent", "SMslow", 1)
    assert await outbox.due(now=now) == []  # it went out: not sent a second time

    # Another worker re-sent it and Twilio already reported delivery when the first attempt's answer arrives.
    [resent] = await outbox.enqueue(wa_id=CUSTOMER, parts=["adiós"], kind="reply", now=now)
    assert await outbox.claim(resent, now=now)
    await outbox.mark_sent(resent, twilio_sid="SMsecond", now=now)
    await outbox.apply_status("SMsecond", status="delivered", now=now, error_code=None, error_message=None)
    await outbox.mark_sent(resent, twilio_sid="SMfirst", now=now)
    row = await outbox.get(resent)
    assert row is not None and (row.status, row.twilio_sid) == ("delivered", "SMsecond")


async def test_early_status_callbacks_keep_the_furthest_status(db: Database, clock: FixedClock) -> None:
    outbox = OutboxRepository(db)
    now = clock.now()
    [row_id] = await outbox.enqueue(wa_id=CUSTOMER, parts=["hola"], kind="reply", now=now)
    assert await outbox.claim(row_id, now=now)
    for status in ("delivered", "sent"):  # out of order, both before the SID is known
        assert await outbox.apply_status("SMearly", status=status, now=now, error_code=None, error_message=None) is None
    applied = await outbox.mark_sent(row_id, twilio_sid="SMearly", now=now)
    assert applied is not None and (applied.id, applied.status) == (row_id, "delivered")
    # A callback for a SID no row ever records is pruned after a day, when the next unknown callback arrives.
    await outbox.apply_status("SMlost", status="failed", now=now, error_code="30008", error_message=None)
    later = now + timedelta(days=2)
    await outbox.apply_status("SMother", status="sent", now=later, error_code=None, error_message=None)
    assert [r["twilio_sid"] for r in await db.fetch_all("SELECT twilio_sid FROM outbox_early_status")] == ["SMother"]
