"""The Calendly-backed calendar: Calendly owns availability and bookings; each booking is mirrored into
`appointments` so ownership checks, reminders and conversation history work as on the local calendar. Every write
is recorded as a write-ahead intent first (`integrations.calendly.writes`), so one whose answer is lost is settled
with Calendly (`integrations.calendly.reconcile`) instead of being forgotten or made twice."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Literal

from booking.calendar import BookingRequest, CalendarHealth, CalendarProblem, Slot
from booking.refusal import CALENDAR_BUSY, calendar_busy_message
from core.business import Business, Service, normalize_name
from core.clock import Clock
from integrations.calendly.client import CalendlyClient
from integrations.calendly.models import (
    CalendlyApiError,
    CalendlyError,
    CalendlyRateLimited,
    CalendlyUnavailable,
)
from integrations.calendly.reconcile import CalendlyReconciler
from integrations.calendly.writes import DEFAULT_CANCEL_REASON, RESCHEDULE_REASON, UNDO_REASON, CalendlyWrites
from store.appointments import AppointmentRepository
from store.intents import WriteIntentRepository
from store.models import Appointment

logger = logging.getLogger(__name__)

# The cancellation reasons Calendly shows in its e-mails live with the writes; still importable from here.
__all__ = ["DEFAULT_CANCEL_REASON", "RESCHEDULE_REASON", "UNDO_REASON", "CalendlyCalendar", "is_slot_taken"]

# Calendly documents no specific error for "this time was booked meanwhile"; it validates start_time and answers
# 400 with a start_time detail. A detail that speaks of availability (or a 409) is a taken slot; anything else about
# start_time (e.g. "must be in the future") is a plain invalid request.
_TAKEN_WORDS = re.compile(r"availab|taken|booked|no longer|conflict", re.IGNORECASE)


class CalendlyCalendar:
    """`booking.calendar.Calendar` on Calendly API v2 (kind 'calendly')."""

    kind: Literal["calendly"] = "calendly"

    def __init__(
        self,
        client: CalendlyClient,
        appointments: AppointmentRepository,
        business: Business,
        clock: Clock,
        user_uri: str,
        *,
        intents: WriteIntentRepository | None = None,
    ) -> None:
        """`intents` records each write before it is made; by default, in the database of `appointments`."""
        intents = intents if intents is not None else WriteIntentRepository.beside(appointments)
        self._client = client
        self._appointments = appointments
        self._business = business
        self._clock = clock
        self._user_uri = user_uri
        self._reconciler = CalendlyReconciler(client, appointments, intents, clock, user_uri)
        self._writes = CalendlyWrites(client, appointments, intents, self._reconciler, business, clock)
        self._event_types_by_name: dict[str, str] | None = None
        self._event_types_lock = asyncio.Lock()

    async def available_slots(self, service: Service, start: datetime, end: datetime) -> list[Slot]:
        """Calendly's available start times for the service in [start, end), in the business timezone."""
        with _calendly_problems("availability request"):
            event_type = await self._event_type_for(service)
            times = await self._client.available_times(event_type, start, end, now=self._clock.now())
        duration = timedelta(minutes=service.duration_minutes)
        tz = self._business.tz
        return [
            Slot(start=t.start_time.astimezone(tz), end=(t.start_time + duration).astimezone(tz))
            for t in times
            if t.status == "available"
        ]

    async def book(self, request: BookingRequest) -> Appointment:
        """Book on Calendly (POST /invitees) and mirror the scheduled event into `appointments`.

        A request whose idempotency key already produced an appointment returns it without calling Calendly; one
        whose earlier attempt was cut off is first looked for at Calendly, and adopted if it is there.
        Raises CalendarProblem: 'needs_email', 'slot_taken', 'invalid', 'rate_limited' or 'unavailable'.
        """
        if request.idempotency_key:
            done = await self._appointments.by_idempotency_key(request.idempotency_key)
            if done is not None:
                return done
        if not request.customer.email:
            raise CalendarProblem(
                "needs_email", "Calendly needs the customer's e-mail address to book; ask the customer for it."
            )
        with _calendly_problems("booking"):
            event_type = await self._event_type_for(request.service)
            return await self._writes.book(request, event_type)

    async def cancel(self, appointment: Appointment, reason: str | None = None) -> Appointment:
        """Cancel the Calendly event, then mark the appointment cancelled. A Calendly refusal changes nothing."""
        if appointment.status == "cancelled":
            return appointment
        event_uri = _event_uri(appointment)
        with _calendly_problems("cancellation"):
            return await self._writes.cancel(appointment, event_uri, reason)

    async def reschedule(self, appointment: Appointment, service: Service, new_start: datetime) -> Appointment:
        """Move an appointment (same id) by booking the new time on Calendly and cancelling the old event.

        Calendly has no host-side reschedule: the invitee's details are read back from the old invitee, the new
        time is booked first (so a refusal changes nothing), the appointment row is moved to the new event, and
        only then is the old event cancelled.
        """
        if appointment.status != "confirmed":
            raise CalendarProblem("invalid", f"Appointment {appointment.id} is cancelled and cannot be moved.")
        old_event = _event_uri(appointment)
        if not appointment.external_invitee:
            raise CalendarProblem("invalid", f"Appointment {appointment.id} has no Calendly invitee to move.")
        with _calendly_problems("reschedule"):
            event_type = await self._event_type_for(service)
            return await self._writes.reschedule(appointment, old_event, service, new_start, event_type)

    async def settle(self, client_id: int) -> list[Appointment]:
        """Settle the customer's writes a crash or a lost answer left unfinished: what Calendly holds of them is
        stored; returns the appointments that changed. Raises CalendarProblem when Calendly cannot be asked."""
        with _calendly_problems("lookup"):
            return await self._reconciler.settle_client(client_id)

    async def sweep(self, *, older_than: timedelta, abandon_after: timedelta) -> list[Appointment]:
        """Settle every write pending longer than `older_than`, abandoning those Calendly holds nothing of after
        `abandon_after`; returns the appointments that changed (each failure is logged, never raised)."""
        return await self._reconciler.sweep(older_than=older_than, abandon_after=abandon_after)

    async def health(self) -> CalendarHealth:
        """Whether the token works (GET /users/me) and belongs to the configured CALENDLY_USER_URI."""
        try:
            user = await self._client.current_user()
        except CalendlyError as exc:
            return CalendarHealth(ok=False, detail=str(exc))
        extra = {"user": user.uri, "name": user.name, "organization": user.current_organization}
        if user.uri != self._user_uri:
            detail = f"the token belongs to {user.uri}, but CALENDLY_USER_URI is {self._user_uri}"
            return CalendarHealth(ok=False, detail=detail, extra=extra)
        return CalendarHealth(ok=True, detail=f"Calendly user {user.name}", extra=extra)

    async def _event_type_for(self, service: Service) -> str:
        if service.calendly_event_type:
            return service.calendly_event_type
        by_name = await self._event_types()
        for name in service.names:
            if name in by_name:
                return by_name[name]
        raise CalendarProblem(
            "invalid",
            f"{service.name} cannot be booked online: no Calendly event type has that name.",
            details={"service": service.name},
        )

    async def _event_types(self) -> dict[str, str]:
        async with self._event_types_lock:
            if self._event_types_by_name is None:
                event_types = await self._client.list_event_types(self._user_uri)
                self._event_types_by_name = {normalize_name(t.name): t.uri for t in event_types if t.active}
            return self._event_types_by_name


def _event_uri(appointment: Appointment) -> str:
    if appointment.calendar != "calendly" or not appointment.external_id:
        raise CalendarProblem("invalid", f"Appointment {appointment.id} is not a Calendly booking.")
    return appointment.external_id


def is_slot_taken(error: CalendlyApiError) -> bool:
    """Whether Calendly refused a booking because the start time is no longer free."""
    if error.status == 409:
        return True
    return error.status == 400 and any(
        d.parameter == "start_time" and _TAKEN_WORDS.search(d.message) for d in error.details
    )


@contextmanager
def _calendly_problems(action: str) -> Iterator[None]:
    """Turn Calendly failures into CalendarProblems the model can explain; a rejected token still raises."""
    try:
        yield
    except CalendlyRateLimited as exc:
        # Raised at once for a long reset (the transport waits only a few seconds): the turn answers now.
        raise CalendarProblem(
            CALENDAR_BUSY, calendar_busy_message(exc.reset_seconds), retry_after_seconds=exc.reset_seconds
        ) from exc
    except CalendlyUnavailable as exc:
        raise CalendarProblem("unavailable", f"Calendly cannot be reached right now: {exc}") from exc
    except CalendlyApiError as exc:
        if exc.status == 401:
            raise
        details = {d.parameter or "error": d.message for d in exc.details}
        if is_slot_taken(exc):
            raise CalendarProblem(
                "slot_taken", "That time is no longer available; offer other times.", details=details
            ) from exc
        code: Literal["not_found", "invalid"] = "not_found" if exc.status == 404 else "invalid"
        raise CalendarProblem(code, f"Calendly refused the {action}: {exc.describe()}", details=details) from exc
