"""Taking in a WhatsApp message: deduplicate, rate-limit, respect a staff takeover, store. No model runs here."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, cast

from core.business import Business
from core.clock import Clock
from integrations.twilio.models import TwilioInbound
from server.ops.metrics import ServerMetrics
from server.pipeline.outbox import Outbox
from server.wording import rate_limit_notice
from store.clients import ClientRepository
from store.conversations import ConversationRepository
from store.inbound import InboundRepository
from store.intake_status import IntakeRules

logger = logging.getLogger(__name__)

IntakeStatus = Literal["pending", "duplicate", "rate_limited", "paused"]


@dataclass(frozen=True)
class IntakeResult:
    """How a message was stored (or that it was a retry of one already stored)."""

    status: IntakeStatus
    message_id: int | None


class InboundIntake:
    """Stores inbound messages durably, once per MessageSid, and wakes the worker."""

    def __init__(
        self,
        *,
        inbound: InboundRepository,
        conversations: ConversationRepository,
        outbox: Outbox,
        business: Business,
        clock: Clock,
        metrics: ServerMetrics,
        rate_limit_per_minute: int,
        rate_window: timedelta = timedelta(minutes=1),
        notice_cooldown: timedelta = timedelta(hours=1),
        on_stored: Callable[[], None] | None = None,
        clients: ClientRepository | None = None,
    ) -> None:
        """`clients` tells the customer's language for the rate-limit notice (else the business's)."""
        self._clients = clients
        self._inbound = inbound
        self._conversations = conversations
        self._outbox = outbox
        self._business = business
        self._clock = clock
        self._metrics = metrics
        self._limit = rate_limit_per_minute
        self._window = rate_window
        self._notice_cooldown = notice_cooldown
        self._on_stored = on_stored

    async def accept(
        self, message: TwilioInbound, raw: Mapping[str, str], *, received_at: datetime | None = None
    ) -> IntakeResult:
        """Store `message` (status pending, rate_limited or paused); a Twilio retry is recognised and ignored.

        `received_at` is when the message reached us (now by default): a message drained from the spool after a
        database outage keeps its arrival time, for ordering, the rate limit and WhatsApp's 24-hour window.
        """
        wa_id = message.address_of_sender
        now = received_at or self._clock.now()
        # One transaction: the status (staff takeover, rate limit) read, the message stored and its 24-hour window
        # opened together (a crash in between would lose the window).
        stored = await self._inbound.receive(
            message_sid=message.message_sid,
            wa_id=wa_id,
            body=message.text_for_agent(),
            received_at=now,
            profile_name=message.profile_name,
            button_payload=message.button_payload,
            media=[item.model_dump() for item in message.media],
            raw=dict(raw),
            rules=IntakeRules(limit=self._limit, since=now - self._window),
        )
        if stored is None:  # a Twilio retry, or the same MessageSid stored concurrently by another request
            existing = await self._inbound.get_by_sid(message.message_sid)
            if existing is None:
                return IntakeResult("duplicate", None)
            # Idempotent; heals rows stored before the message and its window were written in one transaction.
            await self._conversations.record_inbound(existing.wa_id, at=existing.received_at)
            return IntakeResult("duplicate", existing.id)
        status = cast(IntakeStatus, stored.status)
        self._metrics.inbound_messages.labels(status).inc()
        if status == "rate_limited":
            await self._notify_rate_limited(wa_id, stored.id)
        elif status == "pending" and self._on_stored is not None:
            self._on_stored()
        logger.info("whatsapp message stored", extra={"wa_id": wa_id, "status": status, "message_id": stored.id})
        return IntakeResult(status, stored.id)

    async def _notify_rate_limited(self, wa_id: str, message_id: int) -> None:
        now = self._clock.now()
        if await self._conversations.claim_rate_notice(wa_id, now=now, not_since=now - self._notice_cooldown):
            client = await self._clients.get(wa_id) if self._clients is not None else None
            notice = rate_limit_notice(self._business, client.language if client else None)
            await self._outbox.enqueue(wa_id, notice, kind="system", inbound_message_id=message_id)
            logger.warning("sender over the rate limit; notice queued", extra={"wa_id": wa_id})
