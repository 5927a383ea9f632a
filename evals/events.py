"""Calendar events arriving mid-scenario, applied as production applies them: the store changes first, then the
customer's thread hears of it in the same words the Calendly webhook uses (untrusted fields inside a data block),
or the server's own reminder goes out."""

from __future__ import annotations

from agent.event_texts import calendly_event_description, event_when, reminder_text
from core.timeutil import localize
from evals.scenario import CalendlyCancelled, CalendlyMoved, EventKind, ReminderSent, SlotTaken
from evals.wiring import Wired, add_appointment
from store.appointments import slot_starts
from store.models import Appointment


async def _appointment(wired: Wired, appointment_id: str) -> Appointment:
    found = await wired.appointments.get(appointment_id)
    if found is None:
        raise ValueError(f"event for {appointment_id}: no such appointment")
    return found


async def _cancelled(wired: Wired, event: CalendlyCancelled) -> str:
    now = wired.clock.now()
    cancelled = await wired.appointments.cancel(event.appointment, now=now, reason=event.reason)
    if cancelled is None:
        raise ValueError(f"event for {event.appointment}: no such appointment")
    return calendly_event_description(
        "calendly_cancelled",
        service=cancelled.service,
        appointment_id=cancelled.id,
        when=event_when(cancelled.start_at, wired.business),
        by=event.canceled_by,
        who=event.canceler_type,
        reason=event.reason,
    )


async def _moved(wired: Wired, event: CalendlyMoved) -> str:
    before = await _appointment(wired, event.appointment)
    business = wired.business
    start = localize(event.to, business.tz)
    end = start + (before.end_at - before.start_at)
    await wired.appointments.move(
        before.id,
        start_at=start,
        end_at=end,
        now=wired.clock.now(),
        claim_slots=slot_starts(start, end, business.slot_minutes),
        capacity=business.capacity,
    )
    return calendly_event_description(
        "calendly_moved",
        service=before.service,
        appointment_id=before.id,
        old_when=event_when(before.start_at, wired.business),
        when=event_when(start, wired.business),
    )


async def _reminder(wired: Wired, event: ReminderSent, wa_id: str) -> str:
    appointment = await _appointment(wired, event.appointment)
    client = await wired.clients.get(wa_id)
    text = reminder_text(
        customer_name=client.display_name if client else None,
        service=appointment.service,
        start=appointment.start_at,
        business=wired.business,
        language=client.language if client else None,
    )
    await wired.sender.send(wa_id, text, kind="reminder")
    return text


async def apply_event(wired: Wired, event: EventKind, wa_id: str) -> tuple[str, bool]:
    """Apply `event` to the store (or send the reminder); returns its text and whether the customer's thread must
    hear of it as a system turn (Calendly changes do; a reminder or someone else's booking does not)."""
    if isinstance(event, CalendlyCancelled):
        return await _cancelled(wired, event), True
    if isinstance(event, CalendlyMoved):
        return await _moved(wired, event), True
    if isinstance(event, SlotTaken):
        await add_appointment(
            wired,
            appointment_id=event.id,
            wa_id=event.client,
            service_name=event.service,
            start_local=event.start,
            source="staff",
        )
        return f"(another client booked {event.service} at {event.start:%Y-%m-%d %H:%M})", False
    return await _reminder(wired, event, wa_id), False
