"""POST /api/calendly/sync while Calendly rate-limits us: a long reset is a 503 with `Retry-After` at once, short
resets are waited out within one allowance for the whole sync, and nothing is written before the sync has read
everything. Calendly is the local double of tests/calendly/double.py, reached through the ASGI app."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from core.business import Business
from core.clock import FixedClock
from core.settings import Settings
from integrations.calendly.client import CalendlyClient
from server.calendar_sync.alerts import UnmatchedBookingAlert
from server.calendar_sync.sync import CalendlySyncer
from server.http.auth import mint_admin_token
from server.pipeline.outbox import Outbox
from server.pipeline.reminders import ReminderScheduler
from store import Database
from store.appointments import AppointmentRepository
from store.clients import ClientRepository
from store.outbox import OutboxRepository
from store.reminders import ReminderRepository
from tests.calendly.conftest import BASE_URL, TEST_TOKEN, USER_URI, RecordedSleep
from tests.calendly.double import CalendlyDouble, scheduled_event
from tests.server.conftest import Secrets, StartApp

EVENTS = "/scheduled_events"
FIRST = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


@pytest.fixture
def admin(keys: Secrets, clock: FixedClock) -> dict[str, str]:
    token = mint_admin_token(keys.jwt_secret, subject="ana", now=clock.now(), ttl=timedelta(hours=1))
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def calendly() -> CalendlyDouble:
    """Two bookings made on Calendly's page that the database does not know yet."""
    return CalendlyDouble(
        events=[
            scheduled_event("RATE000000000001", FIRST),
            scheduled_event("RATE000000000002", FIRST + timedelta(hours=2)),
        ]
    )


@pytest.fixture
def calendly_settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(calendly_access_token=TEST_TOKEN, calendly_user_uri=USER_URI)


@pytest.fixture
def sleep() -> RecordedSleep:
    return RecordedSleep()


def recorded_syncer(
    db: Database, business: Business, clock: FixedClock, http: httpx.AsyncClient, sleep: RecordedSleep
) -> CalendlySyncer:
    """The syncer as wiring builds it, but on a client whose waits are recorded instead of slept."""
    return CalendlySyncer(
        client=CalendlyClient(BASE_URL, TEST_TOKEN, http=http, sleep=sleep, clock=clock),
        appointments=AppointmentRepository(db),
        clients=ClientRepository(db),
        reminders=ReminderScheduler(ReminderRepository(db), clock, [24.0, 2.0]),
        business=business,
        clock=clock,
        user_uri=USER_URI,
        alert=UnmatchedBookingAlert(outbox=Outbox(OutboxRepository(db), clock), business=business, staff_number=None),
    )


async def rows(db: Database, table: str) -> list[dict[str, Any]]:
    return await db.fetch_all(f"SELECT * FROM {table}")


async def test_a_long_reset_answers_503_with_retry_after_at_once(
    start_app: StartApp, calendly_settings: Settings, calendly: CalendlyDouble, db: Database, admin: dict[str, str]
) -> None:
    # The sync wired from the settings, as production runs it: its client sleeps for real, so a wait would show.
    calendly.rate_limit("GET", EVENTS, 60)
    async with start_app(settings=calendly_settings, run_worker=False, calendly_http=calendly.transport()) as app:
        started = time.monotonic()
        response = await app.client.post("/api/calendly/sync", headers=admin)
        elapsed = time.monotonic() - started

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "60"
    body = response.json()
    assert body == {"error": "Calendly rate limit reached; nothing was synced, retry in 60 s", "retry_after": 60}
    assert elapsed < 5.0, f"the request took {elapsed:.1f} s"
    assert len(calendly.sent("GET", EVENTS)) == 1  # given up on the first 429, not retried
    assert await rows(db, "appointments") == []


async def test_short_resets_are_waited_out_and_the_sync_completes(
    start_app: StartApp,
    calendly_settings: Settings,
    calendly: CalendlyDouble,
    db: Database,
    business: Business,
    clock: FixedClock,
    sleep: RecordedSleep,
    admin: dict[str, str],
) -> None:
    calendly.rate_limit("GET", EVENTS, 1)
    calendly.rate_limit("GET", f"{EVENTS}/RATE000000000002/invitees", 2)
    async with calendly.http() as http:
        syncer = recorded_syncer(db, business, clock, http, sleep)
        async with start_app(settings=calendly_settings, run_worker=False, calendly_sync=syncer) as app:
            response = await app.client.post("/api/calendly/sync", headers=admin)

    assert response.status_code == 200, response.text
    assert response.json()["summary"]["fetched"] == 2
    assert sleep.waits == [1.0, 2.0]
    assert len(await rows(db, "appointments")) == 2


async def test_short_resets_adding_up_past_the_allowance_stop_the_sync_at_once(
    start_app: StartApp,
    calendly_settings: Settings,
    calendly: CalendlyDouble,
    db: Database,
    business: Business,
    clock: FixedClock,
    sleep: RecordedSleep,
    admin: dict[str, str],
) -> None:
    # Each request's 5 s wait is allowed on its own; the sync's 8 s in all are not enough for the second.
    calendly.rate_limit("GET", f"{EVENTS}/RATE000000000001/invitees", 5)
    calendly.rate_limit("GET", f"{EVENTS}/RATE000000000002/invitees", 5)
    async with calendly.http() as http:
        syncer = recorded_syncer(db, business, clock, http, sleep)
        async with start_app(settings=calendly_settings, run_worker=False, calendly_sync=syncer) as app:
            response = await app.client.post("/api/calendly/sync", headers=admin)

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert sleep.waits == [5.0]
    assert len(calendly.sent("GET", f"{EVENTS}/RATE000000000002/invitees")) == 1
    assert await rows(db, "appointments") == []  # read everything first: nothing half-synced
