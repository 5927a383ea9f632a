"""System events (calendar changes made elsewhere) queued for the worker to run as system turns."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from pydantic import BaseModel, ConfigDict, field_validator

from store.database import Database, parse_json

_COLUMNS = (
    "id, wa_id, source, description, kind_hint, template_variables, dedupe_key, status, error, created_at, processed_at"
)


class SystemEvent(BaseModel):
    """Something the agent must be told about a customer's conversation, in its own turn."""

    model_config = ConfigDict(frozen=True)

    id: int
    wa_id: str
    source: str
    description: str
    kind_hint: str | None = None
    template_variables: dict[str, str] | None = None
    dedupe_key: str
    status: str
    error: str | None = None
    created_at: datetime
    processed_at: datetime | None = None

    @field_validator("template_variables", mode="before")
    @classmethod
    def _json(cls, value: object) -> object:
        return parse_json(value) if value is not None else None


class SystemEventRepository:
    """Reads and writes `system_events`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def enqueue(
        self,
        *,
        wa_id: str,
        source: str,
        description: str,
        dedupe_key: str,
        now: datetime,
        kind_hint: str | None = None,
        template_variables: Mapping[str, str] | None = None,
    ) -> SystemEvent | None:
        """Queue an event; None when one with this dedupe key was already queued (a retried delivery)."""
        row = await self._db.fetch_one(
            "INSERT INTO system_events (wa_id, source, description, kind_hint, template_variables, dedupe_key, "
            "status, created_at) VALUES (:wa_id, :source, :description, :kind_hint, :variables, :key, 'pending', "
            f":now) ON CONFLICT (dedupe_key) DO NOTHING RETURNING {_COLUMNS}",
            {
                "wa_id": wa_id,
                "source": source,
                "description": description,
                "kind_hint": kind_hint,
                "variables": dict(template_variables) if template_variables is not None else None,
                "key": dedupe_key,
                "now": now,
            },
        )
        return SystemEvent.model_validate(row) if row else None

    async def open_for_conversation(self, wa_id: str) -> list[SystemEvent]:
        """Events of one conversation still to run, oldest first (call while holding its lease)."""
        rows = await self._db.fetch_all(
            f"SELECT {_COLUMNS} FROM system_events WHERE wa_id = :wa_id AND status IN ('pending', 'processing') "
            "ORDER BY id",
            {"wa_id": wa_id},
        )
        return [SystemEvent.model_validate(r) for r in rows]

    async def for_conversation(self, wa_id: str, *, limit: int = 100) -> list[SystemEvent]:
        """A conversation's most recent events, oldest first."""
        rows = await self._db.fetch_all(
            f"SELECT {_COLUMNS} FROM system_events WHERE wa_id = :wa_id ORDER BY id DESC LIMIT :limit",
            {"wa_id": wa_id, "limit": limit},
        )
        return [SystemEvent.model_validate(r) for r in reversed(rows)]

    async def mark(self, event_id: int, status: str, *, now: datetime, error: str | None = None) -> None:
        """Move an event to `status`."""
        await self._db.execute(
            "UPDATE system_events SET status = :status, error = :error, processed_at = :now WHERE id = :id",
            {"id": event_id, "status": status, "error": error, "now": now},
        )

    async def mark_open(self, wa_id: str, status: str, *, now: datetime) -> int:
        """Move every open event of a conversation to `status` (e.g. 'paused' during a staff takeover)."""
        return await self._db.execute(
            "UPDATE system_events SET status = :status, processed_at = :now "
            "WHERE wa_id = :wa_id AND status IN ('pending', 'processing')",
            {"wa_id": wa_id, "status": status, "now": now},
        )
