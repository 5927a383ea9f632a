"""Before a write: settle the customer's writes that a crash or a lost answer cut off.

After a crash the customer's turn runs again, and so does the confirmed tool call. Calendly may hold the booking the
first run made while the store does not: asked again, Calendly would call the customer's own booking a taken slot.
So every write tool first lets the calendar settle this customer's unfinished writes (`RecoversInterruptedWrites`:
it looks at Calendly and stores what it holds), and a call whose change turns out to be done answers as done.
"""

from __future__ import annotations

import logging
from datetime import datetime

from booking.calendar import CalendarProblem, RecoversInterruptedWrites
from store.models import Appointment, AppointmentStatus
from tools.context import ToolContext

logger = logging.getLogger(__name__)


async def settle_interrupted(ctx: ToolContext) -> list[Appointment]:
    """Settle the customer's unfinished writes and tell the observer (reminders) about each appointment they turned
    out to change; those appointments. Nothing to do on the local calendar, or for a customer not stored yet."""
    calendar = ctx.services.calendar
    if not isinstance(calendar, RecoversInterruptedWrites):
        return []
    client = await ctx.services.clients.get(ctx.turn.wa_id)
    if client is None:
        return []
    try:
        settled = await calendar.settle(client.id)
    except CalendarProblem as exc:
        # The calendar cannot be asked now; the write itself settles its own earlier attempt before writing again.
        logger.warning("unfinished writes not settled", extra={"code": exc.code})
        return []
    for appointment in settled:
        await ctx.services.notify_changed(appointment)
    return settled


def settled_change(
    settled: list[Appointment],
    *,
    status: AppointmentStatus,
    appointment_id: str | None = None,
    service: str | None = None,
    start: datetime | None = None,
) -> Appointment | None:
    """The settled appointment that is exactly the change a tool call asks for (same id, service or start, where
    given, and the status the change leaves), if one is."""
    for appointment in settled:
        if (
            appointment.status == status
            and appointment_id in (None, appointment.id)
            and service in (None, appointment.service)
            and start in (None, appointment.start_at)
        ):
            return appointment
    return None
