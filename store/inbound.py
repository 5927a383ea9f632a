"""Inbound WhatsApp messages: stored first, deduplicated on Twilio's MessageSid, then processed by a worker."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from store.database import Database, Params
from store.models import InboundMessage
from store.outbox import insert_outbox

_COLUMNS = (
    "id, message_sid, wa_id, profile_name, body, button_payload, media, raw, status, error, received_at, processed_at"
)


class InboundRepository:
    """Reads and writes `inbound_messages`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def store(
        self,
        *,
        message_sid: str,
        wa_id: str,
        body: str,
        received_at: datetime,
        profile_name: str | None = None,
        button_payload: str | None = None,
        media: list[dict[str, Any]] | None = None,
        raw: dict[str, Any] | None = None,
        status: str = "pending",
    ) -> InboundMessage | None:
        """Store a message; None when this MessageSid was already stored (a Twilio retry)."""
        row = await self._db.fetch_one(
            "INSERT INTO inbound_messages "
            "(message_sid, wa_id, profile_name, body, button_payload, media, raw, status, received_at) "
            "VALUES (:sid, :wa_id, :profile_name, :body, :button_payload, :media, :raw, :status, :received_at) "
            f"ON CONFLICT (message_sid) DO NOTHING RETURNING {_COLUMNS}",
            {
                "sid": message_sid,
                "wa_id": wa_id,
                "profile_name": profile_name,
                "body": body,
                "button_payload": button_payload,
                "media": media or [],
                "raw": raw or {},
                "status": status,
                "received_at": received_at,
            },
        )
        return InboundMessage.model_validate(row) if row else None

    async def get_by_sid(self, message_sid: str) -> InboundMessage | None:
        """The stored message with this MessageSid."""
        row = await self._db.fetch_one(
            f"SELECT {_COLUMNS} FROM inbound_messages WHERE message_sid = :sid", {"sid": message_sid}
        )
        return InboundMessage.model_validate(row) if row else None

    async def count_since(self, wa_id: str, since: datetime) -> int:
        """How many messages a sender has sent since a moment (for the per-sender rate limit)."""
        value = await self._db.fetch_value(
            "SELECT COUNT(*) AS n FROM inbound_messages WHERE wa_id = :wa_id AND received_at >= :since",
            {"wa_id": wa_id, "since": since},
        )
        return int(value or 0)

    async def for_conversation(self, wa_id: str, *, limit: int = 100) -> list[InboundMessage]:
        """A sender's most recent messages, oldest first."""
        rows = await self._db.fetch_all(
            f"SELECT {_COLUMNS} FROM inbound_messages WHERE wa_id = :wa_id ORDER BY id DESC LIMIT :limit",
            {"wa_id": wa_id, "limit": limit},
        )
        return [InboundMessage.model_validate(r) for r in reversed(rows)]

    async def open_for_conversation(self, wa_id: str) -> list[InboundMessage]:
        """Messages of one sender still to answer ('pending', or 'processing' left by a dead worker), oldest first.

        Only call this while holding the conversation's lease: then no live worker owns a 'processing' row.
        """
        rows = await self._db.fetch_all(
            f"SELECT {_COLUMNS} FROM inbound_messages WHERE wa_id = :wa_id AND status IN ('pending', 'processing') "
            "ORDER BY id",
            {"wa_id": wa_id},
        )
        return [InboundMessage.model_validate(r) for r in rows]

    async def mark(
        self, ids: Sequence[int], status: str, *, now: datetime | None = None, error: str | None = None
    ) -> int:
        """Move messages to `status` (with `processed_at` = now when given); returns how many changed."""
        if not ids:
            return 0
        placeholders, params = id_list(ids)
        return await self._db.execute(
            f"UPDATE inbound_messages SET status = :status, error = :error, "
            f"processed_at = COALESCE(:now, processed_at) WHERE id IN ({placeholders})",
            {**params, "status": status, "error": error, "now": now},
        )

    async def mark_open(self, wa_id: str, status: str, *, now: datetime) -> int:
        """Move every open message of a sender to `status` (e.g. 'paused' when staff took over)."""
        return await self._db.execute(
            "UPDATE inbound_messages SET status = :status, processed_at = :now "
            "WHERE wa_id = :wa_id AND status IN ('pending', 'processing')",
            {"wa_id": wa_id, "status": status, "now": now},
        )

    async def answer(
        self, ids: Sequence[int], *, wa_id: str, replies: Sequence[Sequence[str]], reply_to: int, now: datetime
    ) -> list[int]:
        """Queue a turn's replies and mark its messages processed in one transaction; returns the outbox ids.

        Either both happen or neither: a worker dying before the commit leaves the messages to be answered again,
        never answered twice (the dedupe key also stops a second commit for the same turn).
        """
        placeholders, params = id_list(ids)
        outbox_ids: list[int] = []
        async with self._db.transaction() as conn:
            for index, parts in enumerate(replies):
                outbox_ids += await insert_outbox(
                    conn,
                    wa_id=wa_id,
                    parts=parts,
                    kind="reply",
                    now=now,
                    inbound_message_id=reply_to,
                    dedupe_key=f"reply:{reply_to}:{index}",
                )
            await conn.execute(
                "UPDATE inbound_messages SET status = 'processed', error = NULL, processed_at = :now "
                f"WHERE id IN ({placeholders}) AND status IN ('pending', 'processing')",
                {**params, "now": now},
            )
        return outbox_ids

    async def received_since(self, since: datetime) -> list[InboundMessage]:
        """Every message received since a moment, oldest first (for statistics)."""
        rows = await self._db.fetch_all(
            f"SELECT {_COLUMNS} FROM inbound_messages WHERE received_at >= :since ORDER BY id", {"since": since}
        )
        return [InboundMessage.model_validate(r) for r in rows]


def id_list(ids: Sequence[int], prefix: str = "id") -> tuple[str, Params]:
    """Named placeholders and parameters for `IN (...)` over ids; portable across both engines."""
    names = [f"{prefix}{i}" for i in range(len(ids))]
    return ", ".join(f":{n}" for n in names), dict(zip(names, ids, strict=True))
