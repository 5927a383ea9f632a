"""Sends in flight: rows a dead worker left 'sending', settling them once Twilio has been asked, and re-driving the
rows that wait out a backoff once Twilio answers again.

Every change here is conditional on the row still being 'sending' under the claim that was looked at, so a slow but
live worker recording its own answer, or a second worker recovering the same row, is never overwritten.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from store.database import Database, in_list
from store.outbox_insert import mark_covered
from store.outbox_message import OUTBOX_COLUMNS, OutboxMessage

# The claim of a row written before `claimed_at` existed is its last update (the claim was its last write then).
_CLAIMED = "COALESCE(claimed_at, updated_at)"


def claim_time(row: OutboxMessage) -> datetime:
    """When `row` was taken for its current send."""
    return row.claimed_at or row.updated_at


async def stuck_rows(db: Database, *, claimed_before: datetime, limit: int = 100) -> list[OutboxMessage]:
    """Rows still 'sending' whose claim is older than `claimed_before`, oldest first."""
    rows = await db.fetch_all(
        f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE status = 'sending' AND {_CLAIMED} < :before ORDER BY id "
        "LIMIT :limit",
        {"before": claimed_before, "limit": limit},
    )
    return [OutboxMessage.model_validate(r) for r in rows]


async def settle_found(
    db: Database,
    row: OutboxMessage,
    *,
    twilio_sid: str,
    now: datetime,
    template_sid: str | None,
    covering: Sequence[int] = (),
) -> bool:
    """Twilio holds the message a dead worker sent for `row`: record it as sent with that SID (one more attempt).

    False when the row moved on meanwhile (its worker was alive after all, or another worker settled it).
    `covering` are the rows of the template group that one send stood for, as in `OutboxRepository.mark_sent`.
    """
    async with db.transaction() as conn:
        changed = await conn.execute(
            "UPDATE outbox SET status = 'sent', twilio_sid = :sid, template_sid = COALESCE(:template, template_sid), "
            "error_code = NULL, error_message = NULL, attempts = attempts + 1, sent_at = COALESCE(sent_at, :now), "
            f"updated_at = :now WHERE id = :id AND status = 'sending' AND {_CLAIMED} = :claimed",
            {"id": row.id, "sid": twilio_sid, "template": template_sid, "now": now, "claimed": claim_time(row)},
        )
        if changed != 1:
            return False
        await mark_covered(conn, covering, by=row.id, template_sid=template_sid, now=now)
    return True


async def requeue_stuck(db: Database, row: OutboxMessage, *, now: datetime) -> bool:
    """Twilio does not hold `row`'s message (or cannot tell): back to pending, due now. False if it moved on."""
    changed = await db.execute(
        "UPDATE outbox SET status = 'pending', next_attempt_at = :now, updated_at = :now "
        f"WHERE id = :id AND status = 'sending' AND {_CLAIMED} = :claimed",
        {"id": row.id, "now": now, "claimed": claim_time(row)},
    )
    return changed == 1


async def await_check(db: Database, outbox_id: int, *, now: datetime, error_code: str | None, message: str) -> None:
    """A send whose outcome is unknown (the request went out, no answer came): the row stays 'sending' under its
    claim, one more attempt recorded, so recovery asks Twilio before anything is sent again."""
    await db.execute(
        "UPDATE outbox SET attempts = attempts + 1, error_code = :code, error_message = :message, updated_at = :now "
        "WHERE id = :id AND status = 'sending'",
        {"id": outbox_id, "now": now, "code": error_code, "message": message},
    )


async def recorded_sids(db: Database, sids: Collection[str]) -> set[str]:
    """Which of `sids` some outbox row records."""
    if not sids:
        return set()
    placeholders, params = in_list(list(sids), "sid")
    rows = await db.fetch_all(f"SELECT twilio_sid FROM outbox WHERE twilio_sid IN ({placeholders})", params)
    return {str(r["twilio_sid"]) for r in rows}


async def redrive_waiting(db: Database, *, now: datetime) -> int:
    """Make every row waiting out a transient backoff due now (Twilio answers again); rows that Twilio's Retry-After
    holds back keep their time. `due()` still hands out a customer's rows one at a time, in order."""
    # A read first: this runs after every successful send, and a write (SQLite's database lock) only when needed.
    waiting = await db.fetch_one(
        "SELECT id FROM outbox WHERE status = 'pending' AND next_attempt_at > :now AND attempts > 0 LIMIT 1",
        {"now": now},
    )
    if waiting is None:
        return 0
    return await db.execute(
        "UPDATE outbox SET next_attempt_at = :now, updated_at = :now WHERE status = 'pending' "
        "AND next_attempt_at > :now AND attempts > 0 AND (retry_not_before IS NULL OR retry_not_before <= :now)",
        {"now": now},
    )
