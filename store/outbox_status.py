"""Twilio's delivery status callbacks on outbox rows: the status ladder, and callbacks that arrive before the SID."""

from __future__ import annotations

from datetime import datetime, timedelta

from store.database import Connection, Database
from store.outbox_message import OUTBOX_COLUMNS, OutboxMessage

# Twilio's status callbacks can arrive out of order; a status never moves back down this ladder.
_STATUS_RANK = {"pending": 0, "sending": 1, "sent": 2, "delivered": 3, "read": 4, "failed": 5, "undeliverable": 5}

# A callback whose SID no row ever records (e.g. the worker died between Twilio's answer and `mark_sent`) is kept
# this long, then pruned: Twilio reports a message's statuses within minutes, a day is generous.
EARLY_STATUS_RETENTION = timedelta(days=1)


async def record_status(
    db: Database, twilio_sid: str, *, status: str, now: datetime, error_code: str | None, error_message: str | None
) -> OutboxMessage | None:
    """Record a delivery status reported by Twilio. Never downgrades a status.

    Twilio can call back before `mark_sent` has stored the SID (the callback races the create response). Such a
    callback is kept in `outbox_early_status` and applied when the SID is recorded; None is returned then.
    """
    async with db.transaction() as conn:
        row = await conn.fetch_one(f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE twilio_sid = :sid", {"sid": twilio_sid})
        if row is not None:
            return await _apply(conn, OutboxMessage.model_validate(row), status, error_code, error_message, now)
        await conn.execute(
            "INSERT INTO outbox_early_status (twilio_sid, status, error_code, error_message, received_at) "
            "VALUES (:sid, :status, :code, :message, :now)",
            {"sid": twilio_sid, "status": status, "code": error_code, "message": error_message, "now": now},
        )
        await conn.execute(
            "DELETE FROM outbox_early_status WHERE received_at < :cutoff", {"cutoff": now - EARLY_STATUS_RETENTION}
        )
    # Re-check after the commit: if `mark_sent` stored the SID meanwhile, it may have looked for early callbacks
    # before this one was committed. One of the two sides always sees the other; applying twice is harmless.
    return await apply_early_statuses(db, twilio_sid, now=now)


async def apply_early_statuses(db: Database, twilio_sid: str, *, now: datetime) -> OutboxMessage | None:
    """Apply (and forget) the callbacks kept for `twilio_sid`, once a row has that SID; the row, or None."""
    # Almost always there are none: one read tells, without a transaction.
    kept = await db.fetch_value(
        "SELECT COUNT(*) AS n FROM outbox_early_status WHERE twilio_sid = :sid", {"sid": twilio_sid}
    )
    if not kept:
        return None
    async with db.transaction() as conn:
        early = await conn.fetch_all(
            "SELECT status, error_code, error_message FROM outbox_early_status WHERE twilio_sid = :sid ORDER BY id",
            {"sid": twilio_sid},
        )
        if not early:
            return None
        row = await conn.fetch_one(f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE twilio_sid = :sid", {"sid": twilio_sid})
        if row is None:
            return None
        current = OutboxMessage.model_validate(row)
        # In arrival order: `_apply` keeps the highest status, and the error of the callback that set it.
        for callback in early:
            current = await _apply(
                conn, current, str(callback["status"]), callback["error_code"], callback["error_message"], now
            )
        await conn.execute("DELETE FROM outbox_early_status WHERE twilio_sid = :sid", {"sid": twilio_sid})
        return current


async def _apply(
    conn: Connection,
    current: OutboxMessage,
    status: str,
    error_code: str | None,
    error_message: str | None,
    now: datetime,
) -> OutboxMessage:
    """Move `current` to `status` if that is further along the ladder; the row as it is afterwards."""
    if _STATUS_RANK.get(status, 0) > _STATUS_RANK.get(current.status, 0):
        await conn.execute(
            "UPDATE outbox SET status = :status, error_code = COALESCE(:code, error_code), "
            "error_message = COALESCE(:message, error_message), updated_at = :now WHERE id = :id",
            {"id": current.id, "status": status, "code": error_code, "message": error_message, "now": now},
        )
    row = await conn.fetch_one(f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE id = :id", {"id": current.id})
    assert row is not None
    return OutboxMessage.model_validate(row)
