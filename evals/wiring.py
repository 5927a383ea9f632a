"""A production-like assistant on the embedded defaults: SQLite, the local calendar, an in-memory WhatsApp sender.

Only the model and the clock are chosen by the caller (replayed model and pinned clock for evals and the demo, the
configured model and the real clock for `asistente chat`); everything else is the application's own code.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

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
from evals.dataset import Customer, SeedAppointment
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

    async def all_appointments(self) -> list[Appointment]:
        """Every appointment row, in start order."""
        rows = await self.db.fetch_all("SELECT id FROM appointments ORDER BY start_at, id")
        found = [await self.appointments.get(row["id"]) for row in rows]
        return [a for a in found if a is not None]


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
    services = ToolServices(business, clock, calendar, clients, appointments, sender)
    async with open_checkpointer(db) as saver:
        graph = build_graph(model, services, saver)
        yield Wired(
            Assistant(graph, services, tracer=tracer), graph, db, business, clock, sender, appointments, clients
        )


async def seed_appointments(wired: Wired, customer: Customer, seeds: Sequence[SeedAppointment]) -> None:
    """Create the customer and their appointments as they were before the conversation, with the recorded ids."""
    now = wired.clock.now()
    client = await wired.clients.ensure(customer.wa_id, now=now, profile_name=customer.profile_name)
    business = wired.business
    for seed in seeds:
        service = business.find_service(seed.service)
        if service is None:
            raise ValueError(f"seed {seed.id}: unknown service {seed.service!r}")
        start = localize(seed.start, business.tz)
        end = start + timedelta(minutes=service.duration_minutes)
        created = await wired.appointments.create(
            client_id=client.id,
            service=service.name,
            start_at=start,
            end_at=end,
            source=seed.source,
            calendar="local",
            now=now,
            price_eur=service.price_eur,
        )
        # Ids are random when booked; the recorded model answers name the seeded ones, so the row takes that id
        # (no seat claims reference it yet), then claims its seats through the repository's own atomic move.
        await wired.db.execute("UPDATE appointments SET id = :id WHERE id = :old", {"id": seed.id, "old": created.id})
        await wired.appointments.move(
            seed.id,
            start_at=start,
            end_at=end,
            now=now,
            claim_slots=slot_starts(start, end, business.slot_minutes),
            capacity=business.capacity,
        )
        if seed.status == "cancelled":
            await wired.appointments.cancel(seed.id, now=now, reason=seed.cancel_reason)
