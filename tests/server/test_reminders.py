"""Reminders: scheduled with the appointment, moved and cancelled with it, sent once across workers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from core.business import Business
from core.clock import FixedClock
from core.settings import Settings
from server.ops.metrics import ServerMetrics
from server.pipeline.reminders import ReminderDispatcher, ReminderScheduler
from store import Database, open_database
from store.appointments import AppointmentRepository
from store.clients import ClientRepository
from store.database import parse_datetime, parse_json
from store.models import Appointment
from store.reminders import ReminderRepository
from tests.server.conftest import StartApp
from tests.server.helpers import CUSTOMER, TwilioDouble, wait_until
from tools.context import AppointmentObserver


async def book(db: Database, clock: FixedClock, *, starts_in: timedelta, wa_id: str = CUSTOMER) -> Appointment:
    client = await ClientRepository(db).ensure(wa_id, now=clock.now(), profile_name="Ana")
    start = clock.now() + starts_in
    return await AppointmentRepository(db).create(
        client_id=client.id,
        service="Tinte",
        start_at=start,
        end_at=start + timedelta(hours=1),
        source="agent",
        calendar="local",
        now=clock.now(),
    )


def scheduler(db: Database, clock: FixedClock) -> ReminderScheduler:
    return ReminderScheduler(ReminderRepository(db), clock, [24, 2])


async def reminders(db: Database) -> list[dict[str, Any]]:
    return await db.fetch_all("SELECT * FROM reminders ORDER BY offset_minutes DESC")


async def test_booking_schedules_reminders_and_skips_those_already_past(db: Database, clock: FixedClock) -> None:
    observer: AppointmentObserver = scheduler(db, clock)  # what the agent side is given
    soon = await book(db, clock, starts_in=timedelta(hours=5))
    later = await book(db, clock, starts_in=timedelta(days=3), wa_id="whatsapp:+34611111111")
    await observer.appointment_changed(soon)
    await observer.appointment_changed(later)

    rows = await reminders(db)
    by_appointment = {(r["appointment_id"], r["offset_minutes"]): parse_datetime(r["due_at"]) for r in rows}
    assert by_appointment == {
        (soon.id, 120): soon.start_at - timedelta(hours=2),
        (later.id, 1440): later.start_at - timedelta(hours=24),
        (later.id, 120): later.start_at - timedelta(hours=2),
    }
    assert {r["status"] for r in rows} == {"scheduled"}


async def test_moving_and_cancelling_follow_the_appointment(db: Database, clock: FixedClock) -> None:
    reminder_scheduler = scheduler(db, clock)
    appointment = await book(db, clock, starts_in=timedelta(days=3))
    await reminder_scheduler.appointment_changed(appointment)
    await db.execute("UPDATE reminders SET status = 'sent' WHERE offset_minutes = 1440")  # went out already

    new_start = appointment.start_at + timedelta(days=2)
    moved = await AppointmentRepository(db).move(
        appointment.id, start_at=new_start, end_at=new_start + timedelta(hours=1), now=clock.now()
    )
    await reminder_scheduler.appointment_changed(moved)
    rows = await reminders(db)
    assert [(r["offset_minutes"], r["status"], parse_datetime(r["due_at"])) for r in rows] == [
        (1440, "scheduled", new_start - timedelta(hours=24)),  # re-armed for the new time
        (120, "scheduled", new_start - timedelta(hours=2)),
    ]

    await reminder_scheduler.appointment_changed(moved)  # told twice: nothing changes, nothing re-sent
    assert await reminders(db) == rows
    cancelled = await AppointmentRepository(db).cancel(appointment.id, now=clock.now())
    assert cancelled is not None
    await reminder_scheduler.appointment_changed(cancelled)
    assert {r["status"] for r in await reminders(db)} == {"cancelled"}


async def test_due_reminder_is_sent_once_by_concurrent_workers(
    db: Database, database_url: str, clock: FixedClock, business: Business
) -> None:
    appointment = await book(db, clock, starts_in=timedelta(hours=3))
    await scheduler(db, clock).schedule(appointment)
    clock.advance(timedelta(hours=1, minutes=1))  # the 2-hour reminder is due
    other_db = open_database(database_url)
    try:
        dispatchers = [
            ReminderDispatcher(
                repository=ReminderRepository(database),
                business=business,
                clock=clock,
                metrics=ServerMetrics(),
                owner=f"worker-{n}",
            )
            for n, database in enumerate([db, other_db, db, other_db])
        ]
        queued = await asyncio.gather(*(d.dispatch_due() for d in dispatchers))
    finally:
        await other_db.close()
    assert sum(queued) == 1
    outbox = await db.fetch_all("SELECT wa_id, kind, body, template_variables FROM outbox")
    assert len(outbox) == 1
    assert (outbox[0]["wa_id"], outbox[0]["kind"]) == (CUSTOMER, "reminder")
    assert "Hola Ana, te recordamos tu cita de Tinte" in outbox[0]["body"]
    assert parse_json(outbox[0]["template_variables"]) == {"1": "Ana", "2": "Tinte", "3": "25/11/2026", "4": "01:00"}
    [sent] = [r for r in await reminders(db) if r["offset_minutes"] == 120]
    assert sent["status"] == "sent" and sent["claimed_by"].startswith("worker-")


async def test_worker_reconciles_and_sends_due_reminders_with_the_template_outside_the_window(
    start_app: StartApp,
    make_settings: Callable[..., Settings],
    db: Database,
    clock: FixedClock,
    twilio: TwilioDouble,
) -> None:
    appointment = await book(db, clock, starts_in=timedelta(days=2))  # booked while no scheduler was told
    settings = make_settings(twilio_template_reminder_sid="HX11111111111111111111111111111111")
    async with start_app(settings=settings):

        async def reconciled() -> bool:
            return len(await reminders(db)) == 2

        await wait_until(reconciled)
        clock.advance(timedelta(days=1, minutes=1))  # the 24-hour reminder is due; the customer never wrote

        async def delivered() -> bool:
            return len(twilio.messages()) == 1

        await wait_until(delivered)
        await asyncio.sleep(0.2)
    [message] = twilio.messages()
    assert message["ContentSid"] == "HX11111111111111111111111111111111"
    assert json.loads(message["ContentVariables"])["2"] == "Tinte"
    statuses = {r["offset_minutes"]: r["status"] for r in await reminders(db)}
    assert statuses == {1440: "sent", 120: "scheduled"}
    assert appointment.id in {r["appointment_id"] for r in await reminders(db)}


async def test_reminder_of_a_cancelled_appointment_is_dropped(
    db: Database, clock: FixedClock, business: Business
) -> None:
    appointment = await book(db, clock, starts_in=timedelta(hours=3))
    await scheduler(db, clock).schedule(appointment)
    # Cancelled behind the scheduler's back (e.g. straight in the database by staff).
    await db.execute("UPDATE appointments SET status = 'cancelled' WHERE id = :id", {"id": appointment.id})
    clock.advance(timedelta(hours=2))
    dispatcher = ReminderDispatcher(
        repository=ReminderRepository(db), business=business, clock=clock, metrics=ServerMetrics(), owner="w"
    )
    assert await dispatcher.dispatch_due() == 0
    assert [r["status"] for r in await reminders(db)] == ["cancelled"]
    assert await db.fetch_all("SELECT id FROM outbox") == []
