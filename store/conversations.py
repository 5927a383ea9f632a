"""Per-conversation state: staff takeover, WhatsApp's 24-hour window, the rate-limit notice and the worker lease."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from store.database import Connection, Database, Work

# `paused_by` of a conversation the assistant handed to staff (server/pipeline/handoff.py sets it; capture reads it).
HANDOFF_PAUSED_BY = "assistant:handoff"
_COLUMNS = "wa_id, paused, paused_by, paused_at, last_inbound_at, rate_notice_at, lease_owner, lease_until, updated_at"


class Conversation(BaseModel):
    """One customer's conversation as the server tracks it (the agent's memory lives in the checkpointer)."""

    model_config = ConfigDict(frozen=True)

    wa_id: str
    paused: bool = False
    paused_by: str | None = None
    paused_at: datetime | None = None
    last_inbound_at: datetime | None = None
    rate_notice_at: datetime | None = None
    lease_owner: str | None = None
    lease_until: datetime | None = None
    updated_at: datetime


class LeaseLost(Exception):
    """The worker no longer holds the conversation's lease: another worker may be running it, so stop."""


async def fence_lease(conn: Connection, wa_id: str, *, owner: str, now: datetime) -> None:
    """Inside a caller's transaction, check that `owner` still holds the lease on `wa_id`; raise LeaseLost if not.

    The UPDATE (not a SELECT) takes the row lock on PostgreSQL, so an `acquire_lease` by another worker waits for
    this transaction and then sees the outcome: a turn's result is either recorded under its lease or not at all.
    """
    changed = await conn.execute(
        "UPDATE conversations SET updated_at = :now WHERE wa_id = :wa_id AND lease_owner = :owner",
        {"wa_id": wa_id, "owner": owner, "now": now},
    )
    if changed != 1:
        raise LeaseLost(wa_id)


async def release_when_done_in(conn: Connection, wa_id: str, *, owner: str, now: datetime) -> bool:
    """Inside the caller's transaction (the one recording a turn's answer): give the conversation back if `owner`
    holds it and nothing of it is due to run (the check the worker's next pass would make, without a pass)."""
    due = (
        "SELECT 1 FROM {table} WHERE wa_id = :wa_id AND status IN ('pending', 'processing') "
        "AND (next_attempt_at IS NULL OR next_attempt_at <= :now)"
    )
    released = await conn.execute(
        "UPDATE conversations SET lease_owner = NULL, lease_until = NULL, updated_at = :now "
        f"WHERE wa_id = :wa_id AND lease_owner = :owner AND NOT EXISTS ({due.format(table='inbound_messages')}) "
        f"AND NOT EXISTS ({due.format(table='system_events')})",
        {"wa_id": wa_id, "owner": owner, "now": now},
    )
    return released == 1


async def record_inbound_in(conn: Connection, wa_id: str, *, at: datetime) -> None:
    """`ConversationRepository.record_inbound` inside a caller's transaction (e.g. with storing the message)."""
    await conn.execute(
        "INSERT INTO conversations (wa_id, last_inbound_at, updated_at) VALUES (:wa_id, :at, :at) "
        "ON CONFLICT (wa_id) DO UPDATE SET last_inbound_at = excluded.last_inbound_at, "
        "updated_at = excluded.updated_at "
        "WHERE conversations.last_inbound_at IS NULL "
        "OR conversations.last_inbound_at < excluded.last_inbound_at",
        {"wa_id": wa_id, "at": at},
    )


class ConversationRepository:
    """Reads and writes `conversations`; every state change is one conditional statement, safe across workers."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, wa_id: str) -> Conversation | None:
        """The conversation with this WhatsApp address, if it ever started."""
        row = await self._db.fetch_one(f"SELECT {_COLUMNS} FROM conversations WHERE wa_id = :wa_id", {"wa_id": wa_id})
        return Conversation.model_validate(row) if row else None

    async def list_recent(self, *, limit: int = 100) -> list[Conversation]:
        """Conversations, most recently active first."""
        rows = await self._db.fetch_all(
            f"SELECT {_COLUMNS} FROM conversations "
            "ORDER BY (last_inbound_at IS NULL), last_inbound_at DESC, wa_id LIMIT :limit",
            {"limit": limit},
        )
        return [Conversation.model_validate(r) for r in rows]

    async def record_inbound(self, wa_id: str, *, at: datetime) -> Conversation:
        """Note that the customer wrote at `at` (opens WhatsApp's 24-hour window); never moves it backwards."""
        async with self._db.transaction() as conn:
            await record_inbound_in(conn, wa_id, at=at)
            row = await conn.fetch_one(f"SELECT {_COLUMNS} FROM conversations WHERE wa_id = :wa_id", {"wa_id": wa_id})
        assert row is not None
        return Conversation.model_validate(row)

    async def set_paused(self, wa_id: str, *, paused: bool, by: str | None, now: datetime) -> Conversation:
        """Pause (staff takeover) or resume the bot for one customer.

        Resuming also hands back the system events (calendar changes) held during the takeover: staff did not deal
        with those, and the customer must still hear about them. Customer messages held meanwhile stay 'paused':
        staff answered them, and the bot replying to them afterwards would talk over staff.
        """
        params = {"wa_id": wa_id, "paused": paused, "by": by if paused else None, "now": now}
        async with self._db.transaction() as conn:
            await conn.execute(
                "INSERT INTO conversations (wa_id, updated_at) VALUES (:wa_id, :now) ON CONFLICT (wa_id) DO NOTHING",
                params,
            )
            # First statement on the row: it locks it, so `hold_for_staff` (which checks `paused` under the same
            # lock) either finishes before this and its held events are released below, or sees the resume.
            await conn.execute(
                "UPDATE conversations SET paused = :paused, paused_by = :by, "
                "paused_at = CASE WHEN :paused THEN :now ELSE NULL END, updated_at = :now WHERE wa_id = :wa_id",
                params,
            )
            if not paused and await conn.execute(
                "UPDATE system_events SET status = 'pending', processed_at = NULL, next_attempt_at = NULL "
                "WHERE wa_id = :wa_id AND status = 'paused'",
                params,
            ):
                await conn.notify(Work.TURN)
            row = await conn.fetch_one(f"SELECT {_COLUMNS} FROM conversations WHERE wa_id = :wa_id", params)
        assert row is not None
        return Conversation.model_validate(row)

    async def hold_for_staff(self, wa_id: str, *, now: datetime) -> int | None:
        """Mark a paused conversation's open messages and events 'paused'; None when it is no longer paused.

        The pause is re-checked with a row-locking UPDATE in the same transaction, so a concurrent resume cannot
        slip in between the check and the marking (which would leave events paused after the resume).
        """
        params = {"wa_id": wa_id, "now": now}
        async with self._db.transaction() as conn:
            still_paused = await conn.execute(
                "UPDATE conversations SET updated_at = :now WHERE wa_id = :wa_id AND paused", params
            )
            if still_paused != 1:
                return None
            held = await conn.execute(
                "UPDATE inbound_messages SET status = 'paused', processed_at = :now "
                "WHERE wa_id = :wa_id AND status IN ('pending', 'processing')",
                params,
            )
            held += await conn.execute(
                "UPDATE system_events SET status = 'paused', processed_at = :now "
                "WHERE wa_id = :wa_id AND status IN ('pending', 'processing')",
                params,
            )
        return held

    async def claim_rate_notice(self, wa_id: str, *, now: datetime, not_since: datetime) -> bool:
        """Whether this caller may send the rate-limit notice: true once, until `not_since` passes the last one."""
        changed = await self._db.execute(
            "UPDATE conversations SET rate_notice_at = :now, updated_at = :now "
            "WHERE wa_id = :wa_id AND (rate_notice_at IS NULL OR rate_notice_at < :not_since)",
            {"wa_id": wa_id, "now": now, "not_since": not_since},
        )
        return changed == 1

    async def acquire_lease(self, wa_id: str, *, owner: str, now: datetime, until: datetime) -> bool:
        """Take the conversation for `owner` until `until`, unless another owner holds an unexpired lease.

        One conditional upsert, atomic on both engines (PostgreSQL locks the conflicting row and checks the WHERE
        clause against its latest version, after waiting for a concurrent writer), so at most one worker wins however
        many try at once.
        """
        changed = await self._db.execute(
            "INSERT INTO conversations (wa_id, lease_owner, lease_until, updated_at) "
            "VALUES (:wa_id, :owner, :until, :now) ON CONFLICT (wa_id) DO UPDATE SET "
            "lease_owner = excluded.lease_owner, lease_until = excluded.lease_until, updated_at = excluded.updated_at "
            "WHERE conversations.lease_owner IS NULL OR conversations.lease_owner = :owner "
            "OR conversations.lease_until IS NULL OR conversations.lease_until < :now",
            {"wa_id": wa_id, "owner": owner, "now": now, "until": until},
        )
        return changed == 1

    async def renew_lease(self, wa_id: str, *, owner: str, now: datetime, until: datetime) -> bool:
        """Extend a lease this owner still holds; false when it was lost (expired and taken over)."""
        changed = await self._db.execute(
            "UPDATE conversations SET lease_until = :until, updated_at = :now "
            "WHERE wa_id = :wa_id AND lease_owner = :owner",
            {"wa_id": wa_id, "owner": owner, "now": now, "until": until},
        )
        return changed == 1

    async def release_lease(self, wa_id: str, *, owner: str, now: datetime) -> None:
        """Give the conversation back (only if this owner still holds it)."""
        await self._db.execute(
            "UPDATE conversations SET lease_owner = NULL, lease_until = NULL, updated_at = :now "
            "WHERE wa_id = :wa_id AND lease_owner = :owner",
            {"wa_id": wa_id, "owner": owner, "now": now},
        )

    async def with_work(self, *, now: datetime, limit: int = 100) -> list[str]:
        """Conversations with messages or system events due to run and no live lease held on them.

        'processing' rows count too: under an expired (or no) lease they were left by a worker that died mid-turn.
        Rows waiting out a retry backoff (`next_attempt_at` in the future) do not count until it passes.
        """
        rows = await self._db.fetch_all(
            "SELECT w.wa_id FROM ("
            "  SELECT wa_id, MIN(id) AS first_id FROM inbound_messages WHERE status IN ('pending', 'processing') "
            "  AND (next_attempt_at IS NULL OR next_attempt_at <= :now) GROUP BY wa_id "
            "  UNION ALL "
            "  SELECT wa_id, MIN(id) AS first_id FROM system_events WHERE status IN ('pending', 'processing') "
            "  AND (next_attempt_at IS NULL OR next_attempt_at <= :now) GROUP BY wa_id"
            ") w LEFT JOIN conversations c ON c.wa_id = w.wa_id "
            "WHERE c.lease_owner IS NULL OR c.lease_until IS NULL OR c.lease_until < :now "
            "GROUP BY w.wa_id ORDER BY MIN(w.first_id) LIMIT :limit",
            {"now": now, "limit": limit},
        )
        return [str(r["wa_id"]) for r in rows]
