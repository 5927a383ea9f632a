"""Recording what became of a send: sent (and the waiting backlog re-driven), tried again later, left for a check,
or failed for good (logged, counted and, for a customer's message, reported to staff)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta

from core.clock import Clock
from integrations.twilio.transport import OutgoingMessage, SendFailure
from server.ops.metrics import ServerMetrics
from server.pipeline.delivery_retry import RetryPolicy
from server.pipeline.undeliverable import Cause, UndeliverableAlert
from store.outbox import OutboxRepository
from store.outbox_message import OutboxMessage

logger = logging.getLogger(__name__)


class DeliveryOutcomes:
    """Writes each send's outcome to the outbox, with its metric and log line."""

    def __init__(
        self,
        *,
        outbox: OutboxRepository,
        clock: Clock,
        metrics: ServerMetrics,
        transport_name: str,
        retry: RetryPolicy,
        alert: UndeliverableAlert | None = None,
    ) -> None:
        self._outbox = outbox
        self._clock = clock
        self._metrics = metrics
        self._transport = transport_name
        self._retry = retry
        self._alert = alert

    async def sent(self, row: OutboxMessage, *, sid: str, message: OutgoingMessage, covering: Sequence[int]) -> None:
        """Twilio accepted the message: record it, report a failure callback that came first, re-drive the backlog."""
        early = await self._outbox.mark_sent(
            row.id, twilio_sid=sid, now=self._clock.now(), template_sid=message.content_sid, covering=covering
        )
        self._metrics.delivery_attempts.labels(self._transport, "sent").inc()
        if early is not None and early.status == "failed":
            # Twilio's failure callback came before the SID was recorded; the webhook could not report it then.
            self.callback_failure(early)
        if covering:
            logger.info("one template sent for a group of rows", extra={"outbox_id": row.id, "covering": covering})
        await self.redrive()

    def callback_failure(self, row: OutboxMessage) -> None:
        """A failure Twilio reported by status callback before the SID was recorded (the webhook could not)."""
        self._metrics.dependency_errors.labels(self._transport).inc()
        logger.warning(
            "twilio reported a failed delivery",
            extra={"outbox_id": row.id, "error_code": row.error_code, "wa_id": row.wa_id},
        )

    async def redrive(self) -> int:
        """Twilio answers: rows waiting out a backoff are due now, so a backlog drains in seconds, not at each row's
        next scheduled attempt (Retry-After still holds)."""
        moved = await self._outbox.redrive(now=self._clock.now())
        if moved:
            logger.info("twilio answers again: waiting messages re-driven", extra={"count": moved})
        return moved

    async def failed(self, row: OutboxMessage, failure: SendFailure, covering: Sequence[int]) -> None:
        """A send failed: left for a check (no answer), retried later (transient), or failed for good."""
        now = self._clock.now()
        attempts = row.attempts + 1
        self._metrics.dependency_errors.labels(self._transport).inc()
        if failure.ambiguous:
            # The request may have reached Twilio: sending again blind could send it twice. The row stays 'sending'
            # and recovery asks Twilio whether it holds the message before anything goes again.
            await self._outbox.await_check(row.id, now=now, error_code=failure.code, message=failure.message)
            self._metrics.delivery_attempts.labels(self._transport, "unconfirmed").inc()
            logger.warning("send unanswered, will check before retrying", extra={"outbox_id": row.id})
            return
        if failure.transient:
            plan = self._retry.next_attempt(
                failed_attempts=attempts, created_at=row.created_at, now=now, retry_after=failure.retry_after
            )
            if plan is not None:
                await self._outbox.schedule_retry(
                    row.id,
                    now=now,
                    next_attempt_at=plan.at,
                    not_before=plan.not_before,
                    error_code=failure.code,
                    error_message=failure.message,
                )
                self._metrics.delivery_attempts.labels(self._transport, "retry").inc()
                logger.warning(
                    "send failed, will retry",
                    extra={
                        "outbox_id": row.id,
                        "attempts": attempts,
                        "status": failure.status,
                        "retry_in_seconds": round((plan.at - now).total_seconds(), 1),
                    },
                )
                return
        cause: Cause = "gave_up" if failure.transient else "refused"
        # A retry leaves a template group pending (the next attempt regroups it); a final failure ends it with it.
        await self.final(
            row, cause=cause, code=failure.code, message=failure.message, status=failure.status, covering=covering
        )

    async def final(
        self,
        row: OutboxMessage,
        *,
        cause: Cause,
        code: str | None,
        message: str,
        status: int | None = None,
        attempted: bool = True,
        covering: Sequence[int] = (),
    ) -> None:
        """The row failed for good (with the template group it stood for): recorded, counted, logged, and staff
        alerted (once per customer and turn)."""
        now = self._clock.now()
        attempts = row.attempts + (1 if attempted else 0)
        detail = (f"{code}: {message}" if code else message) if cause == "refused" else None
        if cause == "gave_up":
            hours = self._retry.give_up_after / timedelta(hours=1)
            message = f"gave up after {attempts} attempts in {hours:g} h: {message}"
        await self._outbox.mark_failed(
            row.id, now=now, error_code=code, error_message=message, attempted=attempted, covering=covering
        )
        self._metrics.delivery_attempts.labels(self._transport, "failed").inc()
        logger.error(
            "send failed for good",
            extra={"outbox_id": row.id, "attempts": attempts, "error_code": code, "status": status, "cause": cause},
        )
        if self._alert is not None:
            await self._alert.alert(row, cause=cause, detail=detail, retried_for=self._retry.give_up_after)

    async def outside_window(self, row: OutboxMessage) -> None:
        """No free text outside WhatsApp's 24-hour window, and no approved template for the row's kind."""
        reason = f"outside WhatsApp's 24-hour window and no approved template for kind {row.kind!r}"
        await self._outbox.mark_failed(
            row.id,
            now=self._clock.now(),
            error_code=None,
            error_message=reason,
            status="undeliverable",
            attempted=False,
        )
        self._metrics.delivery_attempts.labels(self._transport, "undeliverable").inc()
        logger.warning("message undeliverable outside the 24-hour window", extra={"outbox_id": row.id})
        if row.attempts > 0 and self._alert is not None:
            # It failed while the window was open (an outage outlasted it): lost to the outage, so staff hear of it.
            # A message queued outside the window in the first place is a known limit, logged and counted only.
            await self._alert.alert(row, cause="window_closed")

    async def covered(self, row: OutboxMessage, sent_by: OutboxMessage) -> None:
        """The template this row would become already went out for its group."""
        await self._outbox.mark_failed(
            row.id,
            now=self._clock.now(),
            error_code=None,
            error_message=f"covered by the template sent for row {sent_by.id}",
            status="undeliverable",
            attempted=False,
        )
        self._metrics.delivery_attempts.labels(self._transport, "covered").inc()
        logger.info("template already sent for this message's group", extra={"outbox_id": row.id})
