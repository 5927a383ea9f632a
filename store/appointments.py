"""Appointments, and the seat claims that make double booking on the local calendar impossible."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal

from store.database import Connection, Database, IntegrityConflict, parse_datetime
from store.models import Appointment, AppointmentSource, CalendarKind

_COLUMNS = (
    "id, client_id, service, start_at, end_at, status, source, calendar, price_eur, notes, external_id, "
    "external_invitee, idempotency_key, cancel_reason, created_at, updated_at, cancelled_at"
)


class SlotTaken(Exception):
    """Every seat is already claimed for part of the requested interval."""


def new_appointment_id() -> str:
    """A short, unguessable appointment id customers can read back ('apt_3f9c2a1b')."""
    return f"apt_{secrets.token_hex(4)}"


def slot_starts(start: datetime, end: datetime, slot_minutes: int) -> list[datetime]:
    """The grid slots an appointment occupies: every `slot_minutes` step from start (inclusive) to end (exclusive)."""
    step = timedelta(minutes=slot_minutes)
    slots: list[datetime] = []
    current = start
    while current < end:
        slots.append(current)
        current += step
    return slots


class AppointmentRepository:
    """Reads and writes `appointments` and `calendar_claims`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, appointment_id: str) -> Appointment | None:
        """The appointment with this id, if any."""
        row = await self._db.fetch_one(f"SELECT {_COLUMNS} FROM appointments WHERE id = :id", {"id": appointment_id})
        return Appointment.model_validate(row) if row else None

    async def by_external_id(self, external_id: str) -> Appointment | None:
        """The appointment mirrored from a Calendly scheduled event URI."""
        row = await self._db.fetch_one(
            f"SELECT {_COLUMNS} FROM appointments WHERE external_id = :external_id", {"external_id": external_id}
        )
        return Appointment.model_validate(row) if row else None

    async def by_idempotency_key(self, key: str) -> Appointment | None:
        """The appointment a confirmed action already produced, if it ran before."""
        row = await self._db.fetch_one(
            f"SELECT {_COLUMNS} FROM appointments WHERE idempotency_key = :key", {"key": key}
        )
        return Appointment.model_validate(row) if row else None

    async def for_client(
        self, client_id: int, *, after: datetime | None = None, include_cancelled: bool = False
    ) -> list[Appointment]:
        """A client's appointments in start order, optionally only those ending after `after`."""
        sql = f"SELECT {_COLUMNS} FROM appointments WHERE client_id = :client_id"
        if after is not None:
            sql += " AND end_at > :after"
        if not include_cancelled:
            sql += " AND status = 'confirmed'"
        rows = await self._db.fetch_all(sql + " ORDER BY start_at", {"client_id": client_id, "after": after})
        return [Appointment.model_validate(r) for r in rows]

    async def last_visit(self, client_id: int, *, before: datetime) -> datetime | None:
        """Start of the client's most recent confirmed appointment that ended before `before`."""
        rows = await self._db.fetch_all(
            "SELECT start_at FROM appointments WHERE client_id = :client_id AND status = 'confirmed' "
            "AND end_at <= :before ORDER BY start_at DESC LIMIT 1",
            {"client_id": client_id, "before": before},
        )
        return parse_datetime(rows[0]["start_at"]) if rows else None

    async def confirmed_between(self, start: datetime, end: datetime) -> list[Appointment]:
        """Confirmed appointments overlapping [start, end)."""
        rows = await self._db.fetch_all(
            f"SELECT {_COLUMNS} FROM appointments WHERE status = 'confirmed' "
            "AND start_at < :end AND end_at > :start ORDER BY start_at",
            {"start": start, "end": end},
        )
        return [Appointment.model_validate(r) for r in rows]

    async def create(
        self,
        *,
        client_id: int | None,
        service: str,
        start_at: datetime,
        end_at: datetime,
        source: AppointmentSource,
        calendar: CalendarKind,
        now: datetime,
        price_eur: Decimal | None = None,
        notes: str | None = None,
        external_id: str | None = None,
        external_invitee: str | None = None,
        idempotency_key: str | None = None,
        claim_slots: Sequence[datetime] = (),
        capacity: int = 1,
    ) -> Appointment:
        """Insert a confirmed appointment; with `claim_slots`, also take one seat for all of them atomically.

        Raises `SlotTaken` when no seat is free for every slot (nothing is written), and returns the existing
        appointment when `idempotency_key` was already used (the action ran before).
        """
        appointment_id = new_appointment_id()
        try:
            async with self._db.transaction() as conn:
                if idempotency_key:
                    earlier = await conn.fetch_one(
                        f"SELECT {_COLUMNS} FROM appointments WHERE idempotency_key = :key", {"key": idempotency_key}
                    )
                    if earlier:
                        return Appointment.model_validate(earlier)
                await conn.execute(
                    "INSERT INTO appointments (id, client_id, service, start_at, end_at, status, source, calendar, "
                    "price_eur, notes, external_id, external_invitee, idempotency_key, created_at, updated_at) "
                    "VALUES (:id, :client_id, :service, :start_at, :end_at, 'confirmed', :source, :calendar, "
                    ":price_eur, :notes, :external_id, :external_invitee, :idempotency_key, :now, :now)",
                    {
                        "id": appointment_id,
                        "client_id": client_id,
                        "service": service,
                        "start_at": start_at,
                        "end_at": end_at,
                        "source": source,
                        "calendar": calendar,
                        "price_eur": str(price_eur) if price_eur is not None else None,
                        "notes": notes,
                        "external_id": external_id,
                        "external_invitee": external_invitee,
                        "idempotency_key": idempotency_key,
                        "now": now,
                    },
                )
                if claim_slots:
                    await _claim_seat(conn, appointment_id, claim_slots, capacity)
                row = await conn.fetch_one(
                    f"SELECT {_COLUMNS} FROM appointments WHERE id = :id", {"id": appointment_id}
                )
        except IntegrityConflict:
            # A concurrent writer committed the same action first: the same idempotency key (a confirmed call run
            # twice) or the same Calendly event (its webhook raced our own insert). Its row is the answer.
            existing = (await self.by_idempotency_key(idempotency_key)) if idempotency_key else None
            if existing is None and external_id:
                existing = await self.by_external_id(external_id)
            if existing is None:
                raise
            return existing
        assert row is not None
        return Appointment.model_validate(row)

    async def cancel(self, appointment_id: str, *, now: datetime, reason: str | None = None) -> Appointment | None:
        """Mark an appointment cancelled and free its seats; None when it does not exist."""
        async with self._db.transaction() as conn:
            await conn.execute(
                "UPDATE appointments SET status = 'cancelled', cancel_reason = :reason, cancelled_at = :now, "
                "updated_at = :now WHERE id = :id AND status = 'confirmed'",
                {"id": appointment_id, "reason": reason, "now": now},
            )
            await conn.execute("DELETE FROM calendar_claims WHERE appointment_id = :id", {"id": appointment_id})
            row = await conn.fetch_one(f"SELECT {_COLUMNS} FROM appointments WHERE id = :id", {"id": appointment_id})
        return Appointment.model_validate(row) if row else None

    async def move(
        self,
        appointment_id: str,
        *,
        start_at: datetime,
        end_at: datetime,
        now: datetime,
        claim_slots: Sequence[datetime] = (),
        capacity: int = 1,
        external_id: str | None = None,
        external_invitee: str | None = None,
    ) -> Appointment:
        """Move an appointment to a new interval, swapping its seat claims atomically (SlotTaken: nothing moves)."""
        async with self._db.transaction() as conn:
            await conn.execute("DELETE FROM calendar_claims WHERE appointment_id = :id", {"id": appointment_id})
            if claim_slots:
                await _claim_seat(conn, appointment_id, claim_slots, capacity)
            await conn.execute(
                "UPDATE appointments SET start_at = :start_at, end_at = :end_at, updated_at = :now, "
                "external_id = COALESCE(:external_id, external_id), "
                "external_invitee = COALESCE(:external_invitee, external_invitee) WHERE id = :id",
                {
                    "id": appointment_id,
                    "start_at": start_at,
                    "end_at": end_at,
                    "now": now,
                    "external_id": external_id,
                    "external_invitee": external_invitee,
                },
            )
            row = await conn.fetch_one(f"SELECT {_COLUMNS} FROM appointments WHERE id = :id", {"id": appointment_id})
        if row is None:
            raise LookupError(appointment_id)
        return Appointment.model_validate(row)


async def _claim_seat(conn: Connection, appointment_id: str, slots: Sequence[datetime], capacity: int) -> None:
    # Try each seat in turn. ON CONFLICT DO NOTHING (not an exception) keeps the transaction usable on PostgreSQL,
    # and a concurrent uncommitted claim makes us wait for its outcome instead of guessing.
    for resource in range(1, capacity + 1):
        claimed = 0
        for slot in slots:
            claimed += await conn.execute(
                "INSERT INTO calendar_claims (resource, slot_start, appointment_id) "
                "VALUES (:resource, :slot, :id) ON CONFLICT (resource, slot_start) DO NOTHING",
                {"resource": resource, "slot": slot, "id": appointment_id},
            )
        if claimed == len(slots):
            return
        await conn.execute(
            "DELETE FROM calendar_claims WHERE appointment_id = :id AND resource = :resource",
            {"id": appointment_id, "resource": resource},
        )
    raise SlotTaken
