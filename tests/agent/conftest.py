"""An assistant wired like production (real graph, tools, store, checkpointer) around a scripted model.

`scenario` runs a test on each calendar (and, through `db`, on each database engine): the local calendar, and
Calendly replayed from tests/cassettes/calendly/agent_<test name without "test_">.yaml, which must be played to the
end. On Calendly, María's profile already holds the name and e-mail Calendly needs to book.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Generator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import pytest
from langchain_core.messages import ToolMessage

from agent.api import IncomingText, TurnResult
from agent.assistant import Assistant, thread_config
from agent.checkpointer import open_checkpointer
from agent.graph import Graph, build_graph
from booking.calendar import Calendar
from booking.local_calendar import LocalCalendar
from core.business import Business
from core.clock import FixedClock
from integrations.calendly.calendar import CalendlyCalendar
from integrations.calendly.client import CalendlyClient
from store import Database
from store.appointments import AppointmentRepository, slot_starts
from store.clients import ClientRepository
from store.models import Appointment
from tests.calendly.conftest import (
    BASE_URL,
    EVENT_URI,
    INVITEE_URI,
    RECORDING,
    TEST_TOKEN,
    USER_URI,
    RecordedSleep,
    _calendly_reachable_when_recording,  # noqa: F401  (autouse: lets CALENDLY_RECORD=1 reach Calendly)
    play,
)
from tests.scripted_model import ScriptedChatModel
from tools.context import ToolServices
from tools.whatsapp import RecordingSender

MADRID = ZoneInfo("Europe/Madrid")
CUSTOMER = "whatsapp:+34600123456"
OTHER = "whatsapp:+34600999888"
# What María told us in an earlier conversation; Calendly books only with an e-mail (the POST /invitees bodies in
# the agent_*.yaml cassettes carry these).
CUSTOMER_NAME = "María López"
CUSTOMER_EMAIL = "maria@example.com"

CalendarKind = Literal["local", "calendly"]
CALENDAR_KINDS: tuple[CalendarKind, ...] = ("local", "calendly")
_CASSETTE = pytest.StashKey[str]()


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
        services = ToolServices(business, clock, calendar, clients, appointments, sender, observer=observer)
        graph = build_graph(model, services, saver)
        yield Harness(
            Assistant(graph, services),
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


async def make_harness_on(
    kind: CalendarKind, db: Database, business: Business, clock: FixedClock, model: ScriptedChatModel
) -> AsyncIterator[Harness]:
    """`make_harness` on the local calendar or on Calendly (https://api.calendly.com, answered by cassettes)."""
    if kind == "local":
        async for h in make_harness(db, business, clock, model):
            yield h
        return
    token = os.environ.get("CALENDLY_ACCESS_TOKEN", TEST_TOKEN) if RECORDING else TEST_TOKEN
    async with CalendlyClient(base_url=BASE_URL, token=token, sleep=RecordedSleep(), clock=clock) as client:
        calendly = CalendlyCalendar(
            client=client, appointments=AppointmentRepository(db), business=business, clock=clock, user_uri=USER_URI
        )
        calendar = calendly
        await ClientRepository(db).update_profile(CUSTOMER, now=clock.now(), name=CUSTOMER_NAME, email=CUSTOMER_EMAIL)
        async for h in make_harness(db, business, clock, model, calendar):
            yield h


def replaying(kind: CalendarKind, cassette: str) -> AbstractContextManager[object]:
    """On Calendly, play tests/cassettes/calendly/<cassette>.yaml (to the end); nothing on the local calendar."""
    return play(cassette) if kind == "calendly" else nullcontext()


@pytest.fixture(params=CALENDAR_KINDS)
def calendar_kind(request: pytest.FixtureRequest) -> CalendarKind:
    """Each calendar the scenarios run on."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
async def scenario(
    request: pytest.FixtureRequest,
    calendar_kind: CalendarKind,
    db: Database,
    business: Business,
    clock: FixedClock,
    model: ScriptedChatModel,
) -> AsyncIterator[Harness]:
    """The assistant on each calendar and each database engine; on Calendly the test body plays its cassette."""
    if calendar_kind == "calendly":
        request.node.stash[_CASSETTE] = "agent_" + request.node.originalname.removeprefix("test_")
    async for h in make_harness_on(calendar_kind, db, business, clock, model):
        yield h


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Generator[None, object, object]:
    # The cassette wraps the test body only: a failing test keeps its own error instead of also reporting the
    # interactions it never reached, and a passing test fails if any interaction is left unplayed.
    cassette = pyfuncitem.stash.get(_CASSETTE, None)
    if cassette is None:
        return (yield)
    with play(cassette):
        return (yield)


@pytest.fixture
async def harness(
    db: Database, business: Business, clock: FixedClock, model: ScriptedChatModel
) -> AsyncIterator[Harness]:
    """The assistant on the local calendar, on each database engine."""
    async for h in make_harness(db, business, clock, model):
        yield h


OTHERS_EVENT_URI = "https://api.calendly.com/scheduled_events/OOOOOOOOOOOOOOOO"


async def book_directly(h: Harness, wa_id: str, start: datetime, service: str = "Corte y Peinado") -> str:
    """An appointment booked earlier, stored as each calendar stores it: seat claims on the local calendar; on
    Calendly, the mirror of the customer's event CCCC... (invitee DDDD...) or of another customer's event."""
    client = await h.clients.ensure(wa_id, now=h.clock.now())
    end = start + timedelta(minutes=45)
    if h.calendar.kind == "local":
        appointment = await h.appointments.create(
            client_id=client.id,
            service=service,
            start_at=start,
            end_at=end,
            source="agent",
            calendar="local",
            now=h.clock.now(),
            claim_slots=slot_starts(start, end, 15),
            capacity=h.business.capacity,
        )
    else:
        event = EVENT_URI if wa_id == CUSTOMER else OTHERS_EVENT_URI
        appointment = await h.appointments.create(
            client_id=client.id,
            service=service,
            start_at=start,
            end_at=end,
            source="agent",
            calendar="calendly",
            now=h.clock.now(),
            external_id=event,
            external_invitee=INVITEE_URI if wa_id == CUSTOMER else f"{event}/invitees/PPPPPPPPPPPPPPPP",
        )
    return appointment.id
