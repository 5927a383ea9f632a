"""What the booking rules need to know about one business: its description, the time, its calendar and records."""

from __future__ import annotations

from typing import Protocol

from booking.calendar import Calendar
from core.business import Business
from core.clock import Clock
from store.appointments import AppointmentRepository
from store.clients import ClientRepository


class Desk(Protocol):
    """The front desk the booking rules consult (the tools' services satisfy it)."""

    @property
    def business(self) -> Business:
        """Services, hours and policies."""
        ...

    @property
    def clock(self) -> Clock:
        """Now."""
        ...

    @property
    def calendar(self) -> Calendar:
        """Free slots and bookings (local or Calendly)."""
        ...

    @property
    def clients(self) -> ClientRepository:
        """Who each WhatsApp address is."""
        ...

    @property
    def appointments(self) -> AppointmentRepository:
        """The appointments we hold."""
        ...
