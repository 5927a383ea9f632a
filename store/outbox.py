"""The outbox: every outgoing WhatsApp message is written here first, then delivered (and retried) by a worker."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from pydantic import BaseModel, ConfigDict, field_validator

from store.database import Connection, Database, parse_json

_COLUMNS = (
    "id, wa_id, body, kind, template_sid, template_variables, status, attempts, next_attempt_at, twilio_sid, "
    "error_code, error_message, dedupe_key, inbound_message_id, created_at, updated_at, sent_at"
)

# Twilio's status callbacks can arrive out of order; a status never moves back down this ladder.
_STATUS_RANK = {"pending": 0, "sending": 1, "sent": 2, "delivered": 3, "read": 4, "failed": 5, "undeliverable": 5}


class OutboxMessage(BaseModel):
    """One outgoing message (at most 1600 characters: longer texts are stored as several rows)."""

    model_config = ConfigDict(frozen=True)

    id: int
    wa_id: str
    body: str
    kind: str
    template_sid: str | None = None
    template_variables: dict[str, str] | None = None
    status: str
    attempts: int
    next_attempt_at: datetime
    twilio_sid: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    dedupe_key: str | None = None
    inbound_message_id: int | None = None
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None = None

    @field_validator("template_variables", mode="before")
    @classmethod
    def _json(cls, value: object) -> object:
        return parse_json(value) if value is not None else None


async def insert_outbox(
    conn: Connection,
    *,
    wa_id: str,
    parts: Sequence[str],
    kind: str,
    now: datetime,
    inbound_message_id: int | None = None,
    template_variables: Mapping[str, str] | None = None,
    dedupe_key: str | None = None,
) -> list[int]:
    """Queue the parts of one message inside a caller's transaction; returns the new ids.

    With `dedupe_key`, a second insert of the same message is a no-op (returns no ids): retried work never sends
    twice.
    """
    ids: list[int] = []
    for index, part in enumerate(parts):
        key = None if dedupe_key is None else f"{dedupe_key}#{index}"
        row = await conn.fetch_one(
            "INSERT INTO outbox (wa_id, body, kind, template_variables, status, attempts, next_attempt_at, "
            "dedupe_key, inbound_message_id, created_at, updated_at) "
            "VALUES (:wa_id, :body, :kind, :variables, 'pending', 0, :now, :key, :inbound, :now, :now) "
            "ON CONFLICT (dedupe_key) DO NOTHING RETURNING id",
            {
                "wa_id": wa_id,
                "body": part,
                "kind": kind,
                "variables": dict(template_variables) if template_variables is not None else None,
                "now": now,
                "key": key,
                "inbound": inbound_message_id,
            },
        )
        if row is not None:
            ids.append(int(row["id"]))
    return ids


class OutboxRepository:
    """Reads and writes `outbox`. Claims are conditional updates, so several workers never send one row twice."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def enqueue(
        self,
        *,
        wa_id: str,
        parts: Sequence[str],
        kind: str,
        now: datetime,
        inbound_message_id: int | None = None,
        template_variables: Mapping[str, str] | None = None,
        dedupe_key: str | None = None,
    ) -> list[int]:
        """Queue the parts of one message in their own transaction; returns the new ids."""
        async with self._db.transaction() as conn:
            return await insert_outbox(
                conn,
                wa_id=wa_id,
                parts=parts,
                kind=kind,
                now=now,
                inbound_message_id=inbound_message_id,
                template_variables=template_variables,
                dedupe_key=dedupe_key,
            )

    async def get(self, outbox_id: int) -> OutboxMessage | None:
        """One outbox row."""
        row = await self._db.fetch_one(f"SELECT {_COLUMNS} FROM outbox WHERE id = :id", {"id": outbox_id})
        return OutboxMessage.model_validate(row) if row else None

    async def for_conversation(self, wa_id: str, *, limit: int = 200) -> list[OutboxMessage]:
        """A customer's most recent outgoing messages, oldest first."""
        rows = await self._db.fetch_all(
            f"SELECT {_COLUMNS} FROM outbox WHERE wa_id = :wa_id ORDER BY id DESC LIMIT :limit",
            {"wa_id": wa_id, "limit": limit},
        )
        return [OutboxMessage.model_validate(r) for r in reversed(rows)]

    async def created_since(self, since: datetime) -> list[OutboxMessage]:
        """Every row created since a moment (for statistics)."""
        rows = await self._db.fetch_all(
            f"SELECT {_COLUMNS} FROM outbox WHERE created_at >= :since ORDER BY id", {"since": since}
        )
        return [OutboxMessage.model_validate(r) for r in rows]

    async def due(self, *, now: datetime, limit: int = 50) -> list[OutboxMessage]:
        """Rows ready to send: pending, due, and the oldest open row of their customer (so parts keep their order)."""
        rows = await self._db.fetch_all(
            f"SELECT {_COLUMNS} FROM outbox o WHERE o.status = 'pending' AND o.next_attempt_at <= :now "
            "AND NOT EXISTS (SELECT 1 FROM outbox e WHERE e.wa_id = o.wa_id AND e.id < o.id "
            "AND e.status IN ('pending', 'sending')) ORDER BY o.id LIMIT :limit",
            {"now": now, "limit": limit},
        )
        return [OutboxMessage.model_validate(r) for r in rows]

    async def claim(self, outbox_id: int, *, now: datetime) -> bool:
        """Take a pending row for sending; false when another worker took it first."""
        changed = await self._db.execute(
            "UPDATE outbox SET status = 'sending', updated_at = :now WHERE id = :id AND status = 'pending'",
            {"id": outbox_id, "now": now},
        )
        return changed == 1

    async def mark_sent(
        self, outbox_id: int, *, twilio_sid: str, now: datetime, template_sid: str | None = None
    ) -> None:
        """Twilio accepted the message (one more attempt recorded)."""
        await self._db.execute(
            "UPDATE outbox SET status = 'sent', twilio_sid = :sid, template_sid = :template, attempts = attempts + 1, "
            "sent_at = :now, updated_at = :now, error_code = NULL, error_message = NULL WHERE id = :id",
            {"id": outbox_id, "sid": twilio_sid, "template": template_sid, "now": now},
        )

    async def schedule_retry(
        self, outbox_id: int, *, now: datetime, next_attempt_at: datetime, error_code: str | None, error_message: str
    ) -> None:
        """A transient failure: back to pending, due again at `next_attempt_at` (one more attempt recorded)."""
        await self._db.execute(
            "UPDATE outbox SET status = 'pending', attempts = attempts + 1, next_attempt_at = :next, "
            "error_code = :code, error_message = :message, updated_at = :now WHERE id = :id",
            {"id": outbox_id, "now": now, "next": next_attempt_at, "code": error_code, "message": error_message},
        )

    async def mark_failed(
        self,
        outbox_id: int,
        *,
        now: datetime,
        error_code: str | None,
        error_message: str,
        status: str = "failed",
        attempted: bool = True,
    ) -> None:
        """A final failure ('failed'), or 'undeliverable' when WhatsApp's rules forbid sending it at all."""
        await self._db.execute(
            "UPDATE outbox SET status = :status, attempts = attempts + :attempted, error_code = :code, "
            "error_message = :message, updated_at = :now WHERE id = :id",
            {
                "id": outbox_id,
                "status": status,
                "attempted": 1 if attempted else 0,
                "code": error_code,
                "message": error_message,
                "now": now,
            },
        )

    async def recover_stuck(self, *, before: datetime, now: datetime) -> int:
        """Rows left 'sending' by a worker that died before recording the outcome go back to pending."""
        return await self._db.execute(
            "UPDATE outbox SET status = 'pending', next_attempt_at = :now, updated_at = :now "
            "WHERE status = 'sending' AND updated_at < :before",
            {"before": before, "now": now},
        )

    async def apply_status(
        self, twilio_sid: str, *, status: str, now: datetime, error_code: str | None, error_message: str | None
    ) -> OutboxMessage | None:
        """Record a delivery status reported by Twilio; None when no row has this SID. Never downgrades a status."""
        async with self._db.transaction() as conn:
            row = await conn.fetch_one(f"SELECT {_COLUMNS} FROM outbox WHERE twilio_sid = :sid", {"sid": twilio_sid})
            if row is None:
                return None
            current = OutboxMessage.model_validate(row)
            if _STATUS_RANK.get(status, 0) > _STATUS_RANK.get(current.status, 0):
                await conn.execute(
                    "UPDATE outbox SET status = :status, error_code = COALESCE(:code, error_code), "
                    "error_message = COALESCE(:message, error_message), updated_at = :now WHERE id = :id",
                    {"id": current.id, "status": status, "code": error_code, "message": error_message, "now": now},
                )
            row = await conn.fetch_one(f"SELECT {_COLUMNS} FROM outbox WHERE id = :id", {"id": current.id})
        assert row is not None
        return OutboxMessage.model_validate(row)
