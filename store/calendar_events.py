"""Calendar webhook deliveries (Calendly), one row per delivery however often it is retried."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from store.database import Database, parse_json
from store.models import Appointment

_APPOINTMENT_COLUMNS = (
    "id, client_id, service, start_at, end_at, status, source, calendar, price_eur, notes, external_id, "
    "external_invitee, idempotency_key, cancel_reason, created_at, updated_at, cancelled_at"
)
_COLUMNS = (
    "id, delivery_key, event_type, external_id, payload, status, appointment_id, error, received_at, processed_at"
)


class CalendarEvent(BaseModel):
    """A stored webhook delivery and what became of it."""

    model_config = ConfigDict(frozen=True)

    id: int
    delivery_key: str
    event_type: str
    external_id: str | None = None
    payload: dict[str, Any]
    status: str
    appointment_id: str | None = None
    error: str | None = None
    received_at: datetime
    processed_at: datetime | None = None

    @field_validator("payload", mode="before")
    @classmethod
    def _json(cls, value: object) -> object:
        return parse_json(value)


class CalendarEventRepository:
    """Reads and writes `calendar_events`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def record(
        self, *, delivery_key: str, event_type: str, external_id: str | None, payload: dict[str, Any], now: datetime
    ) -> tuple[CalendarEvent, bool]:
        """Store a delivery; returns the row and whether it is new (False: a retry of one already stored)."""
        params = {
            "key": delivery_key,
            "event_type": event_type,
            "external_id": external_id,
            "payload": payload,
            "now": now,
        }
        async with self._db.transaction() as conn:
            inserted = await conn.execute(
                "INSERT INTO calendar_events (delivery_key, event_type, external_id, payload, status, received_at) "
                "VALUES (:key, :event_type, :external_id, :payload, 'received', :now) "
                "ON CONFLICT (delivery_key) DO NOTHING",
                params,
            )
            row = await conn.fetch_one(
                f"SELECT {_COLUMNS} FROM calendar_events WHERE delivery_key = :key", {"key": delivery_key}
            )
        assert row is not None
        return CalendarEvent.model_validate(row), inserted == 1

    async def mark(
        self,
        event_id: int,
        status: str,
        *,
        now: datetime,
        appointment_id: str | None = None,
        error: str | None = None,
    ) -> None:
        """Record the outcome of processing a delivery."""
        await self._db.execute(
            "UPDATE calendar_events SET status = :status, appointment_id = COALESCE(:appointment_id, appointment_id), "
            "error = :error, processed_at = :now WHERE id = :id",
            {"id": event_id, "status": status, "appointment_id": appointment_id, "error": error, "now": now},
        )

    async def unfinished(self, *, received_before: datetime, limit: int = 50) -> list[CalendarEvent]:
        """Deliveries stored but never finished (the process died in between), oldest first."""
        rows = await self._db.fetch_all(
            f"SELECT {_COLUMNS} FROM calendar_events WHERE status = 'received' AND received_at < :before "
            "ORDER BY id LIMIT :limit",
            {"before": received_before, "limit": limit},
        )
        return [CalendarEvent.model_validate(r) for r in rows]

    async def recent(self, *, limit: int = 100) -> list[CalendarEvent]:
        """The latest deliveries, newest first."""
        rows = await self._db.fetch_all(
            f"SELECT {_COLUMNS} FROM calendar_events ORDER BY id DESC LIMIT :limit", {"limit": limit}
        )
        return [CalendarEvent.model_validate(r) for r in rows]

    async def count_failed_since(self, since: datetime) -> int:
        """Deliveries that failed to process since a moment (for statistics)."""
        value = await self._db.fetch_value(
            "SELECT COUNT(*) AS n FROM calendar_events WHERE status = 'failed' AND received_at >= :since",
            {"since": since},
        )
        return int(value or 0)

    async def mirrored_appointments(self, *, limit: int = 100) -> list[Appointment]:
        """Appointments on the Calendly calendar, latest start first."""
        rows = await self._db.fetch_all(
            f"SELECT {_APPOINTMENT_COLUMNS} FROM appointments WHERE calendar = 'calendly' "
            "ORDER BY start_at DESC LIMIT :limit",
            {"limit": limit},
        )
        return [Appointment.model_validate(r) for r in rows]
