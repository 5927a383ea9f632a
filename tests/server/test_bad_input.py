"""Bad input gets a clear 4xx with a JSON error, never a 500, and nothing is stored."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from core.clock import FixedClock
from server.http.auth import mint_admin_token
from store import Database
from store.database import parse_json
from tests.server.conftest import RunningApp, Secrets, StartApp
from tests.server.helpers import calendly_headers, inbound_form, post_signed

TABLES = ("inbound_messages", "outbox", "calendar_events", "appointments", "system_events", "conversations")


@pytest.fixture(autouse=True)
async def nothing_stored(db: Database) -> AsyncIterator[None]:
    yield
    for table in TABLES:
        assert await db.fetch_all(f"SELECT * FROM {table}") == [], table


def assert_json_error(response: Any, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert isinstance(response.json()["error"], str) and response.json()["error"]


async def test_twilio_webhook_wrong_content_type(server: RunningApp, keys: Secrets) -> None:
    response = await server.client.post("/webhook/whatsapp", json=inbound_form("SM1", "hola"))
    assert_json_error(response, 415)


@pytest.mark.parametrize("body", [b"MessageSid=SM1&Body", b"Body=%ff%fe", b"\xff\xfe=1", b"a=1&&&=2"])
async def test_twilio_webhook_malformed_form(server: RunningApp, body: bytes) -> None:
    response = await server.client.post(
        "/webhook/whatsapp", content=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert_json_error(response, 400)


@pytest.mark.parametrize("change", [{"MessageSid": ""}, {"NumMedia": "many"}, {"From": ""}, {"Latitude": "north"}])
async def test_twilio_webhook_signed_but_invalid_fields(
    server: RunningApp, keys: Secrets, change: dict[str, str]
) -> None:
    form = inbound_form("SMbad", "hola") | change
    response = await post_signed(server.client, keys.twilio_token, "/webhook/whatsapp", form)
    assert_json_error(response, 400)


async def test_twilio_webhook_missing_required_field(server: RunningApp, keys: Secrets) -> None:
    form = inbound_form("SMbad", "hola")
    del form["MessageSid"]
    response = await post_signed(server.client, keys.twilio_token, "/webhook/whatsapp", form)
    assert_json_error(response, 400)
    assert "MessageSid" in response.json()["error"]


async def test_huge_bodies_are_refused_before_any_handler(server: RunningApp, keys: Secrets) -> None:
    limit = server.services.options.max_body_bytes
    form = inbound_form("SMhuge", "x" * (limit + 1))
    declared = await post_signed(server.client, keys.twilio_token, "/webhook/whatsapp", form)
    assert_json_error(declared, 413)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(limit // 1024 + 16):
            yield b"y" * 1024

    streamed = await server.client.post(
        "/api/calendly/webhook", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert "content-length" not in streamed.request.headers
    assert_json_error(streamed, 413)


async def test_calendly_webhook_wrong_content_type(server: RunningApp) -> None:
    response = await server.client.post("/api/calendly/webhook", data={"event": "invitee.created"})
    assert_json_error(response, 415)


@pytest.mark.parametrize(
    "raw",
    [
        b"{not json",
        b"\xff\xfe",
        b"[1, 2]",
        json.dumps({"event": "invitee.created"}).encode(),
        json.dumps({"event": "invitee.created", "created_at": "x", "payload": {"uri": "u"}}).encode(),
        json.dumps(
            {
                "event": "invitee.canceled",
                "created_at": "x",
                "payload": {"uri": "u", "scheduled_event": {"uri": "e", "start_time": "tomorrow"}},
            }
        ).encode(),
        # Nested deeper than the JSON parser's recursion allows (RecursionError, not JSONDecodeError).
        b'{"event": "invitee.created", "created_at": "x", "payload": {"a": ' + b"[" * 20_000 + b"]" * 20_000 + b"}}",
        b"[" * 5_000 + b"]" * 5_000,
        # Parseable, but deep enough to exhaust the stack later (validation, serialisation for storage).
        b'{"event": "other.event", "created_at": "x", "payload": {"a": ' + b"[" * 900 + b"]" * 900 + b"}}",
    ],
)
async def test_calendly_webhook_signed_but_invalid_body(
    server: RunningApp, keys: Secrets, clock: FixedClock, raw: bytes
) -> None:
    headers = calendly_headers(keys.calendly_key, raw, int(clock.now().timestamp()))
    response = await server.client.post("/api/calendly/webhook", content=raw, headers=headers)
    assert_json_error(response, 400)


@pytest.mark.parametrize(
    "header",
    [
        "t=\u00b2,v1=" + "0" * 64,  # "²" passes str.isdigit() but int() refuses it
        "t={now},v1=\u00e9" + "0" * 63,  # non-ASCII v1: compare_digest(str, str) raises TypeError
        "t={now},v1=zz",
        "t={now},v1=",
        "t=-1,v1=" + "0" * 64,
        "t=,v1=" + "0" * 64,
        "t={now}",
        ",,,=,t",
    ],
)
async def test_calendly_webhook_garbage_signature_headers_are_refused_not_a_500(
    server: RunningApp, clock: FixedClock, header: str
) -> None:
    raw = json.dumps({"event": "invitee.created", "created_at": "x", "payload": {}}).encode()
    now = int(clock.now().timestamp())
    response = await server.client.post(
        "/api/calendly/webhook",
        content=raw,
        # As bytes: HTTP headers are latin-1 on the wire, which is how the server decodes them.
        headers={
            "Content-Type": "application/json",
            "Calendly-Webhook-Signature": header.format(now=now).encode("latin-1"),
        },
    )
    assert_json_error(response, 403)


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [(b"{oops", "application/json", 400), (b"to=+34600123456", "text/plain", 415), (b"[]", "application/json", 422)],
)
async def test_admin_send_with_bad_bodies(
    server: RunningApp, keys: Secrets, clock: FixedClock, content: bytes, content_type: str, status: int
) -> None:
    token = mint_admin_token(keys.jwt_secret, subject="ana", now=clock.now(), ttl=timedelta(hours=1))
    response = await server.client.post(
        "/api/whatsapp/send",
        content=content,
        headers={"Content-Type": content_type, "Authorization": f"Bearer {token}"},
    )
    assert_json_error(response, status)


async def test_unknown_routes_and_methods(server: RunningApp) -> None:
    assert_json_error(await server.client.get("/nope"), 404)
    assert_json_error(await server.client.get("/webhook/whatsapp"), 405)
    assert_json_error(await server.client.delete("/api/calendly/webhook"), 405)


class TestOddButValidInput:
    """Input that is signed and well-formed but holds something a database column cannot: accepted, cleaned."""

    @pytest.fixture(autouse=True)
    async def nothing_stored(self) -> AsyncIterator[None]:
        # These deliveries are legitimate and are stored; this overrides the module's "nothing stored" check.
        yield

    async def test_nul_characters_in_a_signed_twilio_form_are_dropped_not_a_500(
        self, start_app: StartApp, keys: Secrets, db: Database
    ) -> None:
        form = inbound_form("SMnul", "ho\x00la", ProfileName="A\x00na", ButtonPayload="x\x00y", Nul="\x00")
        async with start_app(run_worker=False) as running:
            response = await post_signed(running.client, keys.twilio_token, "/webhook/whatsapp", form)
        assert response.status_code == 200, response.text
        rows = await db.fetch_all("SELECT body, profile_name, button_payload, raw FROM inbound_messages")
        assert len(rows) == 1
        assert (rows[0]["body"], rows[0]["profile_name"], rows[0]["button_payload"]) == ("hola", "Ana", "xy")
        raw = parse_json(rows[0]["raw"])
        assert raw["Body"] == "hola" and raw["ProfileName"] == "Ana" and raw["Nul"] == ""
