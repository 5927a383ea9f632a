"""Client directory: who each WhatsApp address is, and what we remember about them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from core.addresses import phone_of
from store.database import Database
from store.models import Client

_COLUMNS = (
    "id, wa_id, phone, name, profile_name, email, language, preferences, notes, last_visit_at, created_at, updated_at"
)


class ClientRepository:
    """Reads and writes `clients`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, wa_id: str) -> Client | None:
        """The client with this WhatsApp address, if known."""
        row = await self._db.fetch_one(f"SELECT {_COLUMNS} FROM clients WHERE wa_id = :wa_id", {"wa_id": wa_id})
        return Client.model_validate(row) if row else None

    async def get_by_id(self, client_id: int) -> Client | None:
        """The client with this id, if any."""
        row = await self._db.fetch_one(f"SELECT {_COLUMNS} FROM clients WHERE id = :id", {"id": client_id})
        return Client.model_validate(row) if row else None

    async def find_by_contact(self, *, phone: str | None = None, email: str | None = None) -> Client | None:
        """A client matching a phone number (any WhatsApp address with it) or, failing that, an email."""
        if phone:
            row = await self._db.fetch_one(
                f"SELECT {_COLUMNS} FROM clients WHERE phone = :phone ORDER BY id LIMIT 1", {"phone": phone}
            )
            if row:
                return Client.model_validate(row)
        if email:
            row = await self._db.fetch_one(
                f"SELECT {_COLUMNS} FROM clients WHERE lower(email) = lower(:email) ORDER BY id LIMIT 1",
                {"email": email},
            )
            if row:
                return Client.model_validate(row)
        return None

    async def ensure(self, wa_id: str, *, now: datetime, profile_name: str | None = None) -> Client:
        """The client for a WhatsApp address, created on first contact; the profile name is kept current."""
        params = {"wa_id": wa_id, "phone": phone_of(wa_id), "profile_name": profile_name, "now": now}
        async with self._db.transaction() as conn:
            await conn.execute(
                "INSERT INTO clients (wa_id, phone, profile_name, preferences, created_at, updated_at) "
                "VALUES (:wa_id, :phone, :profile_name, '{}', :now, :now) ON CONFLICT (wa_id) DO NOTHING",
                params,
            )
            if profile_name:
                await conn.execute(
                    "UPDATE clients SET profile_name = :profile_name, updated_at = :now "
                    "WHERE wa_id = :wa_id AND (profile_name IS NULL OR profile_name <> :profile_name)",
                    params,
                )
            row = await conn.fetch_one(f"SELECT {_COLUMNS} FROM clients WHERE wa_id = :wa_id", params)
        assert row is not None  # inserted or already present inside this transaction
        return Client.model_validate(row)

    async def update_profile(
        self,
        wa_id: str,
        *,
        now: datetime,
        name: str | None = None,
        email: str | None = None,
        language: str | None = None,
        preferences: dict[str, Any] | None = None,
        last_visit_at: datetime | None = None,
    ) -> Client:
        """Remember what the customer told us; fields left as None keep their stored value."""
        client = await self.ensure(wa_id, now=now)
        merged = {**client.preferences, **(preferences or {})}
        async with self._db.transaction() as conn:
            await conn.execute(
                "UPDATE clients SET name = COALESCE(:name, name), email = COALESCE(:email, email), "
                "language = COALESCE(:language, language), preferences = :preferences, "
                "last_visit_at = COALESCE(:last_visit_at, last_visit_at), updated_at = :now WHERE wa_id = :wa_id",
                {
                    "wa_id": wa_id,
                    "name": name,
                    "email": email,
                    "language": language,
                    "preferences": merged,
                    "last_visit_at": last_visit_at,
                    "now": now,
                },
            )
            row = await conn.fetch_one(f"SELECT {_COLUMNS} FROM clients WHERE wa_id = :wa_id", {"wa_id": wa_id})
        assert row is not None
        return Client.model_validate(row)
