"""Calendly webhook bodies (`invitee.created`, `invitee.canceled`), as Calendly sends them; extra fields ignored."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

HANDLED_EVENTS = ("invitee.created", "invitee.canceled")

_PHONE_CHARS = re.compile(r"\+?[\d\s().-]{8,24}")
# A date typed into a form ("2026-11-30", "30.11.2026", "30-11-26"), whose digits would otherwise pass for a number.
_DATE = re.compile(r"\d{4}[-.]\d{1,2}[-.]\d{1,2}|\d{1,2}[-.]\d{1,2}[-.]\d{2}(\d{2})?")
# E.164 allows at most 15 digits; fewer than 8 (country code included) is no reachable number.
_MIN_DIGITS, _MAX_DIGITS = 8, 15
# Countries whose national numbers keep their leading 0 after the country code (elsewhere it is a trunk prefix).
_KEEPS_LEADING_ZERO = frozenset({"39", "378", "379"})


def normalize_phone(value: str, country_code: str | None = None) -> list[str]:
    """E.164 readings of a phone number as someone typed it; [] when it does not look like one.

    "+34 600 123 456" and "0034 600123456" are international. A national number ("600 123 456") needs the
    business's `country_code`; without one it is ignored rather than guessed at (it used to become "+600123456").
    With one, bare digits already starting with it ("34600123456") are also read as international, first.
    """
    text = value.strip()
    if not _PHONE_CHARS.fullmatch(text) or _DATE.fullmatch(text):
        return []
    digits = re.sub(r"\D", "", text)
    if text.startswith("+"):
        readings = [digits]
    elif digits.startswith("00"):
        readings = [digits[2:]]
    elif country_code is None:
        return []
    else:
        national = digits if country_code in _KEEPS_LEADING_ZERO else digits.removeprefix("0")
        readings = [digits] if digits.startswith(country_code) else []
        readings.append(country_code + national)
    return [f"+{d}" for d in readings if _MIN_DIGITS <= len(d) <= _MAX_DIGITS and not d.startswith("0")]


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

    def phone_candidates(self, country_code: str | None = None) -> list[str]:
        """E.164 numbers the invitee gave: the SMS reminder number first, then phone-like form answers.

        `country_code` (the business's `phone_country_code`) turns national numbers into E.164; see
        `normalize_phone`.
        """
        raw = [self.text_reminder_number] + [qa.answer for qa in self.questions_and_answers]
        phones: list[str] = []
        for value in raw:
            for phone in normalize_phone(value or "", country_code):
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
