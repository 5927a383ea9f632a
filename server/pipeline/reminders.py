"""Appointment reminders: kept in step with appointments, and sent once when due.

A due reminder goes straight to the outbox as a message of kind 'reminder' (free text inside WhatsApp's 24-hour
window, the reminder template outside it) rather than through an agent turn: it must go out exactly once whatever the
model would say, usually outside the window where only the template is allowed anyway, and also when no agent runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import timedelta

from agent.event_texts import reminder_text
from agent.tracing import TurnTracer
from core.business import Business
from core.clock import Clock
from integrations.twilio.splitting import split_message
from server.ops.metrics import ServerMetrics
from server.wording import template_variables
from store.models import Appointment
from store.reminders import ReminderRepository

logger = logging.getLogger(__name__)


class ReminderScheduler:
    """Schedules, moves and cancels an appointment's reminders (offsets before its start, e.g. 24 h and 2 h).

    It satisfies `tools.context.AppointmentObserver`: the agent side calls `appointment_changed` after booking,
    moving or cancelling, and the worker reconciles anything missed.
    """

    def __init__(self, repository: ReminderRepository, clock: Clock, offsets_hours: Sequence[float]) -> None:
        self._repository = repository
        self._clock = clock
        self._offsets = sorted({round(hours * 60) for hours in offsets_hours if hours > 0}, reverse=True)

    async def appointment_changed(self, appointment: Appointment) -> None:
        """Follow an appointment that was booked, moved or cancelled."""
        if appointment.status == "cancelled":
            await self.cancel(appointment.id)
        else:
            await self.schedule(appointment)

    async def schedule(self, appointment: Appointment) -> None:
        """Schedule (or move) the reminders of a confirmed appointment; offsets already in the past are skipped."""
        if appointment.client_id is None:
            return  # nobody to remind
        now = self._clock.now()
        due = {}
        past = []
        for minutes in self._offsets:
            at = appointment.start_at - timedelta(minutes=minutes)
            if at > now:
                due[minutes] = at
            else:
                past.append(minutes)
        await self._repository.sync(appointment.id, due=due, past_offsets=past, now=now)

    async def cancel(self, appointment_id: str) -> None:
        """Cancel the reminders of an appointment that will not happen."""
        await self._repository.cancel_for(appointment_id)

    async def reconcile(self) -> int:
        """Give reminders to confirmed future appointments that have none (booked while no scheduler was told)."""
        if not self._offsets:
            return 0
        earliest_useful = self._clock.now() + timedelta(minutes=self._offsets[-1])
        appointments = await self._repository.appointments_without_reminders(starting_after=earliest_useful)
        for appointment in appointments:
            await self.schedule(appointment)
        return len(appointments)


class ReminderDispatcher:
    """Turns due reminders into outbox messages; a conditional claim makes each go out once across workers."""

    def __init__(
        self,
        *,
        repository: ReminderRepository,
        business: Business,
        clock: Clock,
        metrics: ServerMetrics,
        owner: str,
        on_enqueued: Callable[[], None] | None = None,
        tracer: TurnTracer | None = None,
    ) -> None:
        """With `tracer` on, each reminder queued is a "Reminder" trace in the customer's thread."""
        self._tracer = tracer
        self._repository = repository
        self._business = business
        self._clock = clock
        self._metrics = metrics
        self._owner = owner
        self._on_enqueued = on_enqueued

    async def dispatch_due(self) -> int:
        """Queue every due reminder; returns how many were queued by this worker."""
        now = self._clock.now()
        queued = 0
        for reminder in await self._repository.due(now=now):
            if reminder.appointment_status != "confirmed" or reminder.wa_id is None or reminder.start_at <= now:
                # Cancelled, nobody to tell, or too late to be useful (the worker was down).
                await self._repository.skip(reminder.id)
                self._metrics.reminders.labels("skipped").inc()
                continue
            text = reminder_text(
                customer_name=reminder.customer_name,
                service=reminder.service,
                start=reminder.start_at,
                business=self._business,
                language=reminder.customer_language,
            )
            variables = template_variables(
                customer_name=reminder.customer_name,
                service=reminder.service,
                start=reminder.start_at,
                business=self._business,
            )
            if await self._repository.claim_and_enqueue(
                reminder, owner=self._owner, now=now, parts=split_message(text), template_variables=variables
            ):
                queued += 1
                self._metrics.reminders.labels("queued").inc()
                self._trace(reminder.wa_id, reminder.appointment_id, reminder.offset_minutes, text)
                logger.info("reminder queued", extra={"reminder_id": reminder.id, "wa_id": reminder.wa_id})
        if queued and self._on_enqueued is not None:
            self._on_enqueued()
        return queued

    def _trace(self, wa_id: str, appointment_id: str, offset_minutes: int, text: str) -> None:
        if self._tracer is None or not self._tracer.enabled:
            return
        try:
            self._tracer.event(
                wa_id,
                "reminder",
                inputs={"appointment_id": appointment_id, "minutes_before": offset_minutes},
                outputs={"queued": text},
                metadata={"appointment_ids": [appointment_id], "outcome": "reminder_queued"},
            )
        except Exception:  # tracing is an aid: it never stops a reminder
            logger.warning("could not trace the reminder", exc_info=True)
