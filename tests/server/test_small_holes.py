"""Small holes (issue 10, item 8): admin tokens answer a plain 401 and live a bounded time; text no column can hold
is cleaned or refused, never a 500; a long WhatsApp message is stored whole and the model reads a bounded start."""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from langchain_core.messages import AIMessage, HumanMessage
from typer.testing import CliRunner

from agent.window import MESSAGE_MAX_CHARS, bounded_text
from cli.main import app
from core.clock import FixedClock
from core.settings import Settings, get_settings
from server.http.auth import mint_admin_token
from store import Database
from store.database import parse_json
from tests.scripted_model import ScriptedChatModel
from tests.server.conftest import RunningApp, Secrets, StartApp
from tests.server.helpers import PUBLIC_BASE, calendly_headers, fixture_json, inbound_form, outbox_settled, post_signed
from tests.server.test_admin_api import ADMIN_GETS, bad_tokens, bearer

REFUSED = {"error": "missing or invalid bearer token"}


def token(keys: Secrets, clock: FixedClock, *, issued: timedelta = timedelta(0), ttl: timedelta) -> dict[str, str]:
    """Authorization headers with an admin token issued `issued` from now, valid `ttl` from its issue."""
    return bearer(mint_admin_token(keys.jwt_secret, subject="ana", now=clock.now() + issued, ttl=ttl))


async def post_json(running: RunningApp, path: str, raw: bytes, headers: dict[str, str]) -> httpx.Response:
    """POST raw JSON bytes (a lone surrogate can only be sent escaped, which `json=` would not produce)."""
    # A 500 is answered, not raised, as a real client would see it.
    transport = httpx.ASGITransport(app=running.app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=PUBLIC_BASE) as client:
        return await client.post(path, content=raw, headers={"Content-Type": "application/json", **headers})


class TestAdminTokens:
    async def test_every_refusal_is_the_same_plain_401_and_its_reason_is_logged(
        self, server: RunningApp, keys: Secrets, clock: FixedClock, caplog: pytest.LogCaptureFixture
    ) -> None:
        tokens = bad_tokens(keys, clock.now())
        with caplog.at_level(logging.WARNING, logger="server.http.deps"):
            for headers in tokens.values():
                response = await server.client.get(ADMIN_GETS[0], headers=headers)
                assert response.status_code == 401
                assert response.headers["www-authenticate"] == "Bearer"
                assert response.json() == REFUSED  # PyJWT's reason ("Signature has expired"...) is not quoted
        refusals = [record for record in caplog.records if record.getMessage() == "admin request refused"]
        assert {record.route for record in refusals} == {ADMIN_GETS[0]}
        reasons = [record.reason for record in refusals]
        assert len(reasons) == len(tokens)
        assert "token expired" in reasons and "no bearer token" in reasons
        assert any("InvalidSignatureError" in reason for reason in reasons)
        assert any("MissingRequiredClaimError" in reason and "exp" in reason for reason in reasons)
        logged = caplog.text
        for headers in tokens.values():
            credential = headers.get("Authorization", "").partition(" ")[2]
            assert not credential or credential not in logged

    async def test_tokens_longer_than_the_cap_are_refused(
        self, server: RunningApp, keys: Secrets, clock: FixedClock
    ) -> None:
        week = timedelta(hours=168)
        # A token valid for longer than the cap counted from its issue; or from now, when it claims a later issue.
        too_long = token(keys, clock, ttl=week + timedelta(minutes=1))
        old_but_long = token(keys, clock, issued=-timedelta(days=30), ttl=timedelta(days=30, hours=1))
        from_the_future = token(keys, clock, issued=timedelta(days=6), ttl=timedelta(days=6))
        for headers in (too_long, old_but_long, from_the_future):
            response = await server.client.get(ADMIN_GETS[0], headers=headers)
            assert (response.status_code, response.json()) == (401, REFUSED)
        assert (await server.client.get(ADMIN_GETS[0], headers=token(keys, clock, ttl=week))).status_code == 200

    async def test_the_cap_is_a_setting(
        self, start_app: StartApp, make_settings: Callable[..., Settings], keys: Secrets, clock: FixedClock
    ) -> None:
        async with start_app(settings=make_settings(admin_token_max_hours=1)) as running:
            two_hours = await running.client.get(ADMIN_GETS[0], headers=token(keys, clock, ttl=timedelta(hours=2)))
            one_hour = await running.client.get(ADMIN_GETS[0], headers=token(keys, clock, ttl=timedelta(hours=1)))
        assert (two_hours.status_code, one_hour.status_code) == (401, 200)

    async def test_a_token_without_iat_is_refused(self, server: RunningApp, keys: Secrets, clock: FixedClock) -> None:
        claims = {"sub": "ana", "iss": "asistente", "scope": "admin", "exp": int(clock.now().timestamp()) + 60}
        headers = bearer(jwt.encode(claims, keys.jwt_secret, "HS256"))
        assert (await server.client.get(ADMIN_GETS[0], headers=headers)).status_code == 401


@pytest.mark.parametrize(("hours", "limit"), [("169", None), ("3", "2")])
def test_admin_token_command_refuses_a_lifetime_the_server_would_refuse(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, hours: str, limit: str | None
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JWT_SECRET", secrets.token_urlsafe(32))
    if limit is not None:
        monkeypatch.setenv("ADMIN_TOKEN_MAX_HOURS", limit)
    get_settings.cache_clear()
    try:
        refused = CliRunner().invoke(app, ["admin", "token", "--hours", hours])
        accepted = CliRunner().invoke(app, ["admin", "token", "--hours", limit or "168"])
    finally:
        get_settings.cache_clear()
    assert refused.exit_code == 1 and refused.stdout == ""
    assert refused.output.strip() == (
        f"--hours {hours} is longer than the server accepts (ADMIN_TOKEN_MAX_HOURS={limit or 168})"
    )
    assert accepted.exit_code == 0 and accepted.stdout.count(".") == 2  # one JWT


def calendly_delivery(keys: Secrets, clock: FixedClock, **payload: Any) -> tuple[bytes, dict[str, str]]:
    body = fixture_json("calendly-invitee-created.json")
    body["payload"].update(payload)
    raw = json.dumps(body).encode()  # ensure_ascii: a lone surrogate goes out as the escape "\ud800"
    return raw, calendly_headers(keys.calendly_key, raw, int(clock.now().timestamp()))


class TestTextNoColumnHolds:
    async def test_a_lone_surrogate_in_a_calendly_delivery_is_cleaned_and_stored(
        self, server: RunningApp, keys: Secrets, clock: FixedClock, db: Database
    ) -> None:
        answers = [{"question": "Notas\ud83d\ude00", "answer": "sin prisa \udc00 y\x00 gracias"}]
        raw, headers = calendly_delivery(keys, clock, name="Ana \ud800", questions_and_answers=answers)
        assert b"\\ud800" in raw and b"\\ud83d\\ude00" in raw
        response = await post_json(server, "/api/calendly/webhook", raw, headers)
        assert response.status_code in (200, 202), response.text
        (row,) = await db.fetch_all("SELECT payload FROM calendar_events")
        payload = parse_json(row["payload"])["payload"]
        assert payload["name"] == "Ana \ufffd"
        # A well-formed pair is one character and survives; the lone half becomes U+FFFD; NUL goes.
        assert payload["questions_and_answers"] == [{"question": "Notas😀", "answer": "sin prisa \ufffd y gracias"}]

    @pytest.mark.parametrize(
        "raw",
        [
            b'{"to": "+34600123456", "message": "hola \\ud800"}',
            b'{"to": "+34600123456", "message": "hola \\udfff\\ud800 adi\\u00f3s"}',
            b'{"to": "+34600123456", "message": "hola \\u0000"}',
        ],
        ids=["lone high surrogate", "reversed pair", "NUL"],
    )
    async def test_admin_send_refuses_what_no_column_holds_with_a_422(
        self, server: RunningApp, keys: Secrets, clock: FixedClock, db: Database, raw: bytes
    ) -> None:
        response = await post_json(server, "/api/whatsapp/send", raw, token(keys, clock, ttl=timedelta(hours=1)))
        assert response.status_code == 422, response.text
        assert response.json()["error"] == "invalid request"
        (problem,) = response.json()["detail"]
        assert problem["loc"] == ["body", "message"] and "NUL" in problem["msg"] and "surrogate" in problem["msg"]
        assert await db.fetch_all("SELECT id FROM outbox") == []

    async def test_a_refused_address_holding_a_surrogate_is_a_422_not_a_500(
        self, server: RunningApp, keys: Secrets, clock: FixedClock, db: Database
    ) -> None:
        raw = b'{"to": "+34600\\ud800123456", "message": "hola"}'
        response = await post_json(server, "/api/whatsapp/send", raw, token(keys, clock, ttl=timedelta(hours=1)))
        assert response.status_code == 422, response.text
        assert [p["loc"] for p in response.json()["detail"]] == [["body", "to"]]
        assert "input" not in response.json()["detail"][0]
        assert await db.fetch_all("SELECT id FROM outbox") == []


async def test_a_message_over_4096_characters_is_stored_whole_and_the_model_reads_a_bounded_start(
    start_app: StartApp, db: Database, keys: Secrets
) -> None:
    text = " ".join(f"línea {n}: quiero cita para corte y tinte." for n in range(200))
    assert len(text) > MESSAGE_MAX_CHARS + 1000
    model = ScriptedChatModel(script=[AIMessage(content="¿Para qué día quieres la cita?")])
    async with start_app(agent=None, model=model) as running:
        response = await post_signed(running.client, keys.twilio_token, "/webhook/whatsapp", inbound_form("SMl", text))
        assert response.status_code == 200, response.text
        await outbox_settled(db, within=10)
    (row,) = await db.fetch_all("SELECT body, raw, status FROM inbound_messages")
    assert row["body"] == text and parse_json(row["raw"])["Body"] == text and row["status"] == "processed"
    (call,) = model.calls
    said = [m.content for m in call if isinstance(m, HumanMessage)]
    assert said == [bounded_text(text)]
    assert said[0].startswith(text[:MESSAGE_MAX_CHARS])
    assert said[0].endswith(f"\n[message cut: {MESSAGE_MAX_CHARS} of {len(text)} characters shown]")
    assert len(said[0]) < MESSAGE_MAX_CHARS + 100


def test_bounded_text_keeps_what_fits() -> None:
    exact = "a" * MESSAGE_MAX_CHARS
    assert bounded_text(exact) == exact
    assert bounded_text(exact + "b") == exact + f"\n[message cut: {MESSAGE_MAX_CHARS} of 4097 characters shown]"


async def test_the_longest_whatsapp_text_in_emoji_is_stored_not_refused(
    start_app: StartApp, db: Database, keys: Secrets
) -> None:
    # 65 536 characters, each 4 UTF-8 bytes, 12 once URL-encoded in Twilio's form: about 786 KB.
    body = "😀" * 65_536
    async with start_app(agent=None) as running:
        form = inbound_form("SMlong", body)
        response = await post_signed(running.client, keys.twilio_token, "/webhook/whatsapp", form)
    assert response.status_code == 200, response.text
    stored = await db.fetch_value("SELECT body FROM inbound_messages WHERE message_sid = 'SMlong'")
    assert stored == body
