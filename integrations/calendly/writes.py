"""Booking, cancelling and moving on Calendly, each recorded as a write-ahead intent before its HTTP call.

The order of every write: record the intent (committed), settle an earlier attempt under the same key if one was cut
off (`CalendlyReconciler`), make the call, store the outcome in `appointments`, close the intent. Calendly's answer
decides what the intent becomes: a refusal (4xx, 429) fails it, a lost answer (timeout, 5xx after the request left)
is settled at once by asking Calendly, and left pending for the sweep if Calendly cannot be asked either. Errors are
Calendly's own (`CalendlyError`); the calendar turns them into the problems the model reads.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta

from booking.calendar import BookingRequest
from core.business import Business, Service
from core.clock import Clock
from integrations.calendly.client import CalendlyClient
from integrations.calendly.models import CalendlyError, CalendlyUnavailable, Invitee, Location
from integrations.calendly.reconcile import RESCHEDULE_REASON, CalendlyReconciler
from store.appointments import AppointmentRepository
from store.intents import PlannedWrite, WriteIntent, WriteIntentRepository
from store.models import Appointment

logger = logging.getLogger(__name__)

# Shown by Calendly to the invitee and the host in its cancellation e-mails.
DEFAULT_CANCEL_REASON = "Cancelada por el cliente por WhatsApp"
UNDO_REASON = "Anulada: no se pudo registrar la cita"

__all__ = ["DEFAULT_CANCEL_REASON", "RESCHEDULE_REASON", "UNDO_REASON", "CalendlyWrites"]

# An earlier attempt in these states may have reached Calendly: it is settled before writing again.
_UNSETTLED = ("pending", "abandoned")


class CalendlyWrites:
    """The intent-guarded writes behind `CalendlyCalendar.book`, `cancel` and `reschedule`."""

    def __init__(
        self,
        client: CalendlyClient,
        appointments: AppointmentRepository,
        intents: WriteIntentRepository,
        reconciler: CalendlyReconciler,
        business: Business,
        clock: Clock,
    ) -> None:
        self._client = client
        self._appointments = appointments
        self._intents = intents
        self._reconciler = reconciler
        self._business = business
        self._clock = clock

    async def book(self, request: BookingRequest, event_type: str) -> Appointment:
        """Book `request` (whose customer has an e-mail) on `event_type` and store the appointment.

        The intent's key is the request's idempotency key (the agent's: the customer and the confirmed tool call,
        the same when the turn runs again after a crash); without one, each call is a write of its own, which only
        the sweep settles.
        """
        customer = request.customer
        start, duration = request.start, timedelta(minutes=request.service.duration_minutes)
        planned = PlannedWrite(
            key=f"book:{request.idempotency_key or uuid.uuid4().hex}",
            action="book",
            service=request.service.name,
            start_at=start,
            end_at=start + duration,
            client_id=customer.client_id,
            event_type=event_type,
            email=customer.email,
            appointment_key=request.idempotency_key,
            price_eur=request.service.price_eur,
            notes=request.notes,
        )
        intent = await self._begin(planned)
        if isinstance(intent, Appointment):
            return intent
        try:
            invitee = await self._create_invitee(
                event_type,
                start,
                # Calendly requires a name; the phone number at least tells staff who booked.
                name=customer.name or customer.phone,
                email=customer.email or "",
                phone=customer.phone,
            )
        except CalendlyError as exc:
            return await self._after_failure(intent, exc)
        return await self._reconciler.store_booking(intent, invitee.event, invitee.uri)

    async def cancel(self, appointment: Appointment, event_uri: str, reason: str | None) -> Appointment:
        """Cancel `appointment`'s Calendly event, then mark it cancelled. A Calendly refusal changes nothing."""
        planned = PlannedWrite.ending("cancel", appointment, event_uri, reason)
        intent = await self._begin(planned)
        if isinstance(intent, Appointment):
            return intent
        try:
            await self._client.cancel_event(event_uri, reason or DEFAULT_CANCEL_REASON)
        except CalendlyError as exc:
            return await self._after_failure(intent, exc)
        cancelled = await self._appointments.cancel(appointment.id, now=self._clock.now(), reason=reason)
        if cancelled is None:
            raise LookupError(appointment.id)
        await self._intents.finish(intent.intent_key, "done", now=self._clock.now(), appointment_id=cancelled.id)
        return cancelled

    async def reschedule(
        self, appointment: Appointment, old_event: str, service: Service, new_start: datetime, event_type: str
    ) -> Appointment:
        """Move `appointment` (same id): book `new_start` for the old invitee, move the row, release the old event.

        Calendly has no host-side reschedule. The new time is booked first (a refusal changes nothing), the row
        then points at the new event, and only then is the old event cancelled; each Calendly write is an intent.
        """
        assert appointment.external_invitee is not None
        old = await self._client.get_invitee(appointment.external_invitee)
        planned = PlannedWrite(
            key=f"move:{appointment.id}:{new_start.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}",
            action="move",
            service=service.name,
            start_at=new_start,
            end_at=new_start + timedelta(minutes=service.duration_minutes),
            client_id=appointment.client_id,
            appointment_id=appointment.id,
            event_type=event_type,
            email=old.email,
            target=old_event,
        )
        intent = await self._begin(planned)
        if isinstance(intent, Appointment):
            return intent
        try:
            new = await self._create_invitee(
                event_type, new_start, name=old.name, email=old.email, phone=old.text_reminder_number
            )
        except CalendlyError as exc:
            return await self._after_failure(intent, exc)
        try:
            # Moving before cancelling means the old event's invitee.canceled webhook no longer finds this row and
            # cannot mark the moved appointment cancelled.
            moved = await self._appointments.move(
                appointment.id,
                start_at=new_start,
                end_at=planned.end_at,
                now=self._clock.now(),
                external_id=new.event,
                external_invitee=new.uri,
            )
        except Exception:
            await self._cancel_quietly(new.event, UNDO_REASON)
            await self._intents.finish(intent.intent_key, "failed", now=self._clock.now(), error="not stored")
            raise
        await self._intents.finish(intent.intent_key, "done", now=self._clock.now(), appointment_id=moved.id)
        await self._reconciler.release(old_event, appointment)
        return moved

    async def _begin(self, planned: PlannedWrite) -> WriteIntent | Appointment:
        """Record the intent; if an earlier attempt under its key was cut off and Calendly holds its write, that
        write's outcome (stored now) instead."""
        intent, earlier = await self._intents.begin(planned, now=self._clock.now())
        if earlier in _UNSETTLED:
            settled = await self._reconciler.settle(intent)
            if settled.found and settled.appointment is not None:
                return settled.appointment
        return intent

    async def _after_failure(self, intent: WriteIntent, exc: CalendlyError) -> Appointment:
        """After a failed call: a refusal fails the intent and is raised. A lost answer may hide a write that
        happened: Calendly is asked at once and what it holds is the outcome; if it holds nothing, or cannot be
        asked, the intent stays pending for a later settle or the sweep, and the failure is raised."""
        if not isinstance(exc, CalendlyUnavailable):
            await self._intents.finish(intent.intent_key, "failed", now=self._clock.now(), error=type(exc).__name__)
            raise exc
        try:
            settled = await self._reconciler.settle(intent)
        except CalendlyError:
            raise exc from None
        if settled.found and settled.appointment is not None:
            return settled.appointment
        raise exc

    async def _create_invitee(
        self, event_type: str, start: datetime, *, name: str, email: str, phone: str | None
    ) -> Invitee:
        address = self._business.address
        return await self._client.create_invitee(
            event_type,
            start,
            name=name,
            email=email,
            timezone=self._business.timezone,
            text_reminder_number=phone or None,
            location=Location(kind="physical", location=address) if address else None,
        )

    async def _cancel_quietly(self, event_uri: str, reason: str) -> None:
        # Used when the customer-facing outcome is already decided; a leftover event is for staff to remove.
        try:
            await self._client.cancel_event(event_uri, reason)
        except CalendlyError:
            logger.exception("calendly event left active; cancel it by hand", extra={"event": event_uri})
