"""`asistente calendly subscribe`: the subscription is created with the configured signing key, or with one it
generates and prints once (README, "Running it for a business", step 4).

The CLI runs unchanged against a Calendly double on 127.0.0.1 (CALENDLY_API_BASE_URL points at it) answering in
Calendly's wire format; the library call is also exercised over an httpx.MockTransport.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from cli.main import app
from core.settings import Settings, get_settings
from integrations.calendly.subscription import generate_signing_key, subscribe_webhook
from tests.test_check_command import LocalApi

runner = CliRunner()
PUBLIC = "https://reservas.peluqueria-rb.test"
CALLBACK = PUBLIC + "/api/calendly/webhook"
USER_URI = "https://api.calendly.com/users/U7K3M9P2Q5R8T1V4"
ORGANIZATION = "https://api.calendly.com/organizations/O2J8N4W6X1Z3C5B7"
SUBSCRIPTION_URI = "https://api.calendly.com/webhook_subscriptions/W9E3R5T7Y2U4I6O8"
ME = {
    "uri": USER_URI,
    "name": "Peluquería RB",
    "email": "hola@peluqueria-rb.test",
    "timezone": "Europe/Madrid",
    "current_organization": ORGANIZATION,
}
SUBSCRIPTION = {
    "uri": SUBSCRIPTION_URI,
    "callback_url": CALLBACK,
    "created_at": "2026-11-24T21:00:00.000000Z",
    "updated_at": "2026-11-24T21:00:00.000000Z",
    "retry_started_at": None,
    "state": "active",
    "events": ["invitee.created", "invitee.canceled"],
    "scope": "user",
    "organization": ORGANIZATION,
    "user": USER_URI,
    "creator": USER_URI,
}


@pytest.fixture
def calendly(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[LocalApi]:
    """Calendly's double, answering /users/me and creating subscriptions; the environment points at it."""
    monkeypatch.chdir(tmp_path)  # no developer .env
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    api = LocalApi()
    api.route("GET", "/users/me", {"resource": ME})
    api.route("POST", "/webhook_subscriptions", {"resource": SUBSCRIPTION}, status=201)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'a.db'}")
    monkeypatch.setenv("CALENDLY_ACCESS_TOKEN", secrets.token_hex(16))
    monkeypatch.setenv("CALENDLY_API_BASE_URL", api.base)
    monkeypatch.setenv("PUBLIC_BASE_URL", PUBLIC)
    get_settings.cache_clear()
    yield api
    get_settings.cache_clear()
    api.close()


def created(api: LocalApi) -> dict[str, Any]:
    """The body of the one POST /webhook_subscriptions the double received."""
    bodies = [json.loads(body) for method, path, _, body in api.requests if method == "POST"]
    assert len(bodies) == 1
    return bodies[0]


def test_without_a_key_one_is_generated_used_and_printed_once(calendly: LocalApi) -> None:
    result = runner.invoke(app, ["calendly", "subscribe"])
    assert result.exit_code == 0, result.output
    body = created(calendly)
    key = body["signing_key"]
    assert len(key) == 43 and key.replace("-", "").replace("_", "").isalnum()  # secrets.token_urlsafe(32)
    assert body["url"] == CALLBACK and body["user"] == USER_URI and body["scope"] == "user"
    assert result.output.count(key) == 1
    assert f"CALENDLY_WEBHOOK_SIGNING_KEY={key}\n" in result.output
    assert "shown only this once" in result.output
    assert f"subscribed {CALLBACK} to invitee.created, invitee.canceled" in result.output


def test_a_configured_key_is_used_and_never_printed(calendly: LocalApi, monkeypatch: pytest.MonkeyPatch) -> None:
    configured = secrets.token_urlsafe(32)
    monkeypatch.setenv("CALENDLY_WEBHOOK_SIGNING_KEY", configured)
    result = runner.invoke(app, ["calendly", "subscribe"])
    assert result.exit_code == 0, result.output
    assert created(calendly)["signing_key"] == configured
    assert configured not in result.output
    assert "signed with CALENDLY_WEBHOOK_SIGNING_KEY" in result.output


def test_an_existing_subscription_is_named_without_a_traceback(calendly: LocalApi) -> None:
    conflict = {"title": "Already Exists", "message": "Hook with this url already exists"}
    calendly.route("POST", "/webhook_subscriptions", conflict, status=409)
    listing = {"collection": [SUBSCRIPTION], "pagination": {"count": 1, "next_page": None}}
    calendly.route("GET", "/webhook_subscriptions", listing)
    result = runner.invoke(app, ["calendly", "subscribe"])
    assert result.exit_code == 1
    assert SUBSCRIPTION_URI in result.output and "delete the subscription" in result.output
    assert created(calendly)["signing_key"] not in result.output  # a key that signs nothing is not shown
    assert "Traceback" not in result.output


def test_no_answer_to_the_creation_says_what_to_do_and_hides_the_unused_key(calendly: LocalApi) -> None:
    calendly.route("POST", "/webhook_subscriptions", {"title": "Internal Server Error", "message": ""}, status=500)
    result = runner.invoke(app, ["calendly", "subscribe"])
    assert result.exit_code == 1
    assert "may have created the subscription anyway" in result.output
    assert "delete it there and run this again" in result.output
    assert created(calendly)["signing_key"] not in result.output
    assert "Traceback" not in result.output


def test_a_placeholder_key_is_refused_before_calling_calendly(calendly: LocalApi, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("CALENDLY_WEBHOOK_SIGNING_KEY=changeme\n")
    result = runner.invoke(app, ["calendly", "subscribe"])
    assert result.exit_code == 1
    assert "CALENDLY_WEBHOOK_SIGNING_KEY" in result.output and "generates one" in result.output
    assert calendly.requests == []


async def test_an_explicit_key_wins_over_the_configured_one() -> None:
    sent: list[dict[str, Any]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/users/me":
            return httpx.Response(200, json={"resource": ME})
        sent.append(json.loads(request.content))
        return httpx.Response(201, json={"resource": SUBSCRIPTION})

    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        calendly_access_token="calendly-access-token-value",  # type: ignore[arg-type]
        calendly_webhook_signing_key=secrets.token_urlsafe(32),  # type: ignore[arg-type]
        calendly_api_base_url="https://cal.test",  # type: ignore[arg-type]
        public_base_url=PUBLIC,  # type: ignore[arg-type]
    )
    fresh = generate_signing_key()
    async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as http:
        subscription = await subscribe_webhook(settings, signing_key=fresh, http=http)
    assert subscription.uri == SUBSCRIPTION_URI
    assert [body["signing_key"] for body in sent] == [fresh]
    assert fresh != generate_signing_key()
