"""Inbound WhatsApp messages: stored first, deduplicated on Twilio's MessageSid, then processed by a worker."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from store.database import Database
from store.models import InboundMessage

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
