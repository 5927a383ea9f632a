"""Admin API: JWT authentication, send, config, stats, conversations, staff takeover, Calendly admin, health."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

import httpx
import jwt
import pytest

from core.clock import FixedClock
from core.settings import Settings
from server.http.auth import mint_admin_token
from store import Database
from store.appointments import AppointmentRepository
from store.clients import ClientRepository
from store.system_events import SystemEventRepository
from tests.server.conftest import ProbeDouble, RunningApp, Secrets, StartApp
from tests.server.helpers import (
    CUSTOMER,
    FakeAgent,
    TwilioDouble,
    inbound_form,
    outbox_settled,
    post_signed,
    wait_until,
)

PUBLIC_HEALTH = ["/health", "/api/whatsapp/health", "/api/calendly/health"]
ADMIN_GETS = [
    "/api/whatsapp/config",
    "/api/whatsapp/stats",
    "/api/calendly/events",
    "/api/conversations",
    "/api/conversations/+34600123456",
]
ADMIN_POSTS = [
    ("/api/whatsapp/send", {"to": "+34600123456", "message": "hola"}),
    ("/api/calendly/sync", None),
    ("/api/conversations/+34600123456/pause", None),
    ("/api/conversations/+34600123456/resume", None),
]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def admin(keys: Secrets, clock: FixedClock) -> dict[str, str]:
    return bearer(mint_admin_token(keys.jwt_secret, subject="ana", now=clock.now(), ttl=timedelta(hours=1)))


def bad_tokens(keys: Secrets, now: datetime) -> Mapping[str, dict[str, str]]:
    expired = mint_admin_token(keys.jwt_secret, subject="ana", now=now - timedelta(hours=2), ttl=timedelta(hours=1))
    forged = mint_admin_token("some-other-secret-of-enough-length", subject="ana", now=now, ttl=timedelta(hours=1))
    no_exp = jwt.encode({"sub": "ana", "iss": "asistente", "iat": int(now.timestamp())}, keys.jwt_secret, "HS256")
    unsigned = jwt.encode({"sub": "ana", "exp": int(now.timestamp()) + 60}, None, algorithm="none")
    return {
        "missing": {},
        "expired": bearer(expired),
        "wrong signature": bearer(forged),
        "no expiry": bearer(no_exp),
        "alg none": bearer(unsigned),
        "garbage": bearer("not-a-jwt"),
        "basic scheme": {"Authorization": "Basic YWRtaW46YWRtaW4="},
    }


async def test_admin_endpoints_refuse_missing_expired_and_forged_tokens(
    server: RunningApp, keys: Secrets, clock: FixedClock, db: Database
) -> None:
    for name, headers in bad_tokens(keys, clock.now()).items():
        for path in ADMIN_GETS:
            response = await server.client.get(path, headers=headers)
            assert response.status_code == 401, (name, path)
            assert response.headers["www-authenticate"] == "Bearer"
            assert "error" in response.json()
        for path, body in ADMIN_POSTS:
            response = await server.client.post(path, json=body, headers=headers)
            assert response.status_code == 401, (name, path)
    assert await db.fetch_all("SELECT id FROM outbox") == []
    assert await db.fetch_all("SELECT wa_id FROM conversations") == []


async def test_valid_token_is_accepted(server: RunningApp, admin: dict[str, str]) -> None:
    for path in ADMIN_GETS[:-1]:
        assert (await server.client.get(path, headers=admin)).status_code == 200, path


async def test_admin_api_is_off_without_jwt_secret(
    start_app: StartApp, make_settings: Callable[..., Settings], admin: dict[str, str]
) -> None:
    async with start_app(settings=make_settings(jwt_secret=None)) as running:
        response = await running.client.get("/api/whatsapp/config", headers=admin)
    assert response.status_code == 503


async def test_config_masks_secrets(server: RunningApp, admin: dict[str, str], keys: Secrets) -> None:
    response = await server.client.get("/api/whatsapp/config", headers=admin)
    config = response.json()
    assert keys.twilio_token not in response.text and keys.jwt_secret not in response.text
    assert keys.calendly_key not in response.text
    assert config["auth_token"] == "***"
    assert config["account_sid"] == "…0042"
    assert config["webhook_url"] == "https://asistente.example.com/webhook/whatsapp"
    assert config["transport"] == "twilio"


async def test_send_queues_an_admin_message_that_the_worker_delivers(
    server: RunningApp, admin: dict[str, str], db: Database, clock: FixedClock, twilio: TwilioDouble
) -> None:
    await server.services.conversations.record_inbound(CUSTOMER, at=clock.now())
    response = await server.client.post(
        "/api/whatsapp/send", json={"to": "+34600123456", "message": "Te llamamos ahora"}, headers=admin
    )
    assert response.status_code == 202 and response.json()["within_24h_window"] is True

    async def sent() -> bool:
        return len(twilio.messages()) == 1

    await wait_until(sent)
    assert twilio.messages()[0]["Body"] == "Te llamamos ahora"
    rows = await db.fetch_all("SELECT wa_id, kind FROM outbox")
    assert rows == [{"wa_id": CUSTOMER, "kind": "admin"}]


async def test_send_validates_its_body(server: RunningApp, admin: dict[str, str], db: Database) -> None:
    bad_number = await server.client.post("/api/whatsapp/send", json={"to": "600", "message": "x"}, headers=admin)
    empty = await server.client.post("/api/whatsapp/send", json={"to": "+34600123456", "message": ""}, headers=admin)
    assert (bad_number.status_code, empty.status_code) == (422, 422)
    assert await db.fetch_all("SELECT id FROM outbox") == []


async def test_stats_count_messages_latency_bookings_and_errors(
    server: RunningApp, admin: dict[str, str], db: Database, keys: Secrets, clock: FixedClock, twilio: TwilioDouble
) -> None:
    await post_signed(server.client, keys.twilio_token, "/webhook/whatsapp", inbound_form("SMs1", "hola"))
    await outbox_settled(db)
    client = await ClientRepository(db).ensure(CUSTOMER, now=clock.now())
    await AppointmentRepository(db).create(
        client_id=client.id,
        service="Tinte",
        start_at=clock.now() + timedelta(days=2),
        end_at=clock.now() + timedelta(days=2, hours=1),
        source="agent",
        calendar="local",
        now=clock.now(),
    )
    await server.services.outbox.enqueue("whatsapp:+34699999999", "fuera de ventana", kind="reply")

    async def undeliverable() -> bool:
        rows = await db.fetch_all("SELECT status FROM outbox WHERE wa_id = 'whatsapp:+34699999999'")
        return rows == [{"status": "undeliverable"}]

    await wait_until(undeliverable)
    stats = (await server.client.get("/api/whatsapp/stats?hours=24", headers=admin)).json()
    assert stats["messages"]["received"] == 1
    assert stats["messages_per_hour"] == [{"hour": "2026-11-24T21:00:00+00:00", "received": 1, "sent": 1}]
    assert stats["reply_latency_seconds"] == {"count": 1, "mean": 0.0, "p95": 0.0}
    assert stats["bookings"]["by_source"] == {"agent": 1}
    assert stats["conversion"] == {"customers_writing": 1, "customers_booking": 1, "rate": 1.0}
    # The 24-hour rule kept a message back: our policy, not a Twilio error.
    assert stats["errors"]["twilio"] == 0 and stats["errors"]["undeliverable"] == 1 and stats["errors"]["agent"] == 0


async def test_stats_count_twilio_failures_apart_from_messages_held_back_by_the_24_hour_rule(
    server: RunningApp, admin: dict[str, str], db: Database, keys: Secrets, twilio: TwilioDouble
) -> None:
    twilio.script = [400]  # the reply is refused by Twilio (21211, invalid number)
    await post_signed(server.client, keys.twilio_token, "/webhook/whatsapp", inbound_form("SMs2", "hola"))
    await server.services.outbox.enqueue("whatsapp:+34699999999", "fuera de ventana", kind="reply")
    rows = await outbox_settled(db, 2)
    assert sorted(r["status"] for r in rows) == ["failed", "undeliverable"]

    stats = (await server.client.get("/api/whatsapp/stats?hours=24", headers=admin)).json()

    assert stats["errors"]["twilio"] == 1
    assert stats["errors"]["twilio_by_code"] == {"21211": 1}
    assert stats["errors"]["undeliverable"] == 1


async def test_transcript_and_staff_takeover(
    server: RunningApp,
    db: Database,
    admin: dict[str, str],
    keys: Secrets,
    agent: FakeAgent,
    twilio: TwilioDouble,
    clock: FixedClock,
) -> None:
    await post_signed(server.client, keys.twilio_token, "/webhook/whatsapp", inbound_form("SMt1", "hola"))
    await outbox_settled(db)
    clock.advance(timedelta(minutes=1))
    paused = await server.client.post("/api/conversations/whatsapp:+34600123456/pause", headers=admin)
    assert paused.status_code == 200 and paused.json()["paused"] is True and paused.json()["paused_by"] == "ana"
    await post_signed(server.client, keys.twilio_token, "/webhook/whatsapp", inbound_form("SMt2", "¿hay alguien?"))
    await asyncio.sleep(0.3)
    assert len(agent.calls) == 1  # staff has the conversation

    transcript = (await server.client.get("/api/conversations/34600123456", headers=admin)).json()
    assert [(m["direction"], m["text"], m["status"]) for m in transcript["messages"]] == [
        ("in", "hola", "processed"),
        ("out", "echo: hola", "sent"),
        ("in", "¿hay alguien?", "paused"),
    ]
    listing = (await server.client.get("/api/conversations", headers=admin)).json()
    assert [(c["wa_id"], c["paused"]) for c in listing["conversations"]] == [(CUSTOMER, True)]

    resumed = await server.client.post("/api/conversations/+34600123456/resume", headers=admin)
    assert resumed.json()["paused"] is False
    await post_signed(server.client, keys.twilio_token, "/webhook/whatsapp", inbound_form("SMt3", "vuelvo"))

    async def answered_again() -> bool:
        return len(twilio.messages()) == 2

    await wait_until(answered_again)
    assert [c.texts for c in agent.calls] == [["hola"], ["vuelvo"]]
    assert (await server.client.get("/api/conversations/+34111", headers=admin)).status_code == 400
    assert (await server.client.get("/api/conversations/+34611111111", headers=admin)).status_code == 404


async def test_calendly_sync_needs_a_configured_sync(
    start_app: StartApp, server: RunningApp, admin: dict[str, str]
) -> None:
    refused = await server.client.post("/api/calendly/sync", headers=admin)
    assert refused.status_code == 409 and "no Calendly sync configured" in refused.json()["error"]
    runs: list[str] = []

    async def sync() -> dict[str, object]:
        runs.append("sync")
        return {"imported": 2}

    async with start_app(calendly_sync=sync) as running:
        response = await running.client.post("/api/calendly/sync", headers=admin)
    assert response.status_code == 200 and response.json()["summary"] == {"imported": 2}
    assert runs == ["sync"]


async def test_calendly_events_lists_mirrored_appointments(
    server: RunningApp, admin: dict[str, str], db: Database, clock: FixedClock
) -> None:
    await AppointmentRepository(db).create(
        client_id=None,
        service="Mechas",
        start_at=clock.now() + timedelta(days=1),
        end_at=clock.now() + timedelta(days=1, hours=2),
        source="calendly",
        calendar="calendly",
        now=clock.now(),
        external_id="https://api.calendly.com/scheduled_events/X",
    )
    body = (await server.client.get("/api/calendly/events", headers=admin)).json()
    assert [a["external_id"] for a in body["appointments"]] == ["https://api.calendly.com/scheduled_events/X"]
    assert body["deliveries"] == []


async def test_health_reports_each_dependency_and_is_cached(server: RunningApp, probes: ProbeDouble) -> None:
    first = await server.client.get("/health")
    second = await server.client.get("/api/whatsapp/health")
    third = await server.client.get("/api/calendly/health")
    assert first.status_code == 200
    assert set(first.json()["dependencies"]) == {"database", "openai", "twilio", "calendly"}
    assert first.json()["dependencies"]["database"]["ok"] is True
    assert first.json()["dependencies"]["twilio"]["configured"] is True
    assert set(second.json()["dependencies"]) == {"database", "twilio"}
    assert set(third.json()["dependencies"]) == {"database", "calendly"}
    # One probe round for three requests: only Twilio is configured with a URL to call.
    assert probes.calls == ["https://twilio.test/2010-04-01/Accounts/AC00000000000000000000000000000042.json"]


@pytest.mark.parametrize("twilio_failure", ["http_401", "connect_error"])
async def test_public_health_never_shows_account_sid_host_or_user(
    start_app: StartApp, db: Database, make_settings: Callable[..., Settings], twilio_failure: str
) -> None:
    sid = "AC" + "7" * 32
    secret_host, secret_user = "db-primary.internal.example", "asistente_owner"

    def refuse(request: httpx.Request) -> httpx.Response:
        if twilio_failure == "connect_error":
            raise httpx.ConnectError(f"cannot reach {request.url}", request=request)
        return httpx.Response(401, json={"code": 20003, "message": f"Authenticate {sid}"})

    async def unreachable() -> None:
        # What psycopg says when the server refuses a login: the host and the user, verbatim.
        raise OSError(f'connection to server at "{secret_host}" (10.0.0.5), port 5432 failed: user "{secret_user}"')

    settings = make_settings(twilio_account_sid=sid, calendly_access_token="cal-token")
    async with start_app(settings=settings, probe_http=httpx.MockTransport(refuse)) as running:
        db.ping = unreachable  # type: ignore[method-assign]
        bodies = [(await running.client.get(path)).text for path in PUBLIC_HEALTH]
        report = await running.services.health.report()

    for body in bodies:
        assert sid not in body and secret_host not in body and secret_user not in body and "10.0.0.5" not in body
    public = {name: result.as_dict()["detail"] for name, result in report.results.items()}
    expected_http = "HTTP 401" if twilio_failure == "http_401" else "ConnectError"
    assert public == {
        "database": f"{db.dialect}: OSError",
        "openai": "not configured: replaying recorded model answers",
        "twilio": expected_http,
        "calendly": expected_http,
    }
    # `asistente check` (the console, run by the operator) still gets the whole story.
    assert secret_host in report.results["database"].detail and sid in report.results["twilio"].detail


async def test_metrics_in_prometheus_format(
    start_app: StartApp, make_settings: Callable[..., Settings], keys: Secrets
) -> None:
    token = secrets.token_urlsafe(32)
    async with start_app(settings=make_settings(metrics_token=token)) as server:
        await post_signed(server.client, keys.twilio_token, "/webhook/whatsapp", inbound_form("SMm", "hola"))
        await server.client.post("/webhook/whatsapp", data={"Body": "x"})  # refused: unsigned
        response = await server.client.get("/metrics", headers=bearer(token))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'asistente_inbound_messages_total{status="pending"} 1.0' in text
    assert 'asistente_webhook_rejections_total{reason="bad_signature",source="twilio"} 1.0' in text
    assert 'route="/webhook/whatsapp",status="200"' in text


async def test_calendar_events_held_during_a_takeover_are_delivered_after_resume(
    server: RunningApp, db: Database, admin: dict[str, str], keys: Secrets, agent: FakeAgent, clock: FixedClock
) -> None:
    agent.sender = server.services.sender
    agent.system_reply = "Tu cita del martes se ha cancelado."
    paused = await server.client.post("/api/conversations/+34600123456/pause", headers=admin)
    assert paused.status_code == 200
    # During the takeover: the customer writes (staff answers them) and Calendly reports a cancellation.
    await post_signed(server.client, keys.twilio_token, "/webhook/whatsapp", inbound_form("SMp1", "¿hola?"))
    await SystemEventRepository(db).enqueue(
        wa_id=CUSTOMER, source="calendly", description="cancelled on Calendly", dedupe_key="calendly:p", now=clock.now()
    )

    async def event_held() -> bool:
        return await db.fetch_value("SELECT status FROM system_events") == "paused"

    await wait_until(event_held)
    assert agent.calls == []

    resumed = await server.client.post("/api/conversations/+34600123456/resume", headers=admin)
    assert resumed.status_code == 200 and resumed.json()["paused"] is False

    async def event_delivered() -> bool:
        return await db.fetch_value("SELECT status FROM system_events") == "processed"

    await wait_until(event_delivered)
    await outbox_settled(db)
    await asyncio.sleep(0.2)
    assert [(c.kind, c.texts) for c in agent.calls] == [("system", ["cancelled on Calendly"])]
    assert [r["body"] for r in await db.fetch_all("SELECT body FROM outbox")] == ["Tu cita del martes se ha cancelado."]
    # The customer's message stays with staff, who handled it during the takeover.
    assert await db.fetch_value("SELECT status FROM inbound_messages") == "paused"
