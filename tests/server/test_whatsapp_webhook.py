"""POST /webhook/whatsapp: signature, durable dedup storage, folding, rate limit, staff takeover."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from twilio.request_validator import RequestValidator

from core.logs import JsonFormatter
from server.options import ServerOptions
from store import Database
from store.conversations import ConversationRepository
from store.inbound import InboundRepository
from tests.server.conftest import FAST, RunningApp, Secrets, StartApp
from tests.server.helpers import (
    CUSTOMER,
    FakeAgent,
    TwilioDouble,
    inbound_form,
    outbox_settled,
    post_signed,
    wait_until,
)

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


async def rows(db: Database, table: str, where: str = "1 = 1", **params: Any) -> list[dict[str, Any]]:
    return await db.fetch_all(f"SELECT * FROM {table} WHERE {where} ORDER BY id", params)


async def test_signed_webhook_is_stored_answered_with_empty_twiml_and_replied(
    server: RunningApp, db: Database, keys: Secrets, agent: FakeAgent, twilio: TwilioDouble
) -> None:
    response = await post_signed(server.client, keys.twilio_token, "/webhook/whatsapp", inbound_form("SM1", "Hola"))

    assert response.status_code == 200
    assert response.text == EMPTY_TWIML
    assert response.headers["content-type"].startswith("text/xml")
    stored = await rows(db, "inbound_messages")
    assert [(r["message_sid"], r["wa_id"], r["body"], r["profile_name"]) for r in stored] == [
        ("SM1", CUSTOMER, "Hola", "Ghanshyam Agrawal")
    ]

    await outbox_settled(db)
    assert twilio.messages()[0]["Body"] == "echo: Hola"
    assert twilio.messages()[0]["To"] == CUSTOMER
    assert twilio.messages()[0]["From"] == "whatsapp:+14155238886"
    outbox = await rows(db, "outbox")
    assert [(o["kind"], o["status"], o["inbound_message_id"], o["attempts"]) for o in outbox] == [
        ("reply", "sent", stored[0]["id"], 1)
    ]
    assert (await rows(db, "inbound_messages"))[0]["status"] == "processed"


async def test_wrong_or_missing_signature_is_refused_and_nothing_stored(
    server: RunningApp, db: Database, keys: Secrets, agent: FakeAgent
) -> None:
    form = inbound_form("SM2", "Hola")
    wrong = await post_signed(server.client, keys.twilio_token, "/webhook/whatsapp", form, signature="bm9wZQ==")
    missing = await post_signed(server.client, keys.twilio_token, "/webhook/whatsapp", form, signature=None)
    other_token = await post_signed(server.client, "another-auth-token", "/webhook/whatsapp", form)
    # Signed for other content: Twilio signs every parameter.
    other_form = inbound_form("SM2", "Adiós")
    tampered_sig = await post_signed(server.client, keys.twilio_token, "/webhook/whatsapp", other_form)
    tampered = await server.client.post(
        "/webhook/whatsapp",
        data=form,
        headers={"X-Twilio-Signature": tampered_sig.request.headers["X-Twilio-Signature"]},
    )

    assert [r.status_code for r in (wrong, missing, other_token, tampered)] == [403, 403, 403, 403]
    assert wrong.json() == {"error": "invalid Twilio signature"}
    stored = await rows(db, "inbound_messages")
    assert [r["body"] for r in stored] == ["Adiós"]  # only the correctly signed request


async def test_signature_is_checked_against_public_url_not_host_header(
    server: RunningApp, db: Database, keys: Secrets
) -> None:
    # Behind a proxy the request reaches us on an internal host; Twilio signed the public URL it called.
    internal = httpx.AsyncClient(transport=httpx.ASGITransport(app=server.app), base_url="http://10.0.0.5:8000")
    async with internal:
        form = inbound_form("SM3", "Hola")
        signed_for_public = await post_signed(internal, keys.twilio_token, "/webhook/whatsapp", form)
        internal_signature = RequestValidator(keys.twilio_token).compute_signature(
            "http://10.0.0.5:8000/webhook/whatsapp", inbound_form("SM4", "Hola")
        )
        signed_for_host = await post_signed(
            internal, keys.twilio_token, "/webhook/whatsapp", inbound_form("SM4", "Hola"), signature=internal_signature
        )
    assert signed_for_public.status_code == 200
    assert signed_for_host.status_code == 403
    assert [r["message_sid"] for r in await rows(db, "inbound_messages")] == ["SM3"]


async def test_same_message_sid_five_times_is_one_message_one_turn_one_reply(
    server: RunningApp, db: Database, keys: Secrets, agent: FakeAgent, twilio: TwilioDouble
) -> None:
    form = inbound_form("SMdup", "Quiero cita")
    responses = [await post_signed(server.client, keys.twilio_token, "/webhook/whatsapp", form) for _ in range(5)]
    assert {r.status_code for r in responses} == {200}

    async def replied() -> bool:
        return len(twilio.messages()) >= 1

    await wait_until(replied)
    await asyncio.sleep(0.3)  # room for any duplicate turn to show up
    assert len(await rows(db, "inbound_messages")) == 1
    assert [c.texts for c in agent.calls] == [["Quiero cita"]]
    assert len(await rows(db, "outbox")) == 1
    assert len(twilio.messages()) == 1


async def test_three_quick_messages_are_folded_into_one_turn_in_order(
    start_app: StartApp, db: Database, keys: Secrets, agent: FakeAgent, twilio: TwilioDouble
) -> None:
    # The quiet window (wider than the test's gaps of ~30 ms, even on a slow machine) is what folds them.
    options = ServerOptions(**{**FAST.__dict__, "fold_quiet_seconds": 0.6})
    async with start_app(options=options) as server:
        for index, text in enumerate(["hola", "quiero cita", "mañana"]):
            form = inbound_form(f"SMq{index}", text)
            await post_signed(server.client, keys.twilio_token, "/webhook/whatsapp", form)
            await asyncio.sleep(0.03)

        async def replied() -> bool:
            return len(twilio.messages()) == 1

        await wait_until(replied)
        await asyncio.sleep(0.3)
    assert [c.texts for c in agent.calls] == [["hola", "quiero cita", "mañana"]]
    outbox = await rows(db, "outbox")
    first = (await rows(db, "inbound_messages"))[0]["id"]
    assert [(o["body"], o["inbound_message_id"]) for o in outbox] == [("echo: hola | quiero cita | mañana", first)]
    assert {r["status"] for r in await rows(db, "inbound_messages")} == {"processed"}


async def test_messages_during_a_turn_go_into_the_next_turn(
    server: RunningApp, db: Database, keys: Secrets, agent: FakeAgent, twilio: TwilioDouble
) -> None:
    agent.gate = asyncio.Event()
    await post_signed(server.client, keys.twilio_token, "/webhook/whatsapp", inbound_form("SMa", "uno"))
    await asyncio.wait_for(agent.entered.wait(), 5)
    await post_signed(server.client, keys.twilio_token, "/webhook/whatsapp", inbound_form("SMb", "dos"))
    await post_signed(server.client, keys.twilio_token, "/webhook/whatsapp", inbound_form("SMc", "tres"))
    agent.gate.set()

    async def two_replies() -> bool:
        return len(twilio.messages()) == 2

    await wait_until(two_replies)
    assert [c.texts for c in agent.calls] == [["uno"], ["dos", "tres"]]
    assert [m["Body"] for m in twilio.messages()] == ["echo: uno", "echo: dos | tres"]
    assert agent.max_concurrent[CUSTOMER] == 1


async def test_sender_over_the_rate_limit_is_stored_not_processed_and_notified_once(
    start_app: StartApp, make_settings: Any, db: Database, keys: Secrets, agent: FakeAgent, twilio: TwilioDouble
) -> None:
    async with start_app(settings=make_settings(rate_limit_per_minute=3)) as running:
        for index in range(6):
            form = inbound_form(f"SMr{index}", f"m{index}")
            response = await post_signed(running.client, keys.twilio_token, "/webhook/whatsapp", form)
            assert response.status_code == 200

        async def settled() -> bool:
            statuses = [r["status"] for r in await rows(db, "inbound_messages")]
            outbox = [r["status"] for r in await rows(db, "outbox")]
            return statuses.count("processed") == 3 and set(outbox) == {"sent"} and len(outbox) >= 2

        await wait_until(settled)
        statuses = [r["status"] for r in await rows(db, "inbound_messages")]
        assert statuses == ["processed"] * 3 + ["rate_limited"] * 3
        assert agent.customer_texts() == ["m0", "m1", "m2"]
        notices = await rows(db, "outbox", "kind = 'system'")
        assert len(notices) == 1
        assert "muchos mensajes" in notices[0]["body"]
        conversation = await db.fetch_one("SELECT rate_notice_at FROM conversations WHERE wa_id = :w", {"w": CUSTOMER})
        assert conversation is not None and conversation["rate_notice_at"] is not None


async def test_paused_conversation_stores_messages_without_answering(
    server: RunningApp, db: Database, keys: Secrets, agent: FakeAgent, twilio: TwilioDouble
) -> None:
    state = server.services
    await state.conversations.set_paused(CUSTOMER, paused=True, by="ana", now=state.clock.now())
    response = await post_signed(server.client, keys.twilio_token, "/webhook/whatsapp", inbound_form("SMp", "hola?"))
    assert response.status_code == 200
    await asyncio.sleep(0.4)
    assert [r["status"] for r in await rows(db, "inbound_messages")] == ["paused"]
    assert agent.calls == []
    assert await rows(db, "outbox") == []


async def test_unconfigured_twilio_refuses_webhooks_unless_explicitly_allowed(
    start_app: StartApp, make_settings: Any, db: Database, agent: FakeAgent
) -> None:
    unconfigured = make_settings(twilio_account_sid=None, twilio_auth_token=None, twilio_whatsapp_number=None)
    form = inbound_form("SMu", "hola")
    async with start_app(settings=unconfigured) as running:
        refused = await running.client.post("/webhook/whatsapp", data=form)
        assert refused.status_code == 403
        assert await rows(db, "inbound_messages") == []
    dev = ServerOptions(**{**FAST.__dict__, "allow_unsigned_webhooks": True})
    async with start_app(settings=unconfigured, options=dev) as running:
        accepted = await running.client.post("/webhook/whatsapp", data=form)
        assert accepted.status_code == 200

        async def logged() -> bool:
            return [r["status"] for r in await rows(db, "outbox")] == ["sent"]

        await wait_until(logged)  # delivered by the log sender: Twilio is not configured
        outbox = await rows(db, "outbox")
        assert outbox[0]["twilio_sid"].startswith("LOG")


async def test_logs_are_json_with_phone_numbers_masked(server: RunningApp, keys: Secrets, caplog: Any) -> None:
    caplog.set_level(logging.INFO)
    await post_signed(server.client, keys.twilio_token, "/webhook/whatsapp", inbound_form("SMlog", "hola"))
    lines = [JsonFormatter().format(r) for r in caplog.records if r.name.startswith("server.")]
    stored = [json.loads(line) for line in lines if "whatsapp message stored" in line]
    assert stored and stored[0]["status"] == "pending"
    assert stored[0]["wa_id"] == "whatsapp:+***456"
    assert not any("600123456" in line for line in lines)


async def test_storing_a_message_opens_its_window_in_the_same_transaction(db: Database, now: datetime) -> None:
    inbound = InboundRepository(db)
    stored = await inbound.receive(message_sid="SMw1", wa_id=CUSTOMER, body="hola", received_at=now)
    assert stored is not None
    conversation = await ConversationRepository(db).get(CUSTOMER)
    assert conversation is not None and conversation.last_inbound_at == now
    assert await inbound.receive(message_sid="SMw1", wa_id=CUSTOMER, body="hola", received_at=now) is None

    # Either both rows are written or neither: if the window cannot be recorded, the message is not stored either
    # (Twilio retries the webhook), so no stored message is ever left without its window.
    await db.execute("DROP TABLE conversations")
    with pytest.raises(Exception):  # noqa: B017 - whichever error the engine raises for the missing table
        await inbound.receive(message_sid="SMw2", wa_id=CUSTOMER, body="otra", received_at=now + timedelta(seconds=1))
    assert [r["message_sid"] for r in await rows(db, "inbound_messages")] == ["SMw1"]
