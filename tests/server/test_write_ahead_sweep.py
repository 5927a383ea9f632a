"""The worker's maintenance pass settles Calendly writes a dead process left unfinished (issue 10, item 1).

A process books on Calendly and dies before reading the answer; Calendly's invitee.created webhook for that booking
arrives meanwhile and is deferred as possibly the agent's own. The customer never writes again. The next worker's
maintenance pass must store the booking as the agent's, with its reminders, before the deferred webhook is applied
(which then recognises it instead of announcing a Calendly booking to the customer). On SQLite and PostgreSQL.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest

from booking.calendar import BookingRequest, Customer
from core.business import Business
from core.clock import FixedClock
from core.settings import Settings
from integrations.calendly.calendar import CalendlyCalendar
from integrations.calendly.client import CalendlyClient
from integrations.calendly.webhook_models import CalendlyWebhook
from server.options import ServerOptions
from server.wiring import Overrides, open_services
from store import Database
from store.appointments import AppointmentRepository
from store.clients import ClientRepository
from tests.calendly.booking_double import BookingCalendly, ProcessKilled, calendly_time
from tests.calendly.conftest import BASE_URL, TEST_TOKEN, USER_URI, RecordedSleep, fixture_json
from tests.scripted_model import ScriptedChatModel

WA_ID = "whatsapp:+34600123456"
EMAIL = "maria@example.com"
START = datetime(2026, 11, 26, 10, 0, tzinfo=ZoneInfo("Europe/Madrid"))
OPTIONS = ServerOptions(calendar_write_settle_seconds=60.0, calendar_retry_after_seconds=60.0)


async def book_and_die(db: Database, business: Business, clock: FixedClock, calendly: BookingCalendly) -> None:
    """A worker's booking of María's Thursday 10:00, killed once Calendly has made it."""
    client = await ClientRepository(db).update_profile(WA_ID, now=clock.now(), name="María López", email=EMAIL)
    service = business.find_service("Corte y Peinado")
    assert service is not None
    request = BookingRequest(service, START, Customer(WA_ID, client.id, "María López", EMAIL), idempotency_key="k1")
    calendly.die_after("POST", "/invitees")
    async with httpx.AsyncClient(transport=calendly.transport()) as http:
        api = CalendlyClient(BASE_URL, TEST_TOKEN, http=http, sleep=RecordedSleep(), clock=clock)
        calendar = CalendlyCalendar(api, AppointmentRepository(db), business, clock, USER_URI)
        with pytest.raises(ProcessKilled):
            await calendar.book(request)


def invitee_created(calendly: BookingCalendly, now: datetime) -> CalendlyWebhook:
    """Calendly's invitee.created delivery for the double's one booking (shape: calendly-invitee-created.json)."""
    [event] = calendly.active()
    [invitee] = calendly.invitees[event["uri"]]
    body = copy.deepcopy(fixture_json("calendly-invitee-created.json"))
    body["created_at"] = calendly_time(now)
    body["payload"].update(
        uri=invitee["uri"],
        event=event["uri"],
        email=EMAIL,
        name="María López",
        text_reminder_number="+34600123456",
        scheduled_event=event,
    )
    return CalendlyWebhook.model_validate(body)


async def test_the_maintenance_pass_adopts_an_orphan_booking_before_its_webhook_is_applied(
    db: Database, business: Business, clock: FixedClock, make_settings: Callable[..., Settings]
) -> None:
    calendly = BookingCalendly(now=clock.now())
    await book_and_die(db, business, clock, calendly)
    settings = make_settings(calendly_access_token="test-calendly-token", calendly_user_uri=USER_URI)
    overrides = Overrides(
        business=business,
        db=db,
        clock=clock,
        options=OPTIONS,
        model=ScriptedChatModel(script=[]),
        calendly_http=calendly.transport(),
    )
    async with open_services(settings, overrides) as services:
        deferred = await services.calendly.receive(invitee_created(calendly, clock.now()))
        assert deferred.status == "received"  # fresh and not stored: maybe the agent's own, applied later

        clock.advance(timedelta(seconds=30))
        await services.worker.maintenance()
        assert await services.appointments.confirmed_between(START, START + timedelta(hours=1)) == []

        clock.advance(timedelta(seconds=61))
        await services.worker.maintenance()

    [appointment] = await AppointmentRepository(db).confirmed_between(START, START + timedelta(hours=1))
    assert (appointment.source, appointment.idempotency_key) == ("agent", "k1")
    assert appointment.external_id == calendly.active()[0]["uri"]
    assert len(calendly.sent("POST", "/invitees")) == 1
    reminders = await db.fetch_all(
        "SELECT offset_minutes FROM reminders WHERE appointment_id = :id AND status = 'scheduled' "
        "ORDER BY offset_minutes",
        {"id": appointment.id},
    )
    assert [r["offset_minutes"] for r in reminders] == [120, 1440]
    # The webhook, applied after, recognised the agent's booking: recorded, not announced to the customer.
    [delivery] = await db.fetch_all("SELECT status, appointment_id FROM calendar_events")
    assert (delivery["status"], delivery["appointment_id"]) == ("ignored", appointment.id)
    assert await db.fetch_all("SELECT id FROM system_events") == []
    [intent] = await db.fetch_all("SELECT status FROM write_intents")
    assert intent["status"] == "done"
