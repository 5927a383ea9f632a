"""One holding message for a customer left waiting while the model is down: silence reads as being ignored.

A failed turn is retried for the better part of an hour (see `turns.TURN_RETRY_BACKOFF`). After `after` without an
answer, the customer hears once that there is a technical problem and that the answer will follow; the real
answer then comes when a retry succeeds.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from core.clock import Clock
from integrations.twilio.splitting import split_message
from prompts import render_localized
from store.clients import ClientRepository
from store.database import Database
from store.waiting import long_waits, queue_holding

logger = logging.getLogger(__name__)

# "After about a minute without an answer": long enough that a slow but working turn is not interrupted by it.
HOLDING_AFTER = timedelta(seconds=60)


class HoldingNotifier:
    """Queues the holding message for every conversation whose turn has failed or hung past `after`."""

    def __init__(
        self,
        *,
        db: Database,
        clients: ClientRepository,
        clock: Clock,
        language: str,
        after: timedelta = HOLDING_AFTER,
    ) -> None:
        """`language` is the business's, for customers whose language is not known yet."""
        self._db = db
        self._clients = clients
        self._clock = clock
        self._language = language
        self._after = after

    async def notify_waiting(self) -> int:
        """Queue holding messages now due; returns how many were queued (0 when none is due)."""
        now = self._clock.now()
        queued = 0
        for wait in await long_waits(self._db, received_before=now - self._after):
            client = await self._clients.get(wait.wa_id)
            language = (client.language if client else None) or self._language
            parts = split_message(render_localized("messages/holding", language))
            if await queue_holding(self._db, wait, parts, now=now):
                queued += 1
                logger.warning(
                    "customer kept waiting by a failing turn; holding message queued",
                    extra={"wa_id": wait.wa_id, "waited_seconds": round((now - wait.received_at).total_seconds())},
                )
        return queued
