"""What a tool knows: this turn (who, in which language, what kind of turn) and the process-wide services.

`TurnContext` is the graph's run context: small, serialisable (LangGraph Studio passes it as JSON), built per turn
from the channel, never from the model. `ToolServices` are built once per process. A tool receives both as
`ToolContext` through `ToolRuntime`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from booking.calendar import Calendar
from core.business import Business
from core.clock import Clock
from store.appointments import AppointmentRepository
from store.clients import ClientRepository
from store.models import Appointment
from tools.whatsapp import MessageSender

TurnKind = Literal["customer", "system"]


@runtime_checkable
class AppointmentObserver(Protocol):
    """Told about every booking change the agent makes (the server schedules and moves reminders with it)."""

    async def appointment_changed(self, appointment: Appointment) -> None:
        """Called after an appointment was booked, moved or cancelled."""
        ...


@runtime_checkable
class StaffHandoff(Protocol):
    """Hands a conversation to the salon's staff (alerts them, and pauses the assistant for that customer)."""

    async def hand_off(self, wa_id: str, reason: str) -> None:
        """Alert staff about `wa_id` and stop answering that customer until staff resume the assistant."""
        ...


@dataclass(frozen=True)
class TurnContext:
    """Who this turn is for and how to speak to them; the identity comes from the channel."""

    wa_id: str
    profile_name: str | None = None
    kind: TurnKind = "customer"
    language: str = "es"


@dataclass(frozen=True)
class ToolServices:
    """The services every turn shares: the business, the clock, the calendar, the records and the sender."""

    business: Business
    clock: Clock
    calendar: Calendar
    clients: ClientRepository
    appointments: AppointmentRepository
    sender: MessageSender
    observer: AppointmentObserver | None = None
    handoff: StaffHandoff | None = None

    async def notify_changed(self, appointment: Appointment) -> None:
        """Tell the observer, if any, that an appointment changed."""
        if self.observer is not None:
            await self.observer.appointment_changed(appointment)


@dataclass(frozen=True)
class ToolContext:
    """What a tool receives as `runtime.context`: this turn, and the services."""

    turn: TurnContext
    services: ToolServices
