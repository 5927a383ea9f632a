"""System events (calendar changes made elsewhere) queued for the worker to run as system turns."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, field_validator

from store.conversations import fence_lease
from store.database import Database, Work, parse_json

_COLUMNS = (
    "id, wa_id, source, description, kind_hint, template_variables, dedupe_key, status, error, created_at, "
    "processed_at, attempts, next_attempt_at"
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
    attempts: int = 0
    next_attempt_at: datetime | None = None

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
        async with self._db.transaction() as conn:
            row = await conn.fetch_one(
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
            if row is not None:
                await conn.notify(Work.TURN)
        return SystemEvent.model_validate(row) if row else None

    async def open_for_conversation(self, wa_id: str, *, due_at: datetime | None = None) -> list[SystemEvent]:
        """Events of one conversation still to run, oldest first (call while holding its lease).

        With `due_at`, only those due by then (not waiting out a retry backoff).
        """
        due = "AND (next_attempt_at IS NULL OR next_attempt_at <= :due) " if due_at is not None else ""
        rows = await self._db.fetch_all(
            f"SELECT {_COLUMNS} FROM system_events WHERE wa_id = :wa_id AND status IN ('pending', 'processing') "
            f"{due}ORDER BY id",
            {"wa_id": wa_id, "due": due_at} if due_at is not None else {"wa_id": wa_id},
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

    async def finish(self, event: SystemEvent, *, now: datetime, owner: str | None = None) -> None:
        """Mark an event's turn done; with `owner`, only while that worker still holds the lease (else `LeaseLost`
        and nothing is written, so the new owner runs it: its messages are deduplicated per turn)."""
        async with self._db.transaction() as conn:
            if owner is not None:
                await fence_lease(conn, event.wa_id, owner=owner, now=now)
            await conn.execute(
                "UPDATE system_events SET status = 'processed', error = NULL, next_attempt_at = NULL, "
                "processed_at = :now WHERE id = :id",
                {"id": event.id, "now": now},
            )

    async def retry_or_fail(
        self,
        event: SystemEvent,
        *,
        now: datetime,
        error: str,
        backoff: Sequence[timedelta],
        max_attempts: int,
        owner: str | None = None,
    ) -> bool:
        """The event's turn failed: back to 'pending' after the backoff for its attempt count, or 'failed' after
        `max_attempts` failed turns (returns True then). With `owner`, fenced by the lease like `finish`."""
        async with self._db.transaction() as conn:
            if owner is not None:
                await fence_lease(conn, event.wa_id, owner=owner, now=now)
            attempts = int(
                await conn.fetch_value("SELECT attempts FROM system_events WHERE id = :id", {"id": event.id}) or 0
            )
            attempts += 1
            give_up = attempts >= max_attempts or not backoff
            next_at = None if give_up else now + backoff[min(attempts, len(backoff)) - 1]
            await conn.execute(
                "UPDATE system_events SET status = :status, attempts = :attempts, next_attempt_at = :next, "
                "error = :error, processed_at = :processed WHERE id = :id",
                {
                    "id": event.id,
                    "status": "failed" if give_up else "pending",
                    "attempts": attempts,
                    "next": next_at,
                    "error": error,
                    "processed": now if give_up else None,
                },
            )
        return give_up
