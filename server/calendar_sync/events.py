"""Applying Calendly webhook deliveries: mirror the appointment, keep reminders in step, tell the conversation.

Every step is idempotent (appointment keyed on the event URI or invitee, reminders on (appointment, offset), system
events on the delivery), so a delivery interrupted half-way is simply applied again: by Calendly's retry, or by the
worker's sweep of deliveries still 'received'.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from agent.event_texts import calendly_event_description, event_when
from core.business import Business
from core.clock import Clock
from integrations.calendly.webhook_models import CalendlyWebhook, InviteePayload
from server.calendar_sync.alerts import UnmatchedBookingAlert
from server.calendar_sync.mirror import mirror_booking
from server.ops.metrics import ServerMetrics
from server.pipeline.reminders import ReminderScheduler
from server.wording import template_variables
from store.appointments import AppointmentRepository
from store.calendar_events import CalendarEvent, CalendarEventRepository
from store.clients import ClientRepository
from store.models import Appointment
from store.system_events import SystemEventRepository

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """What a delivery did: its final status, the appointment it touched, and whether the customer is told."""

    status: str  # processed, ignored, duplicate
    detail: str
    appointment_id: str | None = None
    injected: bool = False


class CalendlyEventProcessor:
    """Records and applies `invitee.created` / `invitee.canceled` deliveries."""

    def __init__(
        self,
        *,
        events: CalendarEventRepository,
        appointments: AppointmentRepository,
        clients: ClientRepository,
        system_events: SystemEventRepository,
        reminders: ReminderScheduler,
        business: Business,
        clock: Clock,
        metrics: ServerMetrics,
        alert: UnmatchedBookingAlert,
        on_injected: Callable[[], None] | None = None,
        agent_settle_seconds: float = 20.0,
    ) -> None:
        self._on_injected = on_injected
        self._agent_settle = timedelta(seconds=agent_settle_seconds)
        self._events = events
        self._appointments = appointments
        self._clients = clients
        self._system_events = system_events
        self._reminders = reminders
        self._business = business
        self._clock = clock
        self._metrics = metrics
        self._alert = alert

    async def receive(self, webhook: CalendlyWebhook) -> Outcome:
        """Store a delivery (once, however often Calendly retries it) and apply it."""
        payload = webhook.model_dump(mode="json")
        event, is_new = await self._events.record(
            delivery_key=webhook.delivery_key(),
            event_type=webhook.event,
            external_id=webhook.payload.get("event") if isinstance(webhook.payload.get("event"), str) else None,
            payload=payload,
            now=self._clock.now(),
        )
        if not is_new and event.status != "received":
            return Outcome("duplicate", "delivery already processed", event.appointment_id)
        if await self._may_be_the_agents_own_booking(webhook):
            return Outcome("received", "deferred: the agent may still be recording this booking")
        try:
            return await self.apply(event)
        except Exception:
            # Stored but not applied: the worker's sweep applies it again (and so would Calendly's retry).
            self._metrics.dependency_errors.labels("calendly").inc()
            logger.exception("calendly delivery stored but not applied", extra={"calendar_event_id": event.id})
            return Outcome("received", "stored; will be applied again")

    async def _may_be_the_agents_own_booking(self, webhook: CalendlyWebhook) -> bool:
        # The agent books on Calendly first and writes its row when the API answers; Calendly's webhook for that very
        # booking can, rarely, arrive in between. A fresh invitee.created for an event not stored yet is left to the
        # worker's sweep (calendar_retry_after_seconds later): by then the agent's row exists, and the delivery is
        # recorded as the agent's own instead of being mirrored and announced to the customer a second time.
        if webhook.event != "invitee.created" or self._agent_settle <= timedelta(0):
            return False
        try:
            created = datetime.fromisoformat(webhook.created_at)
            event_uri = webhook.invitee().scheduled_event.uri
        except ValueError:
            return False  # malformed: `apply` reports it
        if created.tzinfo is None or self._clock.now() - created > self._agent_settle:
            return False
        return await self._appointments.by_external_id(event_uri) is None

    async def apply(self, event: CalendarEvent) -> Outcome:
        """Apply a stored delivery and record its outcome."""
        webhook = CalendlyWebhook.model_validate(event.payload)
        outcome = await self._apply(webhook, event)
        await self._events.mark(event.id, outcome.status, now=self._clock.now(), appointment_id=outcome.appointment_id)
        self._metrics.calendar_events.labels(webhook.event, outcome.status).inc()
        logger.info(
            "calendly delivery applied",
            extra={"event": webhook.event, "status": outcome.status, "detail": outcome.detail},
        )
        return outcome

    async def retry_unfinished(self, *, older_than: timedelta, give_up_after: timedelta) -> int:
        """Apply deliveries left 'received' by an interrupted process; give up on ones failing for too long."""
        now = self._clock.now()
        done = 0
        for event in await self._events.unfinished(received_before=now - older_than):
            if event.received_at < now - give_up_after:
                await self._events.mark(event.id, "failed", now=now, error="not applied in time; gave up")
                continue
            try:
                await self.apply(event)
                done += 1
            except Exception:
                self._metrics.dependency_errors.labels("calendly").inc()
                logger.exception("calendly delivery still failing", extra={"calendar_event_id": event.id})
        return done

    async def _apply(self, webhook: CalendlyWebhook, event: CalendarEvent) -> Outcome:
        if webhook.event == "invitee.created":
            return await self._created(webhook.invitee(), event)
        if webhook.event == "invitee.canceled":
            return await self._canceled(webhook.invitee(), event)
        return Outcome("ignored", f"event {webhook.event!r} is not handled")

    async def _created(self, invitee: InviteePayload, event: CalendarEvent) -> Outcome:
        scheduled = invitee.scheduled_event
        existing = await self._appointments.by_external_id(scheduled.uri)
        if existing is not None:
            if existing.source == "agent":
                return Outcome("ignored", "booking made by the agent: recorded, not injected", existing.id)
            return Outcome("processed", "appointment already mirrored", existing.id)
        mirrored = await mirror_booking(
            appointments=self._appointments,
            clients=self._clients,
            reminders=self._reminders,
            business=self._business,
            now=self._clock.now(),
            event=scheduled,
            invitee=invitee,
            alert=self._alert,
        )
        appointment, previous = mirrored.appointment, mirrored.previous
        if previous is not None:
            description = calendly_event_description(
                "calendly_moved",
                service=appointment.service,
                appointment_id=appointment.id,
                old_when=event_when(previous.start_at, self._business),
                when=event_when(appointment.start_at, self._business),
            )
            injected = await self._inject(appointment, event, description, "confirmation")
            return Outcome("processed", "appointment rescheduled", appointment.id, injected)
        description = calendly_event_description(
            "calendly_booked",
            service=appointment.service,
            appointment_id=appointment.id,
            when=event_when(appointment.start_at, self._business),
        )
        injected = await self._inject(appointment, event, description, "confirmation")
        return Outcome("processed", "appointment booked on Calendly", appointment.id, injected)

    async def _canceled(self, invitee: InviteePayload, event: CalendarEvent) -> Outcome:
        appointment = await self._appointments.by_external_id(invitee.scheduled_event.uri)
        if appointment is None:
            return Outcome("ignored", "no stored appointment for this event")
        if invitee.rescheduled:
            # The invitee.created that follows (or preceded) moves this appointment; cancelling it would lose it.
            return Outcome("processed", "cancelled for a reschedule; the new booking moves it", appointment.id)
        if appointment.status == "cancelled":
            return Outcome("ignored", "appointment already cancelled (e.g. by the agent)", appointment.id)
        reason = invitee.cancellation.reason if invitee.cancellation else None
        cancelled = await self._appointments.cancel(appointment.id, now=self._clock.now(), reason=reason)
        assert cancelled is not None
        await self._reminders.cancel(cancelled.id)
        by = invitee.cancellation.canceled_by if invitee.cancellation else None
        who = invitee.cancellation.canceler_type if invitee.cancellation else None
        description = calendly_event_description(
            "calendly_cancelled",
            service=cancelled.service,
            appointment_id=cancelled.id,
            when=event_when(cancelled.start_at, self._business),
            by=by,
            who=who,
            reason=reason,
        )
        injected = await self._inject(cancelled, event, description, "cancellation")
        return Outcome("processed", "appointment cancelled on Calendly", cancelled.id, injected)

    async def _inject(self, appointment: Appointment, event: CalendarEvent, description: str, kind: str) -> bool:
        client = await self._clients.get_by_id(appointment.client_id) if appointment.client_id else None
        if client is None:
            logger.info("calendly event for an unknown customer; not injected", extra={"appointment": appointment.id})
            return False
        await self._system_events.enqueue(
            wa_id=client.wa_id,
            source="calendly",
            description=description,
            dedupe_key=f"calendly:{event.delivery_key}",
            now=self._clock.now(),
            kind_hint=kind,
            template_variables=template_variables(
                customer_name=client.display_name,
                service=appointment.service,
                start=appointment.start_at,
                business=self._business,
            ),
        )
        if self._on_injected is not None:
            self._on_injected()
        return True
