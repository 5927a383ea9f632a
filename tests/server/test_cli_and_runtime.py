"""The server CLI commands and the production agent wiring (the real LangGraph Assistant behind the worker)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from langchain_core.messages import AIMessage
from typer.testing import CliRunner

from cli.main import app
from core.clock import SystemClock
from core.settings import Settings, get_settings
from integrations.calendly.subscription import SubscriptionError, subscribe_webhook
from server.http.auth import verify_admin_token
from store import Database
from tests.scripted_model import ScriptedChatModel
from tests.server.conftest import Secrets, StartApp
from tests.server.helpers import CUSTOMER, TwilioDouble, inbound_form, outbox_settled, post_signed, wait_until

runner = CliRunner()


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'a.db'}")
    for key in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "CALENDLY_ACCESS_TOKEN", "JWT_SECRET", "BUSINESS_CONFIG"):
        monkeypatch.delenv(key, raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_admin_token_command_mints_a_token_the_api_accepts(cli_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = secrets.token_urlsafe(32)
    monkeypatch.setenv("JWT_SECRET", secret)
    result = runner.invoke(app, ["admin", "token", "--subject", "ana", "--hours", "1"])
    assert result.exit_code == 0, result.output
    identity = verify_admin_token(
        secret, result.output.strip(), now=SystemClock().now(), max_lifetime=timedelta(hours=1)
    )
    assert identity.subject == "ana"


def test_admin_token_command_needs_the_secret(cli_env: None) -> None:
    result = runner.invoke(app, ["admin", "token"])
    assert result.exit_code == 1
    assert "JWT_SECRET" in result.output


def test_serve_refuses_to_start_without_a_model(cli_env: None) -> None:
    result = runner.invoke(app, ["serve"])
    assert result.exit_code == 1
    assert "--no-agent" in result.output


async def test_calendly_subscription_is_created_for_the_public_webhook_url(
    make_settings: Callable[..., Settings],
) -> None:
    sent: list[tuple[str, str, dict[str, object] | None]] = []

    def calendly(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        sent.append((request.method, request.url.path, body))
        if request.url.path == "/users/me":
            user = {
                "uri": "https://api.calendly.com/users/U1",
                "name": "Salón",
                "email": "s@example.com",
                "timezone": "Europe/Madrid",
                "current_organization": "https://api.calendly.com/organizations/O1",
            }
            return httpx.Response(200, json={"resource": user})
        resource = {
            "uri": "https://api.calendly.com/webhook_subscriptions/W1",
            "callback_url": body["url"],  # type: ignore[index]
            "state": "active",
            "events": body["events"],
            "scope": "user",  # type: ignore[index]
            "organization": "https://api.calendly.com/organizations/O1",
            "user": "https://api.calendly.com/users/U1",
            "created_at": "2026-11-24T21:00:00Z",
            "updated_at": "2026-11-24T21:00:00Z",
        }
        return httpx.Response(201, json={"resource": resource})

    settings = make_settings(
        calendly_access_token="calendly-access-token-value", calendly_api_base_url="https://cal.test"
    )
    async with httpx.AsyncClient(transport=httpx.MockTransport(calendly)) as http:
        subscription = await subscribe_webhook(settings, http=http)
    assert subscription.state == "active"
    method, path, body = sent[-1]
    assert (method, path) == ("POST", "/webhook_subscriptions")
    assert body == {
        "url": "https://asistente.example.com/api/calendly/webhook",
        "events": ["invitee.created", "invitee.canceled"],
        "organization": "https://api.calendly.com/organizations/O1",
        "scope": "user",
        "user": "https://api.calendly.com/users/U1",
        "signing_key": settings.calendly_webhook_signing_key.get_secret_value(),  # type: ignore[union-attr]
    }


async def test_calendly_subscription_needs_token_signing_key_and_https(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(SubscriptionError, match="CALENDLY_ACCESS_TOKEN"):
        await subscribe_webhook(make_settings())
    with pytest.raises(SubscriptionError, match="SIGNING_KEY"):
        await subscribe_webhook(make_settings(calendly_access_token="tok-value-1", calendly_webhook_signing_key=None))
    with pytest.raises(SubscriptionError, match="https"):
        await subscribe_webhook(make_settings(calendly_access_token="tok-value-1", public_base_url="http://x.test"))


async def test_real_assistant_answers_through_the_server(
    start_app: StartApp, db: Database, keys: Secrets, twilio: TwilioDouble
) -> None:
    """Webhook -> worker -> LangGraph Assistant (scripted model) -> outbox -> Twilio double."""
    model = ScriptedChatModel(script=[AIMessage(content="¡Hola! ¿Qué servicio quieres reservar?")])
    async with start_app(agent=None, model=model) as running:
        form = inbound_form("SMa", "hola")
        response = await post_signed(running.client, keys.twilio_token, "/webhook/whatsapp", form)
        assert response.status_code == 200

        await outbox_settled(db, within=10)
    assert twilio.messages()[0]["Body"] == "¡Hola! ¿Qué servicio quieres reservar?"
    assert len(model.calls) == 1
    client = await db.fetch_one("SELECT profile_name FROM clients WHERE wa_id = :w", {"w": CUSTOMER})
    assert client == {"profile_name": "Ghanshyam Agrawal"}
    reply = await db.fetch_one("SELECT kind, status, inbound_message_id FROM outbox")
    inbound = await db.fetch_one("SELECT id, status FROM inbound_messages")
    assert inbound is not None and inbound["status"] == "processed"
    assert reply == {"kind": "reply", "status": "sent", "inbound_message_id": inbound["id"]}


async def test_handoff_alerts_staff_and_pauses_the_assistant(
    start_app: StartApp, db: Database, keys: Secrets, twilio: TwilioDouble, make_settings: Callable[..., Settings]
) -> None:
    """The agent hands over: staff get the alert (as a template: they have not written in 24 h), the assistant is
    paused for the customer, and the customer's next message is stored but not answered."""
    model = ScriptedChatModel(
        script=[
            AIMessage(
                content="",
                tool_calls=[{"name": "handoff_to_staff", "args": {"reason": "Queja por el tinte"}, "id": "call_h1"}],
            ),
            AIMessage(content="Te paso con el equipo; te escribirán enseguida."),
        ]
    )
    settings = make_settings(staff_whatsapp_number="+34911000000", twilio_template_staff_alert_sid="HX" + "5" * 32)
    async with start_app(agent=None, model=model, settings=settings) as running:
        first = inbound_form("SMh1", "quiero hablar con una persona")
        assert (await post_signed(running.client, keys.twilio_token, "/webhook/whatsapp", first)).status_code == 200
        await outbox_settled(db, 2, within=10)  # the staff alert and the customer's reply
        second = inbound_form("SMh2", "¿hola?")
        assert (await post_signed(running.client, keys.twilio_token, "/webhook/whatsapp", second)).status_code == 200

        async def held() -> bool:
            row = await db.fetch_one("SELECT status FROM inbound_messages WHERE message_sid = 'SMh2'")
            return row is not None and row["status"] == "paused"

        await wait_until(held, within=10)
    conversation = await db.fetch_one("SELECT paused, paused_by FROM conversations WHERE wa_id = :w", {"w": CUSTOMER})
    assert conversation is not None and bool(conversation["paused"])
    assert conversation["paused_by"] == "assistant:handoff"
    by_recipient = {m["To"]: m for m in twilio.messages()}
    staff = by_recipient["whatsapp:+34911000000"]
    assert staff["ContentSid"] == "HX" + "5" * 32
    assert json.loads(staff["ContentVariables"]) == {
        "1": "+34600123456",
        "2": "Ghanshyam Agrawal",
        "3": "Queja por el tinte",
    }
    assert by_recipient[CUSTOMER]["Body"] == "Te paso con el equipo; te escribirán enseguida."
    assert len(model.calls) == 2  # the held message never reached the model
