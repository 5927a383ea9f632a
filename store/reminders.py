"""Appointment reminders: one row per (appointment, offset), claimed with a conditional update so each goes once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from store.database import Database
from store.models import Appointment
from store.outbox_insert import insert_outbox

_COLUMNS = "id, appointment_id, offset_minutes, due_at, status, claimed_by, claimed_at, sent_at"
_APPOINTMENT_COLUMNS = ", ".join(
    f"a.{c}"
    for c in (
        "id",
        "client_id",
        "service",
        "start_at",
        "end_at",
        "status",
        "source",
        "calendar",
        "price_eur",
        "notes",
        "external_id",
        "external_invitee",
        "idempotency_key",
        "cancel_reason",
        "created_at",
        "updated_at",
        "cancelled_at",
    )
)


class Reminder(BaseModel):
    """A reminder row."""

    model_config = ConfigDict(frozen=True)

    id: int
    appointment_id: str
    offset_minutes: int
    due_at: datetime
    status: str
    claimed_by: str | None = None
    claimed_at: datetime | None = None
    sent_at: datetime | None = None


class DueReminder(BaseModel):
    """A reminder whose time has come, with what is needed to word it."""

    model_config = ConfigDict(frozen=True)

    id: int
    appointment_id: str
    offset_minutes: int
    due_at: datetime
    service: str
    start_at: datetime
    appointment_status: str
    wa_id: str | None = None
    customer_name: str | None = None
    customer_language: str | None = None


class ReminderRepository:
    """Reads and writes `reminders`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def sync(
        self, appointment_id: str, *, due: Mapping[int, datetime], past_offsets: Sequence[int], now: datetime
    ) -> None:
        """Make the reminders match the appointment's time.

        `due` maps offset minutes to future due times: new ones are scheduled, and a reminder whose due time changed
        (the appointment moved) is re-armed even if it already went out for the old time. Offsets in `past_offsets`
        are too late for the appointment's time and are cancelled if still scheduled.
        """
        async with self._db.transaction() as conn:
            for offset, due_at in due.items():
                await conn.execute(
                    "INSERT INTO reminders (appointment_id, offset_minutes, due_at, status) "
                    "VALUES (:id, :offset, :due, 'scheduled') "
                    "ON CONFLICT (appointment_id, offset_minutes) DO UPDATE SET due_at = excluded.due_at, "
                    "status = 'scheduled', claimed_by = NULL, claimed_at = NULL, sent_at = NULL "
                    "WHERE reminders.due_at <> excluded.due_at",
                    {"id": appointment_id, "offset": offset, "due": due_at},
                )
            for offset in past_offsets:
                await conn.execute(
                    "UPDATE reminders SET status = 'cancelled' "
                    "WHERE appointment_id = :id AND offset_minutes = :offset AND status = 'scheduled'",
                    {"id": appointment_id, "offset": offset},
                )

    async def cancel_for(self, appointment_id: str) -> int:
        """Cancel an appointment's reminders that have not gone out yet."""
        return await self._db.execute(
            "UPDATE reminders SET status = 'cancelled' WHERE appointment_id = :id AND status = 'scheduled'",
            {"id": appointment_id},
        )

    async def due(self, *, now: datetime, limit: int = 50) -> list[DueReminder]:
        """Scheduled reminders whose time has come, earliest first."""
        rows = await self._db.fetch_all(
            "SELECT r.id, r.appointment_id, r.offset_minutes, r.due_at, a.service, a.start_at, "
            "a.status AS appointment_status, c.wa_id, COALESCE(c.name, c.profile_name) AS customer_name, "
            "c.language AS customer_language "
            "FROM reminders r JOIN appointments a ON a.id = r.appointment_id "
            "LEFT JOIN clients c ON c.id = a.client_id "
            "WHERE r.status = 'scheduled' AND r.due_at <= :now ORDER BY r.due_at, r.id LIMIT :limit",
            {"now": now, "limit": limit},
        )
        return [DueReminder.model_validate(r) for r in rows]

    async def claim_and_enqueue(
        self,
        reminder: DueReminder,
        *,
        owner: str,
        now: datetime,
        parts: Sequence[str],
        template_variables: Mapping[str, str],
    ) -> bool:
        """Mark a reminder sent and queue its message in one transaction; false when another worker claimed it."""
        if reminder.wa_id is None:
            raise ValueError("a reminder needs a customer to go to")
        async with self._db.transaction() as conn:
            claimed = await conn.execute(
                "UPDATE reminders SET status = 'sent', claimed_by = :owner, claimed_at = :now, sent_at = :now "
                "WHERE id = :id AND status = 'scheduled' AND due_at = :due",
                {"id": reminder.id, "owner": owner, "now": now, "due": reminder.due_at},
            )
            if claimed != 1:
                return False
            await insert_outbox(
                conn,
                wa_id=reminder.wa_id,
                parts=parts,
                kind="reminder",
                now=now,
                template_variables=template_variables,
                dedupe_key=f"reminder:{reminder.id}:{reminder.due_at.timestamp():.0f}",
            )
        return True

    async def skip(self, reminder_id: int) -> None:
        """Drop a scheduled reminder that must not go out (appointment cancelled, already started, no customer)."""
        await self._db.execute(
            "UPDATE reminders SET status = 'cancelled' WHERE id = :id AND status = 'scheduled'", {"id": reminder_id}
        )

    async def appointments_without_reminders(self, *, starting_after: datetime, limit: int = 100) -> list[Appointment]:
        """Confirmed appointments of known customers, starting after a moment, that have no reminder rows at all."""
        rows = await self._db.fetch_all(
            f"SELECT {_APPOINTMENT_COLUMNS} FROM appointments a WHERE a.status = 'confirmed' "
            "AND a.client_id IS NOT NULL AND a.start_at > :after "
            "AND NOT EXISTS (SELECT 1 FROM reminders r WHERE r.appointment_id = a.id) ORDER BY a.start_at LIMIT :limit",
            {"after": starting_after, "limit": limit},
        )
        return [Appointment.model_validate(r) for r in rows]
