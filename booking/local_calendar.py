"""The embedded calendar: free slots from opening hours, durations and capacity; bookings as seat claims."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Literal

from booking.calendar import BookingRequest, CalendarHealth, CalendarProblem, Slot
from core.business import Business, Service
from core.clock import Clock
from core.timeutil import at_local, wall_clock_exists
from store.appointments import AppointmentRepository, SlotTaken, slot_starts
from store.models import Appointment


class LocalCalendar:
    """Availability computed from `business.yaml` and the `appointments` table; no external service."""

    kind: Literal["local"] = "local"

    def __init__(self, business: Business, appointments: AppointmentRepository, clock: Clock) -> None:
        self._business = business
        self._appointments = appointments
        self._clock = clock

    def _grid(self, service: Service, start: datetime, end: datetime) -> list[Slot]:
        """Every start time on the slot grid inside opening hours where the whole service fits."""
        tz = self._business.tz
        duration = timedelta(minutes=service.duration_minutes)
        step = timedelta(minutes=self._business.slot_minutes)
        earliest = max(start, self._clock.now())
        slots: list[Slot] = []
        day = start.astimezone(tz).date()
        while at_local(day, datetime.min.time(), tz) < end:
            for opening in self._business.hours_on(day):
                # Walk in wall-clock time so DST days keep the 09:30, 09:45... grid people expect.
                cursor = at_local(day, opening.start, tz)
                close = at_local(day, opening.end, tz)
                while cursor + duration <= close:
                    if cursor >= earliest and start <= cursor < end and wall_clock_exists(cursor):
                        slots.append(Slot(start=cursor, end=cursor + duration))
                    cursor = (cursor.replace(tzinfo=None) + step).replace(tzinfo=tz)
            day += timedelta(days=1)
        return slots

    async def available_slots(self, service: Service, start: datetime, end: datetime) -> list[Slot]:
        """Free start times for `service` in [start, end), never in the past or beyond the booking horizon."""
        return await self._free(service, start, end, ignoring=None)

    async def available_slots_moving(
        self, appointment: Appointment, service: Service, start: datetime, end: datetime
    ) -> list[Slot]:
        """Free start times as if `appointment` did not hold its seats: `reschedule` releases them in the same
        transaction that claims the new ones, so a move may overlap the appointment's own time."""
        return await self._free(service, start, end, ignoring=appointment.id)

    async def _free(self, service: Service, start: datetime, end: datetime, *, ignoring: str | None) -> list[Slot]:
        tz = self._business.tz
        # Whole days, as the customer is told ("until 23 January"), not now + N x 24 h.
        last_day = self._business.last_bookable_day(self._clock.now().astimezone(tz).date())
        end = min(end, at_local(last_day + timedelta(days=1), datetime.min.time(), tz))
        if end <= start:
            return []
        candidates = self._grid(service, start, end)
        if not candidates:
            return []
        busy = await self._appointments.confirmed_between(candidates[0].start, candidates[-1].end)
        step = self._business.slot_minutes
        load: Counter[datetime] = Counter()
        for appointment in busy:
            if appointment.id == ignoring:
                continue
            for slot in slot_starts(appointment.start_at, appointment.end_at, step):
                load[slot] += 1
        capacity = self._business.capacity
        return [slot for slot in candidates if all(load[s] < capacity for s in slot_starts(slot.start, slot.end, step))]

    def check_bookable(self, service: Service, start: datetime) -> None:
        """Raise CalendarProblem('invalid') when `start` is in the past, off the grid or outside opening hours."""
        if start <= self._clock.now():
            raise CalendarProblem("invalid", "That time is in the past.")
        if start not in {s.start for s in self._grid(service, start, start + timedelta(minutes=1))}:
            raise CalendarProblem(
                "invalid", "The business is closed then, or the service would not end before closing."
            )

    async def book(self, request: BookingRequest) -> Appointment:
        """Claim a seat for every slot the service occupies and store the appointment (one transaction)."""
        self.check_bookable(request.service, request.start)
        end = request.start + timedelta(minutes=request.service.duration_minutes)
        try:
            return await self._appointments.create(
                client_id=request.customer.client_id,
                service=request.service.name,
                start_at=request.start,
                end_at=end,
                source="agent",
                calendar="local",
                now=self._clock.now(),
                price_eur=request.service.price_eur,
                notes=request.notes,
                idempotency_key=request.idempotency_key,
                claim_slots=slot_starts(request.start, end, self._business.slot_minutes),
                capacity=self._business.capacity,
            )
        except SlotTaken:
            raise CalendarProblem("slot_taken", "That time was just taken.") from None

    async def cancel(self, appointment: Appointment, reason: str | None = None) -> Appointment:
        """Cancel and free the seats."""
        cancelled = await self._appointments.cancel(appointment.id, now=self._clock.now(), reason=reason)
        if cancelled is None:
            raise CalendarProblem("not_found", "No such appointment.")
        return cancelled

    async def reschedule(self, appointment: Appointment, service: Service, new_start: datetime) -> Appointment:
        """Move to `new_start`, swapping seat claims atomically; nothing changes when the new time is taken."""
        self.check_bookable(service, new_start)
        end = new_start + timedelta(minutes=service.duration_minutes)
        try:
            return await self._appointments.move(
                appointment.id,
                start_at=new_start,
                end_at=end,
                now=self._clock.now(),
                claim_slots=slot_starts(new_start, end, self._business.slot_minutes),
                capacity=self._business.capacity,
            )
        except SlotTaken:
            raise CalendarProblem("slot_taken", "That time was just taken.") from None

    async def health(self) -> CalendarHealth:
        """The local calendar is as healthy as the database behind it."""
        await self._appointments.confirmed_between(self._clock.now(), self._clock.now())
        return CalendarHealth(ok=True, detail="local calendar")
