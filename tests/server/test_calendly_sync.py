"""POST /api/calendly/sync with the real syncer, wired from the settings, on hand-authored Calendly cassettes
(tests/cassettes/calendly/sync_*.yaml) through the ASGI app."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from core.clock import FixedClock
from core.settings import Settings
from server.calendar_sync.sync import CalendlySyncer
from server.http.auth import mint_admin_token
from store import Database
from store.appointments import AppointmentRepository
from store.clients import ClientRepository
from store.database import parse_datetime
from store.models import Appointment, Client
from tests.calendly.conftest import (  # the autouse fixture lets a re-recording reach Calendly
    RECORDING,
    TEST_TOKEN,
    USER_URI,
    _calendly_reachable_when_recording,  # noqa: F401
    play,
)
from tests.server.conftest import RunningApp, Secrets, StartApp
from tests.server.helpers import CUSTOMER, PUBLIC_BASE

# vcrpy intercepts httpx's ASGI transport too: requests to the app itself must pass through to it.
APP_HOSTS = (urlsplit(PUBLIC_BASE).hostname or "",)
API = "https://api.calendly.com/scheduled_events"
EVENT_1 = f"{API}/SYNC000000000001"
INVITEE_1 = f"{EVENT_1}/invitees/SYNCINV000000001"
START_1 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
CALM = {"created": 0, "moved": 0, "cancelled": 0}


@pytest.fixture
def admin(keys: Secrets, clock: FixedClock) -> dict[str, str]:
    token = mint_admin_token(keys.jwt_secret, subject="ana", now=clock.now(), ttl=timedelta(hours=1))
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def calendly_settings(make_settings: Callable[..., Settings]) -> Callable[..., Settings]:
    """Settings with Calendly configured (the token is a placeholder unless re-recording)."""

    def make(**overrides: Any) -> Settings:
        token = os.environ.get("CALENDLY_ACCESS_TOKEN", TEST_TOKEN) if RECORDING else TEST_TOKEN
        return make_settings(**{"calendly_access_token": token, "calendly_user_uri": USER_URI, **overrides})

    return make


@pytest.fixture
async def app(start_app: StartApp, calendly_settings: Callable[..., Settings]) -> AsyncIterator[RunningApp]:
    """The app as `serve` runs it with Calendly configured (no worker: the sync is all that runs)."""
    async with start_app(settings=calendly_settings(), run_worker=False) as running:
        yield running


@pytest.fixture
async def ana(db: Database, now: datetime) -> Client:
    return await ClientRepository(db).ensure(CUSTOMER, now=now, profile_name="Ana")


async def sync(running: RunningApp, headers: dict[str, str]) -> httpx.Response:
    return await running.client.post("/api/calendly/sync", headers=headers)


async def rows(db: Database, table: str, order: str = "id") -> list[dict[str, Any]]:
    return await db.fetch_all(f"SELECT * FROM {table} ORDER BY {order}")


async def reminder_times(db: Database, appointment_id: str) -> list[tuple[datetime | None, str]]:
    found = await db.fetch_all(
        "SELECT due_at, status FROM reminders WHERE appointment_id = :id ORDER BY due_at", {"id": appointment_id}
    )
    return [(parse_datetime(r["due_at"]), r["status"]) for r in found]


async def mirrored_with_reminders(running: RunningApp, db: Database, now: datetime, client: Client) -> Appointment:
    """Ana's appointment on EVENT_1, mirrored earlier by a webhook, with its reminders scheduled."""
    appointment = await AppointmentRepository(db).create(
        client_id=client.id,
        service="Corte y Peinado",
        start_at=START_1,
        end_at=START_1 + timedelta(minutes=45),
        source="calendly",
        calendar="calendly",
        now=now,
        external_id=EVENT_1,
        external_invitee=INVITEE_1,
    )
    await running.services.reminders.schedule(appointment)
    return appointment


async def test_sync_mirrors_new_bookings_with_their_customers_and_a_second_sync_changes_nothing(
    app: RunningApp, db: Database, admin: dict[str, str], now: datetime, ana: Client
) -> None:
    clients = ClientRepository(db)
    luis = await clients.ensure("whatsapp:+34611222333", now=now)
    eva = await clients.update_profile("whatsapp:+34622333444", now=now, email="eva.martin@example.com")
    await clients.prove_email(eva.id, "eva.martin@example.com", source="agent_booking", now=now)  # typed: not enough
    assert isinstance(app.services.calendly_sync, CalendlySyncer)

    with play("sync_mirrors_new_bookings", ignore_hosts=APP_HOSTS):
        first = await sync(app, admin)
        after_first = await rows(db, "appointments", "start_at")
        reminders_first = await rows(db, "reminders")
        second = await sync(app, admin)

    assert first.status_code == 200, first.text
    assert first.json()["summary"] == {"fetched": 5, **CALM, "created": 4, "unchanged": 1}
    assert first.json()["by"] == "ana"
    assert [
        (a["external_id"].rsplit("/", 1)[-1], a["client_id"], a["service"], a["source"], a["calendar"], a["status"])
        for a in after_first
    ] == [
        ("SYNC000000000001", ana.id, "Corte y Peinado", "calendly", "calendly", "confirmed"),  # SMS reminder number
        ("SYNC000000000002", luis.id, "Tinte", "calendly", "calendly", "confirmed"),  # phone answer, 0034 prefix
        ("SYNC000000000003", eva.id, "Corte y Peinado", "calendly", "calendly", "confirmed"),  # proven e-mail
        ("SYNC000000000004", None, "Corte y Peinado", "calendly", "calendly", "confirmed"),  # nobody we know
    ]
    first_row = after_first[0]
    assert first_row["external_invitee"] == INVITEE_1
    assert (parse_datetime(first_row["start_at"]), parse_datetime(first_row["end_at"])) == (
        START_1,
        START_1 + timedelta(minutes=45),
    )
    # Reminders for the three known customers (24 h and 2 h before); nobody to remind for the fourth.
    by_appointment = {a["id"]: a["client_id"] for a in after_first}
    assert sorted(by_appointment[r["appointment_id"]] or 0 for r in reminders_first) == sorted(
        [ana.id, ana.id, luis.id, luis.id, eva.id, eva.id]
    )
    assert await reminder_times(db, first_row["id"]) == [
        (START_1 - timedelta(hours=24), "scheduled"),
        (START_1 - timedelta(hours=2), "scheduled"),
    ]
    # A silent catch-up: nothing reaches the customers' conversations or the outbox.
    assert await rows(db, "system_events") == []
    assert await rows(db, "outbox") == []

    assert second.status_code == 200, second.text
    assert second.json()["summary"] == {"fetched": 5, **CALM, "unchanged": 5}
    assert await rows(db, "appointments", "start_at") == after_first
    assert await rows(db, "reminders") == reminders_first


async def test_an_event_moved_on_calendly_moves_the_same_row_and_its_reminders(
    start_app: StartApp,
    calendly_settings: Callable[..., Settings],
    db: Database,
    admin: dict[str, str],
    now: datetime,
    ana: Client,
) -> None:
    # Without CALENDLY_USER_URI the syncer asks Calendly whose token it is (GET /users/me), once.
    async with start_app(settings=calendly_settings(calendly_user_uri=None), run_worker=False) as running:
        appointment = await mirrored_with_reminders(running, db, now, ana)
        with play("sync_moved_event", ignore_hosts=APP_HOSTS):
            response = await sync(running, admin)

    assert response.status_code == 200, response.text
    assert response.json()["summary"] == {"fetched": 1, **CALM, "moved": 1, "unchanged": 0}
    moved = await AppointmentRepository(db).get(appointment.id)
    new_start = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    assert moved is not None and len(await rows(db, "appointments")) == 1
    assert (moved.status, moved.start_at, moved.end_at) == ("confirmed", new_start, new_start + timedelta(minutes=45))
    assert (moved.external_id, moved.external_invitee) == (EVENT_1, INVITEE_1)
    assert await reminder_times(db, appointment.id) == [
        (new_start - timedelta(hours=24), "scheduled"),
        (new_start - timedelta(hours=2), "scheduled"),
    ]
    assert await rows(db, "system_events") == []


async def test_an_event_canceled_on_calendly_cancels_the_appointment_and_its_reminders(
    app: RunningApp, db: Database, admin: dict[str, str], now: datetime, ana: Client
) -> None:
    appointment = await mirrored_with_reminders(app, db, now, ana)
    with play("sync_canceled_event", ignore_hosts=APP_HOSTS):
        response = await sync(app, admin)

    assert response.status_code == 200, response.text
    assert response.json()["summary"] == {"fetched": 1, **CALM, "cancelled": 1, "unchanged": 0}
    cancelled = await AppointmentRepository(db).get(appointment.id)
    assert cancelled is not None
    assert (cancelled.status, cancelled.cancel_reason) == ("cancelled", "Cerrado por inventario")
    assert [status for _, status in await reminder_times(db, appointment.id)] == ["cancelled", "cancelled"]
    assert await rows(db, "system_events") == []


async def test_a_reschedule_on_calendly_moves_the_row_to_the_new_event_instead_of_cancelling_it(
    app: RunningApp, db: Database, admin: dict[str, str], now: datetime, ana: Client
) -> None:
    appointment = await mirrored_with_reminders(app, db, now, ana)
    with play("sync_rescheduled_on_calendly", ignore_hosts=APP_HOSTS):
        response = await sync(app, admin)

    assert response.status_code == 200, response.text
    # The new event moves the row; the old, canceled event then has nothing left to cancel.
    assert response.json()["summary"] == {"fetched": 2, **CALM, "moved": 1, "unchanged": 1}
    moved = await AppointmentRepository(db).get(appointment.id)
    new_start = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
    assert moved is not None and len(await rows(db, "appointments")) == 1
    assert (moved.status, moved.start_at) == ("confirmed", new_start)
    assert (moved.external_id, moved.external_invitee) == (
        f"{API}/SYNC000000000006",
        f"{API}/SYNC000000000006/invitees/SYNCINV000000006",
    )
    assert [due for due, _ in await reminder_times(db, appointment.id)] == [
        new_start - timedelta(hours=24),
        new_start - timedelta(hours=2),
    ]


@pytest.mark.parametrize("token", ["missing", "invalid"])
async def test_sync_needs_an_admin_token(app: RunningApp, db: Database, keys: Secrets, token: str) -> None:
    headers = {} if token == "missing" else {"Authorization": "Bearer not-a-jwt"}
    # Refused before the syncer runs: a request to Calendly would fail the test (no cassette holds one).
    with play("client_no_requests", ignore_hosts=APP_HOSTS):
        response = await sync(app, headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert "error" in response.json()
    assert await rows(db, "appointments") == []


async def test_a_rate_limit_half_way_through_is_a_503_and_writes_nothing(
    app: RunningApp, db: Database, admin: dict[str, str], ana: Client
) -> None:
    with play("sync_rate_limited", ignore_hosts=APP_HOSTS):
        response = await sync(app, admin)

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "3600"
    body = response.json()
    assert "rate limit" in body["error"] and "nothing was synced" in body["error"]
    assert body["retry_after"] == 3600
    assert await rows(db, "appointments") == []
    assert await rows(db, "reminders") == []


async def test_calendly_unavailable_is_a_502_and_writes_nothing(
    app: RunningApp, db: Database, admin: dict[str, str]
) -> None:
    with play("sync_unavailable", ignore_hosts=APP_HOSTS):
        response = await sync(app, admin)  # retried twice (0.5 s and 1 s backoff) before giving up

    assert response.status_code == 502
    error = response.json()["error"]
    assert "nothing was synced" in error and "503" in error
    assert TEST_TOKEN not in response.text
    assert await rows(db, "appointments") == []
