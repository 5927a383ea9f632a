"""A production-like assistant on the embedded defaults: SQLite, the local calendar, an in-memory WhatsApp sender.

Only the model and the clock are chosen by the caller (replayed model and pinned clock for evals and the demo, the
configured model and the real clock for `asistente chat`); everything else is the application's own code.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from langchain_core.language_models import BaseChatModel

from agent.assistant import Assistant
from agent.checkpointer import open_checkpointer
from agent.graph import Graph, build_graph
from agent.tracing import TurnTracer
from booking.calendar import Calendar
from booking.local_calendar import LocalCalendar
from core.business import Business
from core.clock import Clock
from core.timeutil import localize
from evals.scenario import Seed, SeedClient
from store import Database, open_database
from store.appointments import AppointmentRepository, slot_starts
from store.clients import ClientRepository
from store.migrate import migrate
from store.models import Appointment
from tools.context import ToolServices
from tools.whatsapp import RecordingSender

DATABASE_FILE = "asistente.db"


@dataclass
class Wired:
    """One assistant and the services behind it, for callers that inspect what a turn did."""

    assistant: Assistant
    graph: Graph
    db: Database
    business: Business
    clock: Clock
    sender: RecordingSender
    appointments: AppointmentRepository
    clients: ClientRepository
    handoff: RecordingHandoff

    async def all_appointments(self) -> list[Appointment]:
        """Every appointment row, in start order."""
        rows = await self.db.fetch_all("SELECT id FROM appointments ORDER BY start_at, id")
        found = [await self.appointments.get(row["id"]) for row in rows]
        return [a for a in found if a is not None]


@dataclass
class RecordingHandoff:
    """The staff channel of an evaluation: remembers each hand-off (who, why) instead of alerting anyone."""

    handoffs: list[tuple[str, str]] = field(default_factory=list)

    async def hand_off(self, wa_id: str, reason: str) -> None:
        """Record the hand-off."""
        self.handoffs.append((wa_id, reason))


@asynccontextmanager
async def open_migrated_database(url: str) -> AsyncIterator[Database]:
    """Open and migrate a database (closed on exit)."""
    db = open_database(url)
    try:
        await migrate(db)
        yield db
    finally:
        await db.close()


def sqlite_url(directory: Path) -> str:
    """The URL of the embedded SQLite file inside `directory`."""
    return f"sqlite:///{directory.resolve() / DATABASE_FILE}"


@asynccontextmanager
async def wire_assistant(
    db: Database,
    business: Business,
    clock: Clock,
    model: BaseChatModel,
    sender: RecordingSender | None = None,
    calendar: Calendar | None = None,
    tracer: TurnTracer | None = None,
) -> AsyncIterator[Wired]:
    """The real graph, tools, repositories, checkpointer and calendar (local unless given) on `db`, around `model`;
    turns traced by `tracer` (none: not traced)."""
    appointments = AppointmentRepository(db)
    clients = ClientRepository(db)
    sender = sender or RecordingSender()
    calendar = calendar or LocalCalendar(business, appointments, clock)
    handoff = RecordingHandoff()
    services = ToolServices(business, clock, calendar, clients, appointments, sender, handoff=handoff)
    async with open_checkpointer(db) as saver:
        graph = build_graph(model, services, saver)
        yield Wired(
            Assistant(graph, services, tracer=tracer),
            graph,
            db,
            business,
            clock,
            sender,
            appointments,
            clients,
            handoff,
        )


async def seed_clients(wired: Wired, clients: Sequence[SeedClient]) -> None:
    """Create the clients the salon already knows, with what they told before."""
    now = wired.clock.now()
    for seed in clients:
        await wired.clients.ensure(seed.wa_id, now=now, profile_name=seed.profile_name)
        if seed.name or seed.email or seed.language:
            await wired.clients.update_profile(
                seed.wa_id, now=now, name=seed.name, email=seed.email, language=seed.language
            )


async def add_appointment(
    wired: Wired,
    *,
    appointment_id: str,
    wa_id: str,
    service_name: str,
    start_local: datetime,
    source: Literal["agent", "calendly", "staff"] = "agent",
) -> None:
    """Put a confirmed appointment with a known id on the calendar, claiming its seats as a booking would."""
    now = wired.clock.now()
    business = wired.business
    service = business.find_service(service_name)
    if service is None:
        raise ValueError(f"appointment {appointment_id}: unknown service {service_name!r}")
    client = await wired.clients.ensure(wa_id, now=now)
    start = localize(start_local, business.tz)
    end = start + timedelta(minutes=service.duration_minutes)
    created = await wired.appointments.create(
        client_id=client.id,
        service=service.name,
        start_at=start,
        end_at=end,
        source=source,
        calendar="local",
        now=now,
        price_eur=service.price_eur,
    )
    # Ids are random when booked; recorded model answers name the scenario's ids, so the row takes that id (no seat
    # claims reference it yet), then claims its seats through the repository's own atomic move.
    await wired.db.execute(
        "UPDATE appointments SET id = :id WHERE id = :old", {"id": appointment_id, "old": created.id}
    )
    await wired.appointments.move(
        appointment_id,
        start_at=start,
        end_at=end,
        now=now,
        claim_slots=slot_starts(start, end, business.slot_minutes),
        capacity=business.capacity,
    )


async def seed_store(wired: Wired, customer_wa_id: str, profile_name: str | None, seed: Seed) -> None:
    """The store before the first message: known clients, the customer, and the calendar."""
    await seed_clients(wired, seed.clients)
    await wired.clients.ensure(customer_wa_id, now=wired.clock.now(), profile_name=profile_name)
    for appointment in seed.appointments:
        await add_appointment(
            wired,
            appointment_id=appointment.id,
            wa_id=appointment.client or customer_wa_id,
            service_name=appointment.service,
            start_local=appointment.start,
            source=appointment.source,
        )
        if appointment.status == "cancelled":
            await wired.appointments.cancel(appointment.id, now=wired.clock.now(), reason=appointment.cancel_reason)
