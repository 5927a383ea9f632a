"""Delivering the outbox: claim, send, record; transient failures retried for hours (Retry-After honoured), the
backlog re-driven when Twilio answers again, final failures reported to staff, and sends a dead worker left
unrecorded looked up at Twilio before they go again.

The rules of what a row becomes on the wire are in `delivery_plan`, the retry schedule in `delivery_retry`, how an
outcome is recorded in `delivery_outcomes`, and the recovery of interrupted sends in `delivery_recovery`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import timedelta

from core.clock import Clock
from core.settings import Settings
from integrations.twilio.transport import MessageTransport, OutgoingMessage, SendFailure
from server.ops.metrics import ServerMetrics
from server.pipeline.delivery_outcomes import DeliveryOutcomes
from server.pipeline.delivery_plan import SERVICE_WINDOW, MessagePlanner
from server.pipeline.delivery_recovery import StuckSendRecovery
from server.pipeline.delivery_retry import RetryPolicy
from server.pipeline.undeliverable import UndeliverableAlert
from store.conversations import ConversationRepository
from store.outbox import OutboxRepository
from store.outbox_message import OutboxMessage

logger = logging.getLogger(__name__)

# What a caller needs to build a Delivery, in one place; SERVICE_WINDOW (the rules of what a row becomes) has long
# been imported from here.
__all__ = ["DEFAULT_STUCK_AFTER", "SERVICE_WINDOW", "Delivery", "RetryPolicy", "UndeliverableAlert", "templates_from"]

# A row 'sending' for longer than this was left by a dead worker (or its send got no answer). Well beyond the 10 s
# bound of one send, so a slow but live send is never taken for a dead one (and unrelated to the conversation lease).
DEFAULT_STUCK_AFTER = timedelta(seconds=30)


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
        retry: RetryPolicy | None = None,
        stuck_after: timedelta = DEFAULT_STUCK_AFTER,
        concurrency: int = 8,
        question_buttons_sid: str | None = None,
        alert: UndeliverableAlert | None = None,
    ) -> None:
        """`retry`: the schedule for transient failures; `stuck_after`: when a 'sending' row counts as abandoned;
        `question_buttons_sid`: the quick-reply content confirmation questions go out with (else plain text);
        `alert`: tells staff about messages that failed for good (None: logged and counted only)."""
        self._outbox = outbox
        self._transport = transport
        self._clock = clock
        self._limit = asyncio.Semaphore(concurrency)
        retry = retry or RetryPolicy()
        self._planner = MessagePlanner(
            outbox=outbox, conversations=conversations, templates=templates, question_buttons_sid=question_buttons_sid
        )
        self._outcomes = DeliveryOutcomes(
            outbox=outbox, clock=clock, metrics=metrics, transport_name=transport.name, retry=retry, alert=alert
        )
        self._recovery = StuckSendRecovery(
            outbox=outbox,
            transport=transport,
            planner=self._planner,
            outcomes=self._outcomes,
            clock=clock,
            retry=retry,
            stuck_after=stuck_after,
        )

    @property
    def transport_name(self) -> str:
        """Which transport is in use ('twilio' or 'log')."""
        return self._transport.name

    async def deliver_due(self) -> int:
        """Send every row that is due now; returns how many rows were handled."""
        rows = await self._outbox.due(now=self._clock.now())
        results = await asyncio.gather(*(self._guarded(row) for row in rows))
        return sum(results)

    async def recover(self) -> int:
        """Settle the rows a dead worker left 'sending': recorded as sent when Twilio holds the message, else
        pending again (due now). Returns how many were settled."""
        return await self._recovery.recover()

    async def _guarded(self, row: OutboxMessage) -> int:
        async with self._limit:
            return await self.deliver(row)

    async def deliver(self, row: OutboxMessage) -> int:
        """Claim and send one row; 0 when another worker had claimed it."""
        # The claim (and its time) is written before the request goes out: if this worker dies before recording the
        # answer, recovery knows since when to look for the message at Twilio.
        if not await self._outbox.claim(row.id, now=self._clock.now()):
            return 0
        prepared = await self._prepare(row)
        if prepared is None:
            return 1
        message, covering = prepared
        try:
            provider_id = await self._transport.send(message)
        except SendFailure as failure:
            await self._outcomes.failed(row, failure, covering)
            return 1
        await self._outcomes.sent(row, sid=provider_id, message=message, covering=covering)
        return 1

    async def _prepare(self, row: OutboxMessage) -> tuple[OutgoingMessage, list[int]] | None:
        """The message to send for `row`, and the other rows that one send stands for (None: nothing to send)."""
        message = await self._planner.compose(row, at=self._clock.now())
        if message is None:
            await self._outcomes.outside_window(row)
            return None
        group = await self._planner.group(row, message)
        if group.sent_by is not None:
            await self._outcomes.covered(row, group.sent_by)
            return None
        return message, group.covering
