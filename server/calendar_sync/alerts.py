"""Telling staff about a Calendly booking that matched no WhatsApp customer.

Such a booking is stored without a customer rather than guessed: matching it by an e-mail address a customer merely
typed would show (and let them cancel) somebody else's appointment. Staff are the ones who can still reach the person,
so they get one short alert per booking, with as little personal data as lets them recognise it.
"""

from __future__ import annotations

import logging

from agent.event_texts import local_when
from core.addresses import as_whatsapp_address
from core.business import Business
from prompts import render_localized
from server.pipeline.outbox import Outbox
from server.wording import staff_alert_variables
from store.models import Appointment

logger = logging.getLogger(__name__)


def mask_email(email: str | None) -> str | None:
    """'maria.lopez@example.com' -> 'm***@example.com': enough for staff to recognise it, not to read it out."""
    if not email or not email.strip():
        return None
    local, at, domain = email.strip().rpartition("@")
    if not at or not local or not domain:
        return "***"
    return f"{local[0]}***@{domain}"


class UnmatchedBookingAlert:
    """Queues the staff alert for a Calendly booking stored without a customer (once per appointment)."""

    def __init__(self, *, outbox: Outbox, business: Business, staff_number: str | None) -> None:
        """`staff_number` is STAFF_WHATSAPP_NUMBER; without it the alert is only a warning in the log."""
        self._outbox = outbox
        self._business = business
        self._staff = as_whatsapp_address(staff_number) if staff_number else None

    async def unmatched(self, appointment: Appointment, invitee_email: str | None) -> None:
        """Alert staff that `appointment`, booked on Calendly by `invitee_email`, belongs to no known customer."""
        if self._staff is None:
            # The appointment id is enough to find it; the invitee's address stays out of the log.
            logger.warning(
                "calendly booking matched no WhatsApp customer; no STAFF_WHATSAPP_NUMBER to alert",
                extra={"appointment": appointment.id},
            )
            return
        masked = mask_email(invitee_email)
        text = render_localized(
            "messages/staff_unmatched_booking",
            self._business.language,
            service=appointment.service,
            when=local_when(appointment.start_at, self._business),
            appointment_id=appointment.id,
            email=masked,
        )
        # Outside the staff number's 24-hour window the staff-alert template goes: {{1}} who, {{2}} name (withheld:
        # Calendly's name is unverified and not needed), {{3}} the reason, on one line as template variables must be.
        variables = staff_alert_variables(masked or "Calendly", None, text)
        # Keyed on the appointment, which the webhook and the sync share: a booking is reported once, however often
        # its delivery is applied or synced again.
        await self._outbox.enqueue(
            self._staff,
            text,
            kind="staff",
            template_variables=variables,
            dedupe_key=f"calendly-unmatched:{appointment.id}",
        )
