"""The calendar interface both implementations (local, Calendly) satisfy, and the values they exchange."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, Protocol, runtime_checkable

from core.addresses import phone_of
from core.business import Service
from store.models import Appointment


@dataclass(frozen=True)
class Slot:
    """A free start time for a service."""

    start: datetime
    end: datetime


@dataclass(frozen=True)
class Customer:
    """Who an appointment is for. Always taken from the channel (never from the model's arguments)."""

    wa_id: str
    client_id: int | None
    name: str | None = None
    email: str | None = None

    @property
    def phone(self) -> str:
        """The customer's E.164 number."""
        return phone_of(self.wa_id)


@dataclass(frozen=True)
class BookingRequest:
    """Everything a calendar needs to book one service at one start time."""

    service: Service
    start: datetime
    customer: Customer
    notes: str | None = None
    idempotency_key: str | None = None


class CalendarProblem(Exception):
    """An expected refusal the model can explain to the customer (slot taken, needs email, Calendly said no)."""

    def __init__(
        self,
        code: Literal["slot_taken", "needs_email", "invalid", "unavailable", "rate_limited", "not_found"],
        message: str,
        *,
        details: dict[str, str] | None = None,
        retry_after_seconds: float | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or {}
        self.retry_after_seconds = retry_after_seconds


@dataclass(frozen=True)
class CalendarHealth:
    """Whether a calendar backend is reachable, for health checks."""

    ok: bool
    detail: str = ""
    extra: dict[str, str] = field(default_factory=dict)


@runtime_checkable
class Calendar(Protocol):
    """Availability and bookings. Every datetime in and out is timezone-aware.

    Implementations store every booking they make in `appointments` (the Calendly one mirrors the scheduled event
    there with `calendar='calendly'` and `external_id` = the event URI), so ownership checks and reminders work the
    same on both.
    """

    @property
    def kind(self) -> Literal["local", "calendly"]:
        """Which backend this is (the tools ask for an email only when Calendly needs one)."""
        ...

    async def available_slots(self, service: Service, start: datetime, end: datetime) -> list[Slot]:
        """Free start times for `service` in [start, end), in order; never in the past."""
        ...

    async def book(self, request: BookingRequest) -> Appointment:
        """Book and return the stored appointment. Raises CalendarProblem('slot_taken' | 'needs_email' | ...)."""
        ...

    async def cancel(self, appointment: Appointment, reason: str | None = None) -> Appointment:
        """Cancel and return the stored appointment, now with status 'cancelled'."""
        ...

    async def reschedule(self, appointment: Appointment, service: Service, new_start: datetime) -> Appointment:
        """Move an appointment (same id) to a new start. Raises CalendarProblem('slot_taken') and changes nothing."""
        ...

    async def health(self) -> CalendarHealth:
        """Whether the backend answers."""
        ...


@runtime_checkable
class RecoversInterruptedWrites(Protocol):
    """A calendar whose writes are calls to another system, which a crash or a lost answer can cut off after that
    system acted (Calendly). It records each write before making it and can settle it afterwards: what the other
    system holds is stored as if the answer had arrived. The local calendar writes in one database transaction, so
    nothing of it can be cut off half-way, and it does not implement this.
    """

    async def settle(self, client_id: int) -> list[Appointment]:
        """Settle the customer's unfinished writes; the appointments they turned out to create, move or cancel.
        Raises CalendarProblem when the other system cannot be asked right now."""
        ...

    async def sweep(self, *, older_than: timedelta, abandon_after: timedelta) -> list[Appointment]:
        """Settle every write unfinished for longer than `older_than` (abandon what the other system holds nothing
        of after `abandon_after`); the appointments that changed. Failures are logged, not raised."""
        ...
