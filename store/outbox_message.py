"""The outbox row: its model and the columns every outbox query selects."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, field_validator

from store.database import parse_json

OUTBOX_COLUMNS = (
    "id, wa_id, body, kind, template_sid, template_variables, status, attempts, next_attempt_at, twilio_sid, "
    "error_code, error_message, dedupe_key, inbound_message_id, created_at, updated_at, sent_at, claimed_at, "
    "retry_not_before"
)


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
    # When the row was taken for its current send, written before the request goes out (None before version 0007).
    claimed_at: datetime | None = None
    # Twilio's Retry-After: the next attempt is never before this.
    retry_not_before: datetime | None = None

    @field_validator("template_variables", mode="before")
    @classmethod
    def _json(cls, value: object) -> object:
        return parse_json(value) if value is not None else None
