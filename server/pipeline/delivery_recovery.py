"""Sends a dead worker left unrecorded: asked about at Twilio before anything is sent again.

Twilio has no idempotency key, so a row left 'sending' (the worker died between its POST and recording the answer,
or the POST got no answer) may or may not have gone out. The claim time was written before the request; Twilio's
Messages list from then on, to that customer from our number, tells: a message with the row's text (for a template,
any message whose SID no row records, as Twilio lists templates rendered) is that send, recorded without a second
one. Nothing found, or a transport that cannot tell: the row is sent again.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from core.clock import Clock
from integrations.twilio.transport import MessageTransport, SendFailure
from server.pipeline.delivery_outcomes import DeliveryOutcomes
from server.pipeline.delivery_plan import MessagePlanner
from server.pipeline.delivery_retry import RetryPolicy
from store.outbox import OutboxRepository
from store.outbox_message import OutboxMessage
from store.outbox_sending import claim_time

logger = logging.getLogger(__name__)

# The lookup starts this long before the claim: Twilio's clock and ours may differ a little, and a message created
# just before the claim by another worker of ours is told apart by its recorded SID, not by time.
LOOKUP_MARGIN = timedelta(minutes=2)


class StuckSendRecovery:
    """Settles 'sending' rows whose claim is older than `stuck_after` (run from the worker's maintenance)."""

    def __init__(
        self,
        *,
        outbox: OutboxRepository,
        transport: MessageTransport,
        planner: MessagePlanner,
        outcomes: DeliveryOutcomes,
        clock: Clock,
        retry: RetryPolicy,
        stuck_after: timedelta,
    ) -> None:
        self._outbox = outbox
        self._transport = transport
        self._planner = planner
        self._outcomes = outcomes
        self._clock = clock
        self._retry = retry
        self._stuck_after = stuck_after

    async def recover(self) -> int:
        """Settle every stuck row: recorded as sent, or pending again (due now); how many were settled."""
        rows = await self._outbox.stuck(claimed_before=self._clock.now() - self._stuck_after)
        settled = 0
        # One at a time, oldest first: a SID recorded for one row is then not taken for the next.
        for row in rows:
            if await self._settle(row):
                settled += 1
        return settled

    async def _settle(self, row: OutboxMessage) -> bool:
        claimed = claim_time(row)
        # What the row became when it was claimed (None: nothing could go out then, so nothing is there to find).
        message = await self._planner.compose(row, at=claimed)
        sids: list[str] | None = None
        if message is not None:
            try:
                sids = await self._transport.find_sent(message, since=claimed - LOOKUP_MARGIN)
            except SendFailure as failure:
                return await self._unanswered(row, failure)
        found = await self._first_unrecorded(sids or [])
        now = self._clock.now()
        if found is not None and message is not None:
            group = await self._planner.group(row, message)
            settled = await self._outbox.settle_found(
                row, twilio_sid=found, now=now, template_sid=message.content_sid, covering=group.covering
            )
            if settled is None:
                return False  # its worker was alive after all, or another worker settled it
            logger.info("interrupted send found at twilio: recorded, not sent again", extra={"outbox_id": row.id})
            if settled.status == "failed":
                self._outcomes.callback_failure(settled)
            return True
        if not await self._outbox.requeue_stuck(row, now=now):
            return False
        checked = "twilio has no such message" if sids is not None else "this transport cannot tell"
        logger.info("interrupted send goes again", extra={"outbox_id": row.id, "checked": checked})
        return True

    async def _first_unrecorded(self, sids: list[str]) -> str | None:
        recorded = await self._outbox.recorded_sids(sids)
        return next((sid for sid in sids if sid not in recorded), None)

    async def _unanswered(self, row: OutboxMessage, failure: SendFailure) -> bool:
        """Twilio could not be asked. While it is down the row waits for the next pass (sending now would fail too,
        or send twice); once the message is too old to keep trying it fails for good. A lookup Twilio refuses (an
        API key without read access, say) leaves nothing to wait for: the row is sent again."""
        now = self._clock.now()
        if not failure.transient:
            logger.warning(
                "twilio refused the lookup of an interrupted send: sending again",
                extra={"outbox_id": row.id, "status": failure.status, "error_code": failure.code},
            )
            return await self._outbox.requeue_stuck(row, now=now)
        if not self._retry.expired(row.created_at, now):
            logger.warning(
                "could not ask twilio about an interrupted send; will ask again",
                extra={"outbox_id": row.id, "status": failure.status},
            )
            return False
        await self._outcomes.final(
            row,
            cause="gave_up",
            code=failure.code,
            message=f"could not confirm an interrupted send: {failure.message}",
            status=failure.status,
            attempted=False,
        )
        return True
