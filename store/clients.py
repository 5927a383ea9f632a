"""Client directory: who each WhatsApp address is, and what we remember about them."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from core.addresses import phone_of
from store.database import Database
from store.models import Client

_COLUMNS = (
    "id, wa_id, phone, name, profile_name, email, language, preferences, notes, last_visit_at, created_at, updated_at"
)

# How an e-mail address came to be proven for a customer (see `ClientRepository.prove_email`).
EmailProof = Literal["agent_booking", "calendly_phone"]


def normalize_email(email: str) -> str:
    """The form addresses are compared in: trimmed and lower-cased (as Calendly and customers spell them freely)."""
    return email.strip().lower()


class ClientRepository:
    """Reads and writes `clients`, and `client_emails` (the addresses proven to be each customer's)."""

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
        """A client matching a phone number (any WhatsApp address with it) or, failing that, a *proven* e-mail.

        The e-mail a customer merely typed (`clients.email`) is never matched: anybody can type anybody's address,
        and whoever is found here is shown, and may cancel, the booking being matched. See `find_by_proven_email`.
        """
        if phone:
            row = await self._db.fetch_one(
                f"SELECT {_COLUMNS} FROM clients WHERE phone = :phone ORDER BY id LIMIT 1", {"phone": phone}
            )
            if row:
                return Client.model_validate(row)
        return await self.find_by_proven_email(email) if email else None

    async def find_by_proven_email(self, email: str) -> Client | None:
        """The one client this e-mail is proven for (any case); None if it is proven for nobody, or for several.

        Two customers holding the same proven address (say, a couple booking with a shared one) cannot be told
        apart: neither gets the booking, rather than the wrong one.
        """
        rows = await self._db.fetch_all(
            f"SELECT {_COLUMNS} FROM clients WHERE id IN (SELECT client_id FROM client_emails WHERE email = :email) "
            "ORDER BY id LIMIT 2",
            {"email": normalize_email(email)},
        )
        return Client.model_validate(rows[0]) if len(rows) == 1 else None

    async def prove_email(self, client_id: int, email: str | None, *, source: EmailProof, now: datetime) -> None:
        """Record that `email` belongs to the client: the agent booked for their WhatsApp number with it
        ('agent_booking'), or a Calendly booking matched to them by phone carried it ('calendly_phone').

        From then on a Calendly booking with that address and no known phone number is theirs (unless the address is
        proven for another customer too). None or a blank address proves nothing (a booking made without one);
        proving an address again keeps the first proof.
        """
        if email is None or not email.strip():
            return
        await self._db.execute(
            "INSERT INTO client_emails (client_id, email, source, proven_at) "
            "VALUES (:client_id, :email, :source, :now) ON CONFLICT (client_id, email) DO NOTHING",
            {"client_id": client_id, "email": normalize_email(email), "source": source, "now": now},
        )

    async def proven_emails(self, client_id: int) -> list[str]:
        """The addresses proven for a client (normalized), in alphabetical order."""
        rows = await self._db.fetch_all(
            "SELECT email FROM client_emails WHERE client_id = :client_id ORDER BY email", {"client_id": client_id}
        )
        return [str(row["email"]) for row in rows]

    async def ensure(self, wa_id: str, *, now: datetime, profile_name: str | None = None) -> Client:
        """The client for a WhatsApp address, created on first contact; the profile name is kept current."""
        params = {"wa_id": wa_id, "phone": phone_of(wa_id), "profile_name": profile_name, "now": now}
        # Every turn asks: one read when nothing is to change (the customer is known, under the same name).
        row = await self._db.fetch_one(f"SELECT {_COLUMNS} FROM clients WHERE wa_id = :wa_id", params)
        if row is not None and (not profile_name or row["profile_name"] == profile_name):
            return Client.model_validate(row)
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
