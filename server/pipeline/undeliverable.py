"""Telling staff about a message that will never reach its customer (refused by Twilio, or given up on).

One alert per customer and turn: the parts of a split reply, or a turn's several messages, failing together are one
problem for staff to act on. The alert goes through the outbox like any message (kind 'staff', so outside the staff
number's 24-hour window the staff-alert template goes); an alert that cannot be delivered itself raises no alert.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Literal

from core.addresses import as_whatsapp_address, phone_of
from core.business import Business
from core.quoting import one_line
from prompts import render_localized
from server.pipeline.outbox import Outbox
from server.wording import staff_alert_variables
from store.clients import ClientRepository
from store.outbox_message import OutboxMessage

logger = logging.getLogger(__name__)

# Why nothing more will be tried: Twilio refused the message for good; it kept failing transiently until the retry
# schedule gave up; or it kept failing until WhatsApp's 24-hour window closed and its kind has no template.
Cause = Literal["refused", "gave_up", "window_closed"]

# How much of the lost message staff see: enough to recognise it and tell the customer by other means.
EXCERPT_CHARS = 300


class UndeliverableAlert:
    """Queues the staff alert for an outbox row that failed for good."""

    def __init__(self, outbox: Outbox, clients: ClientRepository, business: Business, staff_number: str | None) -> None:
        """`staff_number` is STAFF_WHATSAPP_NUMBER; without it the failure is only logged."""
        self._outbox = outbox
        self._clients = clients
        self._business = business
        self._staff = as_whatsapp_address(staff_number) if staff_number else None

    async def alert(
        self, row: OutboxMessage, *, cause: Cause, detail: str | None = None, retried_for: timedelta | None = None
    ) -> bool:
        """Queue one alert about `row` (once per customer and turn); whether one was queued. `detail`: Twilio's
        refusal; `retried_for`: how long transient failures were retried (for 'gave_up')."""
        if row.kind == "staff" or row.wa_id == self._staff:
            # Staff alerts failing would alert about themselves for ever; the log and the metric report them.
            return False
        if self._staff is None:
            logger.warning("undeliverable message; no STAFF_WHATSAPP_NUMBER to alert", extra={"outbox_id": row.id})
            return False
        client = await self._clients.get(row.wa_id)
        name = client.display_name if client else None
        text = render_localized(
            "messages/staff_undeliverable",
            self._business.language,
            customer=phone_of(row.wa_id),
            name=name,
            cause=cause,
            detail=one_line(detail, limit=200) if detail else None,
            hours=f"{(retried_for or timedelta(0)) / timedelta(hours=1):g}",
            text=one_line(row.body, limit=EXCERPT_CHARS),
        )
        # The staff-alert template: {{1}} who, {{2}} name, {{3}} the reason, on one line as template variables must be.
        variables = staff_alert_variables(phone_of(row.wa_id), name, text)
        ids = await self._outbox.enqueue(
            self._staff, text, kind="staff", template_variables=variables, dedupe_key=alert_key(row)
        )
        return bool(ids)


def alert_key(row: OutboxMessage) -> str:
    """The dedupe key of the alert about `row`: its turn (the customer message it answers), else the message it is
    a part of (the parts of one split text share a key up to '#'), else the row itself."""
    if row.inbound_message_id is not None:
        return f"undeliverable:turn:{row.inbound_message_id}"
    if row.dedupe_key is not None:
        return f"undeliverable:message:{row.dedupe_key.split('#', 1)[0]}"
    return f"undeliverable:row:{row.id}"
