"""The per-turn dependencies every tool receives through `ToolRuntime[Context]`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from core.business import Business
from core.clock import Clock
from store.appointments import AppointmentRepository
from store.clients import ClientRepository
from store.models import Appointment
from tools.calendar import Calendar
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
class Context:
    """Who the customer is (from the channel, never from the model) and the services a turn may use."""

    wa_id: str
    business: Business
    clock: Clock
    calendar: Calendar
    clients: ClientRepository
    appointments: AppointmentRepository
    sender: MessageSender
    profile_name: str | None = None
    turn: TurnKind = "customer"
    language: str = "es"
    observer: AppointmentObserver | None = None
    handoff: StaffHandoff | None = None

    async def notify_changed(self, appointment: Appointment) -> None:
        """Tell the observer, if any, that an appointment changed."""
        if self.observer is not None:
            await self.observer.appointment_changed(appointment)
