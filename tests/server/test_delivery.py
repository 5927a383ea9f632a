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
    await running.services.state.conversations.record_inbound(CUSTOMER, at=clock.now() - ago)


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

    async with start_app(twilio_http_transport=httpx.MockTransport(flaky)) as running:
        await open_window(running, clock)
        await running.services.state.outbox.enqueue(CUSTOMER, "Tu cita está confirmada", kind="confirmation")
        rows = await settled(db)
    assert [(r["status"], r["attempts"]) for r in rows] == [("sent", 2)]


async def test_refusal_is_final_and_recorded_with_twilios_error_code(
    server: RunningApp, db: Database, clock: FixedClock, twilio: TwilioDouble
) -> None:
    twilio.script = [400]
    await open_window(server, clock)
    await server.services.state.outbox.enqueue(CUSTOMER, "hola", kind="reply")

    rows = await settled(db)
    assert [(r["status"], r["attempts"], r["error_code"]) for r in rows] == [("failed", 1, "21211")]
    assert "not a valid phone number" in rows[0]["error_message"]
    assert len(twilio.messages()) == 1  # a 4xx is not retried


async def test_retries_stop_after_the_last_attempt(
    start_app: StartApp, db: Database, clock: FixedClock, twilio: TwilioDouble
) -> None:
    twilio.script = [503, 503, 503, 503]
    options = ServerOptions(**{**FAST.__dict__, "delivery_max_attempts": 3})
    async with start_app(options=options) as running:
        await open_window(running, clock)
        await running.services.state.outbox.enqueue(CUSTOMER, "hola", kind="reply")
        rows = await settled(db)
    assert [(r["status"], r["attempts"]) for r in rows] == [("failed", 3)]
    assert len(twilio.messages()) == 3


async def test_backoff_delays_the_next_attempt(
    start_app: StartApp, db: Database, clock: FixedClock, twilio: TwilioDouble
) -> None:
    twilio.script = [500]
    options = ServerOptions(**{**FAST.__dict__, "delivery_backoff_seconds": 30.0})
    async with start_app(options=options) as running:
        await open_window(running, clock)
        await running.services.state.outbox.enqueue(CUSTOMER, "hola", kind="reply")

        async def retry_scheduled() -> bool:
            rows = await outbox_rows(db)
            return rows[0]["attempts"] == 1 and rows[0]["status"] == "pending"

        await wait_until(retry_scheduled)
        assert len(twilio.messages()) == 1  # not due yet: the clock stands still
        clock.advance(timedelta(seconds=31))
        running.services.state.outbox.notify()
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
        await running.services.state.outbox.enqueue(
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
    await server.services.state.outbox.enqueue(CUSTOMER, "¿Sigues ahí?", kind="reply")
    await server.services.state.outbox.enqueue(CUSTOMER, "Cita cancelada", kind="cancellation")

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
    await server.services.state.outbox.enqueue(CUSTOMER, "hola", kind="reply")
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
    await server.services.state.outbox.enqueue(CUSTOMER, "hola", kind="reply")
    sid = (await settled(db))[0]["twilio_sid"]
    for status in ("read", "delivered", "sent"):
        form = {"MessageSid": sid, "MessageStatus": status, "To": CUSTOMER, "AccountSid": "AC1"}
        response = await post_signed(server.client, keys.twilio_token, "/webhook/whatsapp/status", form)
        assert response.status_code == 204
    unknown = {"MessageSid": "SMunknown", "MessageStatus": "delivered"}
    assert (await post_signed(server.client, keys.twilio_token, "/webhook/whatsapp/status", unknown)).status_code == 204
    assert (await outbox_rows(db))[0]["status"] == "read"
