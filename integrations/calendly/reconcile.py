"""Settling Calendly writes whose answer never arrived: ask Calendly what it holds, and store that.

Every booking, cancellation and reschedule is recorded as a write-ahead intent (`store.intents`) before its HTTP
call. One still 'pending' afterwards was cut off: the process died mid-call, or the connection dropped after
Calendly acted. Before anything is written again (the turn runs again after a crash) and in the worker's sweep, the
intent is settled here: a booking is looked for among the invitee's scheduled events at that very start, a
cancellation in the event's status. What Calendly holds is stored exactly as if its answer had just arrived, so the
customer hears "booked" (their own booking is never mistaken for a taken slot) and reminders follow; only when
Calendly holds nothing is the write made again, or, long after, abandoned.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from core.clock import Clock
from integrations.calendly.client import CalendlyClient
from integrations.calendly.models import CalendlyApiError, CalendlyError, Invitee, ScheduledEvent
from store.appointments import AppointmentRepository
from store.database import IntegrityConflict
from store.intents import PlannedWrite, WriteIntent, WriteIntentRepository
from store.models import Appointment

logger = logging.getLogger(__name__)

# Shown by Calendly to the invitee and the host in its cancellation e-mails.
RESCHEDULE_REASON = "Reprogramada por WhatsApp"
# Calendly's list filters are inclusive or not depending on the field; a margin either side, then an exact match.
_SEARCH_MARGIN = timedelta(minutes=1)


@dataclass(frozen=True)
class Settled:
    """What Calendly turned out to hold of an intent: `found` when the write happened there (and is now stored),
    with the appointment as stored; not found means Calendly holds nothing of it (yet)."""

    found: bool
    appointment: Appointment | None = None


class CalendlyReconciler:
    """Settles intents: the write Calendly holds is stored, the intent closed."""

    def __init__(
        self,
        client: CalendlyClient,
        appointments: AppointmentRepository,
        intents: WriteIntentRepository,
        clock: Clock,
        user_uri: str,
    ) -> None:
        self._client = client
        self._appointments = appointments
        self._intents = intents
        self._clock = clock
        self._user_uri = user_uri

    async def settle(self, intent: WriteIntent) -> Settled:
        """Find out what became of `intent` at Calendly and store it. Raises `CalendlyError` when Calendly cannot
        be asked (the intent stays pending)."""
        if intent.action == "book":
            return await self._settle_booking(intent)
        if intent.action == "cancel":
            return await self._settle_cancellation(intent)
        if intent.action == "move":
            return await self._settle_move(intent)
        return Settled(await self._finish_release(intent))

    async def settle_client(self, client_id: int) -> list[Appointment]:
        """Settle a customer's pending writes; the appointments they turned out to create, move or cancel."""
        changed: list[Appointment] = []
        for intent in await self._intents.pending_for_client(client_id):
            settled = await self.settle(intent)
            if settled.appointment is not None:
                changed.append(settled.appointment)
        return changed

    async def sweep(self, *, older_than: timedelta, abandon_after: timedelta) -> list[Appointment]:
        """Settle every write left pending longer than `older_than` (so an orphan is stored even if the customer
        never writes again); abandon those Calendly still holds nothing of after `abandon_after`. Returns the
        appointments that changed, for their reminders."""
        now = self._clock.now()
        changed: list[Appointment] = []
        for intent in await self._intents.pending_before(now - older_than):
            settled = await self._sweep_one(intent)
            if settled is None:
                continue  # the outcome stays unknown: retried next pass, never given up
            if settled.appointment is not None:
                changed.append(settled.appointment)
                logger.info(
                    "calendly write settled", extra={"action": intent.action, "appointment": settled.appointment.id}
                )
            elif not settled.found and intent.updated_at < now - abandon_after:
                await self._abandon(intent, now)
        return changed

    async def release(self, event_uri: str, appointment: Appointment) -> None:
        """Cancel the event a reschedule moved `appointment` away from. Recorded first like any write: if it cannot
        be done now, a later settle or sweep finishes it."""
        planned = PlannedWrite.ending("release", appointment, event_uri, RESCHEDULE_REASON)
        intent, _ = await self._intents.begin(planned, now=self._clock.now())
        await self._finish_release(intent)

    async def find_booking(self, intent: WriteIntent) -> tuple[ScheduledEvent, Invitee | None] | None:
        """The active event of the intent's event type at its exact start with the intent's invitee, and that
        invitee; None when Calendly holds no such booking."""
        if not intent.email:
            return None
        events = await self._client.list_scheduled_events(
            self._user_uri,
            invitee_email=intent.email,
            min_start_time=intent.start_at - _SEARCH_MARGIN,
            max_start_time=intent.start_at + _SEARCH_MARGIN,
            status="active",
        )
        event = next((e for e in events if e.start_time == intent.start_at and e.event_type == intent.event_type), None)
        if event is None:
            return None
        invitees = await self._client.list_event_invitees(event.uri, status="active")
        email = intent.email.casefold()
        return event, next((i for i in invitees if i.email.casefold() == email), None)

    async def store_booking(self, intent: WriteIntent, event_uri: str, invitee_uri: str | None) -> Appointment:
        """Store the booking an intent made (event `event_uri`) and close the intent, whoever stored it first."""
        appointment = await self._appointments.by_external_id(event_uri)
        if appointment is None:
            # The invitee.created webhook for this very booking may be stored first: then its row is the answer.
            appointment = await self._appointments.create(
                client_id=intent.client_id,
                service=intent.service,
                start_at=intent.start_at,
                end_at=intent.end_at,
                source="agent",
                calendar="calendly",
                now=self._clock.now(),
                price_eur=intent.price_eur,
                notes=intent.notes,
                external_id=event_uri,
                external_invitee=invitee_uri,
                idempotency_key=intent.appointment_key,
            )
        await self._intents.finish(intent.intent_key, "done", now=self._clock.now(), appointment_id=appointment.id)
        return appointment

    async def _settle_booking(self, intent: WriteIntent) -> Settled:
        if intent.appointment_key:
            stored = await self._appointments.by_idempotency_key(intent.appointment_key)
            if stored is not None:  # cut off after the row was written: nothing to ask Calendly
                await self._intents.finish(intent.intent_key, "done", now=self._clock.now(), appointment_id=stored.id)
                return Settled(True, stored)
        found = await self.find_booking(intent)
        if found is None:
            return Settled(False)
        event, invitee = found
        return Settled(True, await self.store_booking(intent, event.uri, invitee.uri if invitee else None))

    async def _settle_cancellation(self, intent: WriteIntent) -> Settled:
        appointment = await self._appointments.get(intent.appointment_id or "")
        if appointment is None:
            return Settled(False)
        if appointment.status != "cancelled":
            if not intent.target or (await self._client.get_scheduled_event(intent.target)).status != "canceled":
                return Settled(False)
            cancelled = await self._appointments.cancel(appointment.id, now=self._clock.now(), reason=intent.notes)
            appointment = cancelled or appointment
        await self._intents.finish(intent.intent_key, "done", now=self._clock.now(), appointment_id=appointment.id)
        return Settled(True, appointment)

    async def _settle_move(self, intent: WriteIntent) -> Settled:
        appointment = await self._appointments.get(intent.appointment_id or "")
        if appointment is None or appointment.status != "confirmed":
            return Settled(False)
        moved = appointment.start_at == intent.start_at and appointment.external_id != intent.target
        if not moved:
            found = await self.find_booking(intent)
            if found is None:
                return Settled(False)
            event, invitee = found
            appointment = await self._move(appointment, intent, event.uri, invitee.uri if invitee else None)
        await self._intents.finish(intent.intent_key, "done", now=self._clock.now(), appointment_id=appointment.id)
        if intent.target and appointment.external_id != intent.target:
            await self.release(intent.target, appointment)
        return Settled(True, appointment)

    async def _move(
        self, appointment: Appointment, intent: WriteIntent, event_uri: str, invitee: str | None
    ) -> Appointment:
        try:
            return await self._appointments.move(
                appointment.id,
                start_at=intent.start_at,
                end_at=intent.end_at,
                now=self._clock.now(),
                external_id=event_uri,
                external_invitee=invitee,
            )
        except IntegrityConflict:
            # The new event's invitee.created webhook was mirrored first as an appointment of its own: that row is
            # the booking now, and this one, which it replaces, is cancelled locally (Calendly's old event is
            # released by the caller).
            mirror = await self._appointments.by_external_id(event_uri)
            if mirror is None:
                raise
            await self._appointments.cancel(appointment.id, now=self._clock.now(), reason=RESCHEDULE_REASON)
            return mirror

    async def _finish_release(self, intent: WriteIntent) -> bool:
        """Cancel a moved-away-from event (an attempt may already have), close the intent; whether it is done."""
        target = intent.target or ""
        try:
            await self._client.cancel_event(target, intent.notes or RESCHEDULE_REASON)
        except CalendlyError as exc:
            # An earlier attempt may have got through (Calendly then refuses a second cancellation): look.
            try:
                cancelled = (await self._client.get_scheduled_event(target)).status == "canceled"
            except CalendlyError:
                cancelled = False
            if not cancelled:
                status = exc.status if isinstance(exc, CalendlyApiError) else None
                logger.warning("calendly event not released yet", extra={"event": target, "status": status})
                return False
        await self._intents.finish(
            intent.intent_key, "done", now=self._clock.now(), appointment_id=intent.appointment_id
        )
        return True

    async def _sweep_one(self, intent: WriteIntent) -> Settled | None:
        """Settle one intent for the sweep; None when Calendly could not say (unreachable, rate-limited, refusing
        the token), each failure logged in one line (an unexpected one with its traceback)."""
        try:
            return await self.settle(intent)
        except CalendlyApiError as exc:
            if exc.status == 404:
                return Settled(False)  # what it concerns is gone from Calendly: nothing there to adopt
            logger.warning("calendly write not settled yet", extra={"action": intent.action, "status": exc.status})
        except CalendlyError as exc:
            logger.warning(
                "calendly write not settled yet", extra={"action": intent.action, "error": type(exc).__name__}
            )
        except Exception:
            logger.exception("calendly write could not be settled", extra={"action": intent.action})
        return None

    async def _abandon(self, intent: WriteIntent, now: datetime) -> None:
        reason = "Calendly holds nothing of this write" if intent.action != "release" else "event still active"
        if not await self._intents.abandon(intent.intent_key, seen_at=intent.updated_at, now=now, error=reason):
            return  # attempted again meanwhile
        if intent.action == "release":
            # The customer's appointment already moved; the old event is for staff to remove.
            logger.error("calendly event left active; cancel it by hand", extra={"event": intent.target})
        else:
            logger.warning("calendly write abandoned: nothing found", extra={"action": intent.action})
