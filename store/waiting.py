"""Customers left waiting: turns that failed or hang while the customer's message goes unanswered.

The worker retries a failed turn for a long time (the model provider may be down for minutes); meanwhile the
customer hears one holding message, queued here once per waiting turn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from store.database import Database, Work, parse_datetime
from store.outbox_insert import insert_outbox

# The dedupe key of a turn's holding message: one per turn, however many passes see it waiting.
_KEY_PREFIX, _KEY_SUFFIX = "turn:customer:", ":holding"


@dataclass(frozen=True)
class LongWait:
    """A customer whose oldest unanswered message has waited too long (its turn failed, or is still running)."""

    wa_id: str
    first_message_id: int
    received_at: datetime


async def long_waits(db: Database, *, received_before: datetime, limit: int = 100) -> list[LongWait]:
    """Conversations whose first open message arrived before `received_before` and whose turn is in trouble.

    In trouble means a turn over it already failed (`attempts` > 0), or one has been running on it since before
    `received_before` ('processing', started at `processed_at`). A message merely queued behind busy turn slots, or
    stored late from the webhook spool after a database outage, is not: its turn has not started or failed yet.
    Conversations already sent a holding message for that first message are left out.
    """
    rows = await db.fetch_all(
        "SELECT m.wa_id, m.id, m.received_at FROM inbound_messages m "
        "WHERE m.status IN ('pending', 'processing') AND m.received_at < :before "
        "AND (m.attempts > 0 OR (m.status = 'processing' AND m.processed_at < :before)) "
        "AND NOT EXISTS (SELECT 1 FROM inbound_messages e WHERE e.wa_id = m.wa_id AND e.id < m.id "
        "AND e.status IN ('pending', 'processing')) "
        "AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.dedupe_key = "
        ":prefix || CAST(m.id AS TEXT) || :suffix) "
        "ORDER BY m.id LIMIT :limit",
        # The first part's key, as `insert_outbox` writes it.
        {"before": received_before, "limit": limit, "prefix": _KEY_PREFIX, "suffix": _KEY_SUFFIX + "#0"},
    )
    waits = []
    for r in rows:
        received = parse_datetime(r["received_at"])
        assert received is not None  # NOT NULL column
        waits.append(LongWait(str(r["wa_id"]), int(r["id"]), received))
    return waits


async def queue_holding(db: Database, wait: LongWait, parts: Sequence[str], *, now: datetime) -> bool:
    """Queue the holding message for `wait` unless it is already queued (or the message got answered meanwhile).

    The answered check and the insert share one transaction, so a turn finishing at the same moment either
    commits first (no holding message) or after (the customer gets the holding message just before the answer).
    """
    async with db.transaction() as conn:
        still_open = await conn.fetch_value(
            "SELECT COUNT(*) FROM inbound_messages WHERE id = :id AND status IN ('pending', 'processing')",
            {"id": wait.first_message_id},
        )
        if not still_open:
            return False
        ids = await insert_outbox(
            conn,
            wa_id=wait.wa_id,
            parts=parts,
            kind="system",
            now=now,
            inbound_message_id=wait.first_message_id,
            dedupe_key=f"{_KEY_PREFIX}{wait.first_message_id}{_KEY_SUFFIX}",
        )
    return bool(ids)


async def redrive_failed_turns(db: Database, *, now: datetime) -> int:
    """Make every turn waiting out a failure backoff due now; returns how many messages and events it moved.

    Called when a turn succeeds after failures (the model is back): the backlog of the outage is answered at once
    instead of at each turn's next scheduled retry, up to a quarter of an hour away.
    """
    async with db.transaction() as conn:
        moved = 0
        for table in ("inbound_messages", "system_events"):
            moved += await conn.execute(
                f"UPDATE {table} SET next_attempt_at = :now "  # noqa: S608 - table names are the literals above
                "WHERE status = 'pending' AND attempts > 0 AND next_attempt_at > :now",
                {"now": now},
            )
        if moved:
            await conn.notify(Work.TURN)
    return moved
