"""Staff takeover requested by the agent: alert the staff number and pause the assistant for that customer."""

from __future__ import annotations

import logging

from core.addresses import as_whatsapp_address, phone_of
from core.business import Business
from core.clock import Clock
from core.quoting import MAX_CHARS
from server.pipeline.outbox import Outbox, current_turn
from server.wording import staff_alert_variables, staff_handoff_alert
from store.clients import ClientRepository
from store.conversations import HANDOFF_PAUSED_BY, ConversationRepository

logger = logging.getLogger(__name__)

PAUSED_BY = HANDOFF_PAUSED_BY


class StaffAlertHandoff:
    """The production `tools.context.StaffHandoff`: pause first (so no later message gets a bot answer), then alert."""

    def __init__(
        self,
        *,
        conversations: ConversationRepository,
        clients: ClientRepository,
        outbox: Outbox,
        business: Business,
        clock: Clock,
        staff_number: str | None,
    ) -> None:
        self._conversations = conversations
        self._clients = clients
        self._outbox = outbox
        self._business = business
        self._clock = clock
        self._staff = as_whatsapp_address(staff_number) if staff_number else None

    async def hand_off(self, wa_id: str, reason: str) -> None:
        """Pause the assistant for `wa_id` and queue an alert to STAFF_WHATSAPP_NUMBER (if configured)."""
        await self._conversations.set_paused(wa_id, paused=True, by=PAUSED_BY, now=self._clock.now())
        if self._staff is None:
            logger.warning("handoff without STAFF_WHATSAPP_NUMBER: conversation paused, nobody alerted")
            return
        client = await self._clients.get(wa_id)
        name = client.display_name if client else None
        alert = staff_handoff_alert(wa_id=wa_id, customer_name=name, reason=reason, business=self._business)
        # Staff rarely write to the business number, so outside their 24-hour window the staff-alert template goes.
        # Template variables must be non-empty single lines (Twilio refuses others); the reason is the model's text.
        variables = staff_alert_variables(phone_of(wa_id), name, reason, limit=MAX_CHARS)
        # Keyed on the turn like every message the agent sends: a turn re-run after a crash alerts staff once.
        scope = current_turn()
        dedupe_key = scope.next_dedupe_key() if scope is not None and scope.wa_id == wa_id else None
        await self._outbox.enqueue(
            self._staff, alert, kind="staff", template_variables=variables, dedupe_key=dedupe_key
        )
