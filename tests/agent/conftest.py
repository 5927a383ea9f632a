"""An assistant wired like production (real graph, tools, store, checkpointer) around a scripted model."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from langchain_core.messages import ToolMessage

from agent.api import IncomingText, TurnResult
from agent.assistant import Assistant, thread_config
from agent.checkpointer import open_checkpointer
from agent.graph import Graph, build_graph
from core.business import Business
from core.clock import FixedClock
from store import Database
from store.appointments import AppointmentRepository
from store.clients import ClientRepository
from store.models import Appointment
from tests.scripted_model import ScriptedChatModel
from tools.calendar import Calendar
from tools.context import Context
from tools.local_calendar import LocalCalendar
from tools.whatsapp import RecordingSender

MADRID = ZoneInfo("Europe/Madrid")
CUSTOMER = "whatsapp:+34600123456"
OTHER = "whatsapp:+34600999888"


def madrid(*args: int) -> datetime:
    """A wall-clock time in Madrid."""
    return datetime(*args, tzinfo=MADRID)  # type: ignore[misc]


@dataclass
class Harness:
    """One assistant and everything a test wants to look at afterwards."""

    assistant: Assistant
    model: ScriptedChatModel
    graph: Graph
    db: Database
    clock: FixedClock
    sender: RecordingSender
    calendar: Calendar
    business: Business
    appointments: AppointmentRepository
    clients: ClientRepository
    changed: list[Appointment]

    async def say(self, *texts: str, wa_id: str = CUSTOMER, button: str | None = None) -> TurnResult:
        """The customer sends messages (folded into one turn)."""
        messages = [IncomingText(body=t) for t in texts]
        if button:
            messages.append(IncomingText(body="", button_payload=button))
        return await self.assistant.customer_turn(wa_id, messages, profile_name="María")

    async def state(self, wa_id: str = CUSTOMER) -> dict[str, Any]:
        """The checkpointed state of a thread."""
        snapshot = await self.graph.aget_state(thread_config(wa_id))
        return dict(snapshot.values)

    async def tool_results(self, wa_id: str = CUSTOMER) -> list[ToolMessage]:
        """Every tool result in the thread's checkpoint."""
        return [m for m in (await self.state(wa_id)).get("messages", []) if isinstance(m, ToolMessage)]

    async def confirmed(self) -> list[Appointment]:
        """Confirmed appointments in the database."""
        rows = await self.db.fetch_all("SELECT id FROM appointments WHERE status = 'confirmed' ORDER BY start_at")
        found = [await self.appointments.get(r["id"]) for r in rows]
        return [a for a in found if a is not None]


class RecordingObserver:
    """Remembers every appointment change the tools report."""

    def __init__(self) -> None:
        self.changed: list[Appointment] = []

    async def appointment_changed(self, appointment: Appointment) -> None:
        self.changed.append(appointment)


@pytest.fixture
def clock() -> FixedClock:
    """Tuesday 24 November 2026, 22:00 in Madrid."""
    return FixedClock(madrid(2026, 11, 24, 22, 0))


@pytest.fixture
def model() -> ScriptedChatModel:
    """An empty script; tests add steps."""
    return ScriptedChatModel(script=[])


async def make_harness(
    db: Database, business: Business, clock: FixedClock, model: ScriptedChatModel, calendar: Calendar | None = None
) -> AsyncIterator[Harness]:
    """Build the production wiring on `db`."""
    appointments = AppointmentRepository(db)
    clients = ClientRepository(db)
    calendar = calendar or LocalCalendar(business, appointments, clock)
    sender = RecordingSender()
    observer = RecordingObserver()
    async with open_checkpointer(db) as saver:
        graph = build_graph(model, saver)
        base = Context(
            wa_id="",
            business=business,
            clock=clock,
            calendar=calendar,
            clients=clients,
            appointments=appointments,
            sender=sender,
            observer=observer,
        )
        yield Harness(
            Assistant(graph, base),
            model,
            graph,
            db,
            clock,
            sender,
            calendar,
            business,
            appointments,
            clients,
            observer.changed,
        )


@pytest.fixture
async def harness(
    db: Database, business: Business, clock: FixedClock, model: ScriptedChatModel
) -> AsyncIterator[Harness]:
    """The assistant on the local calendar, on each database engine."""
    async for h in make_harness(db, business, clock, model):
        yield h
