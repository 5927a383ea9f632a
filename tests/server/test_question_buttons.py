"""Confirmation questions go out with quick-reply buttons naming the question, and only that button confirms."""

from __future__ import annotations

import json
from collections.abc import Callable

from langchain_core.messages import AIMessage

from core.settings import Settings
from store import Database
from tests.scripted_model import ScriptedChatModel, call, says, uses
from tests.server.conftest import Secrets, StartApp
from tests.server.helpers import TwilioDouble, inbound_form, outbox_settled, post_signed, wait_until

BUTTONS_SID = "HX" + "7" * 32


async def test_the_question_carries_its_id_and_only_its_button_books(
    start_app: StartApp, db: Database, keys: Secrets, twilio: TwilioDouble, make_settings: Callable[..., Settings]
) -> None:
    model = ScriptedChatModel(
        script=[
            uses(call("book_appointment", service="corte", start_time="2026-11-26T10:00:00")),
            AIMessage(content="¿Qué quieres cambiar?"),  # after the stale button: not confirmed
            uses(call("book_appointment", service="corte", start_time="2026-11-26T10:00:00")),
            says("¡Reservado!"),
        ]
    )
    settings = make_settings(twilio_content_confirm_buttons_sid=BUTTONS_SID)
    async with start_app(agent=None, model=model, settings=settings) as running:
        first = inbound_form("SMq1", "corte el jueves a las 10")
        assert (await post_signed(running.client, keys.twilio_token, "/webhook/whatsapp", first)).status_code == 200
        await outbox_settled(db, 1, within=10)
        question = twilio.messages()[-1]
        assert question["ContentSid"] == BUTTONS_SID and "Body" not in question
        variables = json.loads(question["ContentVariables"])
        assert "jueves 26 de noviembre" in variables["1"]
        pending_id = variables["2"]

        # A button from an older message (here, a made-up earlier question) does not book.
        stale = inbound_form("SMq2", "Sí", ButtonPayload="confirm:0123456789ab", ButtonText="Sí")
        assert (await post_signed(running.client, keys.twilio_token, "/webhook/whatsapp", stale)).status_code == 200
        await outbox_settled(db, 2, within=10)
        assert await db.fetch_all("SELECT id FROM appointments") == []

        again = inbound_form("SMq3", "vale, a las 10 entonces")
        assert (await post_signed(running.client, keys.twilio_token, "/webhook/whatsapp", again)).status_code == 200
        await outbox_settled(db, 3, within=10)
        pending_id = json.loads(twilio.messages()[-1]["ContentVariables"])["2"]
        tap = inbound_form("SMq4", "Sí", ButtonPayload=f"confirm:{pending_id}", ButtonText="Sí")
        assert (await post_signed(running.client, keys.twilio_token, "/webhook/whatsapp", tap)).status_code == 200

        async def booked() -> bool:
            return len(await db.fetch_all("SELECT id FROM appointments WHERE status = 'confirmed'")) == 1

        await wait_until(booked, within=10)
        await outbox_settled(db, 4, within=10)
    kinds = [r["kind"] for r in await db.fetch_all("SELECT kind FROM outbox ORDER BY id")]
    assert kinds == ["question", "reply", "question", "reply"]
    model.assert_complete()
