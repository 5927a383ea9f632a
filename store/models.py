"""Typed rows returned by the repositories."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator

from store.database import parse_json

AppointmentStatus = Literal["confirmed", "cancelled"]
AppointmentSource = Literal["agent", "calendly", "staff"]
CalendarKind = Literal["local", "calendly"]


class _Row(BaseModel):
    model_config = ConfigDict(from_attributes=True, frozen=True)


class Client(_Row):
    """A customer, keyed by WhatsApp address."""

    id: int
    wa_id: str
    phone: str
    name: str | None = None
    profile_name: str | None = None
    email: str | None = None
    language: str | None = None
    preferences: dict[str, Any] = {}
    notes: str | None = None
    last_visit_at: datetime | None = None
    created_at: datetime
    updated_at: datetime

    @field_validator("preferences", mode="before")
    @classmethod
    def _json(cls, value: object) -> object:
        return parse_json(value) if value is not None else {}

    @property
    def display_name(self) -> str | None:
        """The name the customer gave us, else their WhatsApp profile name."""
        return self.name or self.profile_name


class Appointment(_Row):
    """A booking on the local calendar or mirrored from Calendly."""

    id: str
    client_id: int | None
    service: str
    start_at: datetime
    end_at: datetime
    status: AppointmentStatus
    source: AppointmentSource
    calendar: CalendarKind
    price_eur: Decimal | None = None
    notes: str | None = None
    external_id: str | None = None
    external_invitee: str | None = None
    idempotency_key: str | None = None
    cancel_reason: str | None = None
    created_at: datetime
    updated_at: datetime
    cancelled_at: datetime | None = None


class InboundMessage(_Row):
    """A WhatsApp message received from Twilio, stored before anything else happens."""

    id: int
    message_sid: str
    wa_id: str
    profile_name: str | None = None
    body: str = ""
    button_payload: str | None = None
    media: list[dict[str, Any]] = []
    raw: dict[str, Any] = {}
    status: str
    error: str | None = None
    received_at: datetime
    processed_at: datetime | None = None

    @field_validator("media", "raw", mode="before")
    @classmethod
    def _json(cls, value: object) -> object:
        return parse_json(value)
