"""Write-ahead intents: a calendar write made in another system (Calendly) is recorded, and committed, before the
HTTP call, so a write whose answer never arrived (the process died, the connection dropped) can be settled later by
asking that system what happened, instead of being forgotten or made twice.

One row per logical write, under a key stable for it (the same confirmed tool call run again after a crash reuses
it). 'pending' until the outcome is stored, then 'done'; 'failed' when the other system refused; 'abandoned' when,
long after, it holds nothing of the write.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict

from store.appointments import AppointmentRepository
from store.database import Database
from store.models import Appointment

IntentAction = Literal["book", "cancel", "move", "release"]
IntentStatus = Literal["pending", "done", "failed", "abandoned"]

_COLUMNS = (
    "intent_key, action, status, client_id, appointment_id, service, event_type, start_at, end_at, email, target, "
    "appointment_key, price_eur, notes, attempts, error, created_at, updated_at, finished_at"
)
_PLANNED = (
    "client_id, appointment_id, service, event_type, start_at, end_at, email, target, appointment_key, price_eur, notes"
)


@dataclass(frozen=True)
class PlannedWrite:
    """What is about to be written, with everything needed to recognise it in the other system and to store its
    outcome without the caller: a sweep may have to finish it long after the process that started it died.

    `start_at`/`end_at` are the time booked ('book', 'move') or the event's ('cancel', 'release'); `target` is the
    event cancelled ('cancel', 'release') or moved away from ('move'); `email` is the invitee's address, by which
    the other system's events are searched; `notes` are a booking's notes or a cancellation's reason.
    """

    key: str
    action: IntentAction
    service: str
    start_at: datetime
    end_at: datetime
    client_id: int | None = None
    appointment_id: str | None = None
    event_type: str | None = None
    email: str | None = None
    target: str | None = None
    appointment_key: str | None = None
    price_eur: Decimal | None = None
    notes: str | None = None

    @classmethod
    def ending(cls, action: IntentAction, appointment: Appointment, event_uri: str, notes: str | None) -> PlannedWrite:
        """The cancellation of `appointment`'s event `event_uri` ('cancel'), or of the event a reschedule moved it
        away from ('release'): keyed on the event, so a re-run of the same cancellation finds its intent."""
        return cls(
            key=f"{action}:{event_uri}",
            action=action,
            service=appointment.service,
            start_at=appointment.start_at,
            end_at=appointment.end_at,
            client_id=appointment.client_id,
            appointment_id=appointment.id,
            target=event_uri,
            notes=notes,
        )


class WriteIntent(BaseModel):
    """A recorded write and what became of it."""

    model_config = ConfigDict(frozen=True)

    intent_key: str
    action: IntentAction
    status: IntentStatus
    client_id: int | None = None
    appointment_id: str | None = None
    service: str
    event_type: str | None = None
    start_at: datetime
    end_at: datetime
    email: str | None = None
    target: str | None = None
    appointment_key: str | None = None
    price_eur: Decimal | None = None
    notes: str | None = None
    attempts: int
    error: str | None = None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None


class WriteIntentRepository:
    """Reads and writes `write_intents`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    @classmethod
    def beside(cls, appointments: AppointmentRepository) -> WriteIntentRepository:
        """The intents kept in the database of `appointments` (an intent is closed when its appointment is stored
        there), for a calendar built with only the appointments at hand."""
        return cls(appointments._db)

    async def begin(self, write: PlannedWrite, *, now: datetime) -> tuple[WriteIntent, IntentStatus | None]:
        """Record `write` as pending (committed when this returns) before making it.

        Returns the intent and the status an earlier attempt under the same key left, None for a first attempt.
        An earlier 'pending' (or 'abandoned') attempt was cut off with its outcome unknown: settle it before
        writing again.
        """
        params = {**asdict(write), "now": now}
        params["price_eur"] = str(write.price_eur) if write.price_eur is not None else None
        async with self._db.transaction() as conn:
            earlier = await conn.fetch_value(
                "SELECT status FROM write_intents WHERE intent_key = :key", {"key": write.key}
            )
            if earlier is None:
                await conn.execute(
                    f"INSERT INTO write_intents (intent_key, action, status, {_PLANNED}, created_at, updated_at) "
                    "VALUES (:key, :action, 'pending', :client_id, :appointment_id, :service, :event_type, "
                    ":start_at, :end_at, :email, :target, :appointment_key, :price_eur, :notes, :now, :now) "
                    "ON CONFLICT (intent_key) DO NOTHING",
                    params,
                )
            # A later attempt keeps what an earlier one found (the appointment stored, the event) and renews the rest.
            await conn.execute(
                "UPDATE write_intents SET status = 'pending', attempts = attempts + :again, error = NULL, "
                "finished_at = NULL, updated_at = :now, client_id = :client_id, service = :service, "
                "event_type = :event_type, start_at = :start_at, end_at = :end_at, email = :email, "
                "appointment_key = :appointment_key, price_eur = :price_eur, notes = :notes, "
                "appointment_id = COALESCE(:appointment_id, appointment_id), target = COALESCE(:target, target) "
                "WHERE intent_key = :key",
                {**params, "again": 0 if earlier is None else 1},
            )
            row = await conn.fetch_one(
                f"SELECT {_COLUMNS} FROM write_intents WHERE intent_key = :key", {"key": write.key}
            )
        assert row is not None
        return WriteIntent.model_validate(row), earlier

    async def get(self, key: str) -> WriteIntent | None:
        """The intent recorded under `key`, if any."""
        row = await self._db.fetch_one(f"SELECT {_COLUMNS} FROM write_intents WHERE intent_key = :key", {"key": key})
        return WriteIntent.model_validate(row) if row else None

    async def finish(
        self,
        key: str,
        status: Literal["done", "failed"],
        *,
        now: datetime,
        appointment_id: str | None = None,
        error: str | None = None,
    ) -> None:
        """Record the outcome: 'done' once it is stored (whatever a sweep concluded meanwhile), 'failed' when the
        other system refused it."""
        await self._db.execute(
            "UPDATE write_intents SET status = :status, finished_at = :now, updated_at = :now, error = :error, "
            "appointment_id = COALESCE(:appointment_id, appointment_id) WHERE intent_key = :key",
            {"key": key, "status": status, "now": now, "appointment_id": appointment_id, "error": error},
        )

    async def abandon(self, key: str, *, seen_at: datetime, now: datetime, error: str) -> bool:
        """Give up on an intent the other system holds nothing of, unless it was attempted again since `seen_at`
        (its `updated_at` when it was looked at); whether it was given up."""
        changed = await self._db.execute(
            "UPDATE write_intents SET status = 'abandoned', finished_at = :now, error = :error "
            "WHERE intent_key = :key AND status = 'pending' AND updated_at = :seen_at",
            {"key": key, "seen_at": seen_at, "now": now, "error": error},
        )
        return changed > 0

    async def pending_for_client(self, client_id: int) -> list[WriteIntent]:
        """A customer's unfinished writes, oldest first."""
        rows = await self._db.fetch_all(
            f"SELECT {_COLUMNS} FROM write_intents WHERE client_id = :client_id AND status = 'pending' "
            "ORDER BY created_at, intent_key",
            {"client_id": client_id},
        )
        return [WriteIntent.model_validate(r) for r in rows]

    async def pending_before(self, before: datetime, *, limit: int = 50) -> list[WriteIntent]:
        """Writes still unfinished whose last attempt began before `before`, oldest first."""
        rows = await self._db.fetch_all(
            f"SELECT {_COLUMNS} FROM write_intents WHERE status = 'pending' AND updated_at < :before "
            "ORDER BY updated_at, intent_key LIMIT :limit",
            {"before": before, "limit": limit},
        )
        return [WriteIntent.model_validate(r) for r in rows]
