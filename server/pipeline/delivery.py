"""Delivering the outbox: WhatsApp's 24-hour rule, templates, retries with backoff, final failures recorded."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import timedelta

from core.clock import Clock
from core.settings import Settings
from integrations.twilio.transport import MessageTransport, OutgoingMessage, SendFailure
from server.ops.metrics import ServerMetrics
from store.conversations import ConversationRepository
from store.outbox import OutboxRepository
from store.outbox_message import OutboxMessage

logger = logging.getLogger(__name__)

# WhatsApp accepts free text only within 24 hours of the customer's last message.
SERVICE_WINDOW = timedelta(hours=24)

# Rows that would become the same template request and were queued this close together are one message (the parts
# of a split text, or a turn's messages of one kind): the template goes once. Legitimate repeats with the same
# variables, like an appointment's successive reminders, are hours apart.
TEMPLATE_GROUP_SPAN = timedelta(minutes=15)

# Statuses of a row whose request Twilio accepted.
_WENT_OUT = frozenset({"sent", "delivered", "read"})


def templates_from(settings: Settings) -> dict[str, str]:
    """The approved template (ContentSid) per outbound kind, for the kinds that have one configured."""
    configured = {
        "confirmation": settings.twilio_template_confirmation_sid,
        "cancellation": settings.twilio_template_cancellation_sid,
        "reminder": settings.twilio_template_reminder_sid,
        "staff": settings.twilio_template_staff_alert_sid,
    }
    return {kind: sid for kind, sid in configured.items() if sid}


class Delivery:
    """Sends due outbox rows through a transport. Safe with several workers: each row is claimed before sending."""

    def __init__(
        self,
        *,
        outbox: OutboxRepository,
        conversations: ConversationRepository,
        transport: MessageTransport,
        clock: Clock,
        templates: Mapping[str, str],
        metrics: ServerMetrics,
        max_attempts: int = 5,
        backoff_seconds: float = 2.0,
        concurrency: int = 8,
        question_buttons_sid: str | None = None,
    ) -> None:
        """`question_buttons_sid`: the quick-reply content confirmation questions go out with (else plain text)."""
        self._question_buttons = question_buttons_sid
        self._outbox = outbox
        self._conversations = conversations
        self._transport = transport
        self._clock = clock
        self._templates = dict(templates)
        self._metrics = metrics
        self._max_attempts = max_attempts
        self._backoff = backoff_seconds
        self._limit = asyncio.Semaphore(concurrency)

    @property
    def transport_name(self) -> str:
        """Which transport is in use ('twilio' or 'log')."""
        return self._transport.name

    async def deliver_due(self) -> int:
        """Send every row that is due now; returns how many rows were handled."""
        rows = await self._outbox.due(now=self._clock.now())
        results = await asyncio.gather(*(self._guarded(row) for row in rows))
        return sum(results)

    async def recover(self, *, stuck_after: timedelta) -> int:
        """Requeue rows a dead worker left 'sending' (they may go out twice: Twilio has no idempotency key)."""
        now = self._clock.now()
        return await self._outbox.recover_stuck(before=now - stuck_after, now=now)

    async def _guarded(self, row: OutboxMessage) -> int:
        async with self._limit:
            return await self.deliver(row)

    async def deliver(self, row: OutboxMessage) -> int:
        """Claim and send one row; 0 when another worker had claimed it."""
        if not await self._outbox.claim(row.id, now=self._clock.now()):
            return 0
        prepared = await self._prepare(row)
        if prepared is None:
            return 1
        message, covering = prepared
        try:
            provider_id = await self._transport.send(message)
        except SendFailure as failure:
            await self._failed(row, failure, covering)
            return 1
        early = await self._outbox.mark_sent(
            row.id, twilio_sid=provider_id, now=self._clock.now(), template_sid=message.content_sid, covering=covering
        )
        self._metrics.delivery_attempts.labels(self._transport.name, "sent").inc()
        if early is not None and early.status == "failed":
            # Twilio's failure callback came before the SID was recorded; the webhook could not report it then.
            self._metrics.dependency_errors.labels(self._transport.name).inc()
            logger.warning(
                "twilio reported a failed delivery",
                extra={"outbox_id": row.id, "error_code": early.error_code, "wa_id": row.wa_id},
            )
        if covering:
            logger.info("one template sent for a group of rows", extra={"outbox_id": row.id, "covering": covering})
        return 1

    async def _prepare(self, row: OutboxMessage) -> tuple[OutgoingMessage, list[int]] | None:
        """The message to send for `row`, and the other rows that one send stands for (None: nothing to send)."""
        now = self._clock.now()
        conversation = await self._conversations.get(row.wa_id)
        last_inbound = conversation.last_inbound_at if conversation else None
        if last_inbound is not None and now - last_inbound < SERVICE_WINDOW:
            if row.kind == "question" and self._question_buttons and row.template_variables:
                # Buttons whose payload names this very question: a tap can only confirm what it was asked about.
                buttons = OutgoingMessage(
                    to=row.wa_id, content_sid=self._question_buttons, content_variables=row.template_variables
                )
                return buttons, []
            return OutgoingMessage(to=row.wa_id, body=row.body), []
        template = self._templates.get(row.kind)
        if template is None:
            await self._outbox.mark_failed(
                row.id,
                now=now,
                error_code=None,
                error_message=f"outside WhatsApp's 24-hour window and no approved template for kind {row.kind!r}",
                status="undeliverable",
                attempted=False,
            )
            self._metrics.delivery_attempts.labels(self._transport.name, "undeliverable").inc()
            logger.warning("message undeliverable outside the 24-hour window", extra={"outbox_id": row.id})
            return None
        # The template replaces the text, so the parts of a split message (or two messages of this kind from one
        # turn) would each become this very request: it goes once, for the whole group.
        group = await self._outbox.same_template_rows(row, within=TEMPLATE_GROUP_SPAN)
        already = next((g for g in group if g.template_sid == template and g.status in _WENT_OUT), None)
        if already is not None:
            # A turn's messages are queued (and delivered) one by one, so an earlier one may have gone out already.
            await self._outbox.mark_failed(
                row.id,
                now=now,
                error_code=None,
                error_message=f"covered by the template sent for row {already.id}",
                status="undeliverable",
                attempted=False,
            )
            self._metrics.delivery_attempts.labels(self._transport.name, "covered").inc()
            logger.info("template already sent for this message's group", extra={"outbox_id": row.id})
            return None
        covering = [g.id for g in group if g.status == "pending"]
        return OutgoingMessage(to=row.wa_id, content_sid=template, content_variables=row.template_variables), covering

    async def _failed(self, row: OutboxMessage, failure: SendFailure, covering: list[int]) -> None:
        now = self._clock.now()
        attempts = row.attempts + 1
        self._metrics.dependency_errors.labels(self._transport.name).inc()
        if failure.transient and attempts < self._max_attempts:
            delay = self._backoff * 2 ** (attempts - 1)
            await self._outbox.schedule_retry(
                row.id,
                now=now,
                next_attempt_at=now + timedelta(seconds=delay),
                error_code=failure.code,
                error_message=failure.message,
            )
            self._metrics.delivery_attempts.labels(self._transport.name, "retry").inc()
            logger.warning(
                "send failed, will retry", extra={"outbox_id": row.id, "attempts": attempts, "status": failure.status}
            )
            return
        # A retry leaves the group pending (the next attempt regroups it); a final failure ends the group with it.
        await self._outbox.mark_failed(
            row.id, now=now, error_code=failure.code, error_message=failure.message, covering=covering
        )
        self._metrics.delivery_attempts.labels(self._transport.name, "failed").inc()
        logger.error(
            "send failed for good",
            extra={"outbox_id": row.id, "attempts": attempts, "error_code": failure.code, "status": failure.status},
        )
