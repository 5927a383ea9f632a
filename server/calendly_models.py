"""Calendly webhook bodies (`invitee.created`, `invitee.canceled`), as Calendly sends them; extra fields ignored."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

HANDLED_EVENTS = ("invitee.created", "invitee.canceled")

_PHONE_CHARS = re.compile(r"^\+?[\d\s().-]{8,20}$")


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class QuestionAnswer(_Wire):
    """One answer on the booking form (a phone number may hide here)."""

    question: str = ""
    answer: str | None = None


class Cancellation(_Wire):
    """Who cancelled and why."""

    canceled_by: str | None = None
    reason: str | None = None
    canceler_type: str | None = None


class ScheduledEvent(_Wire):
    """The meeting an invitee booked."""

    uri: str = Field(min_length=1)
    name: str | None = None
    start_time: AwareDatetime
    end_time: AwareDatetime
    event_type: str | None = None
    status: str | None = None


class InviteePayload(_Wire):
    """The `payload` of an invitee event."""

    uri: str = Field(min_length=1)
    event: str | None = None
    email: str | None = None
    name: str | None = None
    status: str | None = None
    rescheduled: bool = False
    old_invitee: str | None = None
    new_invitee: str | None = None
    text_reminder_number: str | None = None
    timezone: str | None = None
    questions_and_answers: tuple[QuestionAnswer, ...] = ()
    scheduled_event: ScheduledEvent
    cancellation: Cancellation | None = None

    def phone_candidates(self) -> list[str]:
        """E.164 numbers the invitee gave: the SMS reminder number first, then phone-like form answers."""
        raw = [self.text_reminder_number] + [qa.answer for qa in self.questions_and_answers]
        phones: list[str] = []
        for value in raw:
            if value and _PHONE_CHARS.match(value.strip()):
                digits = re.sub(r"\D", "", value)
                digits = digits.removeprefix("00") if value.strip().startswith("00") else digits
                phone = f"+{digits}"
                if phone not in phones:
                    phones.append(phone)
        return phones


class CalendlyWebhook(_Wire):
    """A webhook delivery."""

    event: str = Field(min_length=1)
    created_at: str = Field(min_length=1)
    created_by: str | None = None
    payload: dict[str, Any]

    def invitee(self) -> InviteePayload:
        """The payload of an invitee event, validated (raises pydantic's ValidationError)."""
        return InviteePayload.model_validate(self.payload)

    def delivery_key(self) -> str:
        """Identity of this delivery across Calendly's retries: event name, invitee and event creation time."""
        identity = f"{self.event}|{self.payload.get('uri', '')}|{self.created_at}"
        return hashlib.sha256(identity.encode()).hexdigest()


def event_uri_of_invitee(invitee_uri: str) -> str:
    """'.../scheduled_events/{E}/invitees/{I}' -> '.../scheduled_events/{E}' (where a rescheduled invitee came from)."""
    head, separator, _ = invitee_uri.partition("/invitees/")
    return head if separator else invitee_uri
