"""Calendly API v2 resources (as Calendly sends them) and the errors `CalendlyClient` raises.

Field names follow Calendly's wire format exactly; unknown fields are ignored so additions on their side never break
parsing. Every timestamp is parsed into an aware datetime.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict


class _Resource(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Pagination(_Resource):
    """The `pagination` block of a collection response."""

    count: int = 0
    next_page: str | None = None
    next_page_token: str | None = None


class CalendlyUser(_Resource):
    """The user the access token belongs to (GET /users/me)."""

    uri: str
    name: str
    email: str
    timezone: str
    current_organization: str
    slug: str | None = None
    scheduling_url: str | None = None


class CustomQuestion(_Resource):
    """A question on an event type's booking form."""

    name: str
    type: str
    position: int
    enabled: bool = True
    required: bool = False


class EventType(_Resource):
    """A bookable kind of meeting (one per salon service)."""

    uri: str
    name: str
    active: bool
    duration: int
    slug: str | None = None
    scheduling_url: str | None = None
    kind: str | None = None
    custom_questions: tuple[CustomQuestion, ...] = ()


class AvailableTime(_Resource):
    """One start time Calendly offers for an event type."""

    status: str
    start_time: AwareDatetime
    invitees_remaining: int = 0
    scheduling_url: str | None = None


class Location(_Resource):
    """Where a booked meeting happens; for the salon always `kind='physical'` with the address."""

    kind: str
    location: str | None = None


class QuestionAndAnswer(_Resource):
    """An answer to a booking-form question."""

    question: str
    answer: str
    position: int = 0


class Invitee(_Resource):
    """A person booked on a scheduled event (POST /invitees, GET /scheduled_events/{uuid}/invitees[/{uuid}])."""

    uri: str
    email: str
    name: str
    status: str
    timezone: str
    event: str
    created_at: AwareDatetime
    updated_at: AwareDatetime
    text_reminder_number: str | None = None
    cancel_url: str | None = None
    reschedule_url: str | None = None
    rescheduled: bool = False
    # On the invitee of a rescheduled booking: the invitee (of the old, now canceled event) it replaces.
    old_invitee: str | None = None
    questions_and_answers: tuple[QuestionAndAnswer, ...] = ()


class Cancellation(_Resource):
    """The answer to POST /scheduled_events/{uuid}/cancellation, also a canceled event's `cancellation`."""

    canceled_by: str
    canceler_type: str
    created_at: AwareDatetime
    reason: str | None = None


class InviteesCounter(_Resource):
    """How many invitees an event has and may have."""

    total: int
    active: int
    limit: int


class ScheduledEvent(_Resource):
    """A booked meeting (GET /scheduled_events)."""

    uri: str
    name: str
    status: str
    start_time: AwareDatetime
    end_time: AwareDatetime
    event_type: str
    created_at: AwareDatetime
    updated_at: AwareDatetime
    location: dict[str, Any] | None = None
    invitees_counter: InviteesCounter | None = None
    cancellation: Cancellation | None = None  # who cancelled and why, on a canceled event


class WebhookSubscription(_Resource):
    """A webhook subscription (POST/GET /webhook_subscriptions)."""

    uri: str
    callback_url: str
    state: str
    events: tuple[str, ...]
    scope: str
    organization: str
    created_at: AwareDatetime
    updated_at: AwareDatetime
    user: str | None = None
    creator: str | None = None
    retry_started_at: AwareDatetime | None = None


class ErrorDetail(_Resource):
    """One entry of an error body's `details`: which parameter was wrong and why."""

    message: str = ""
    parameter: str | None = None


class CalendlyError(Exception):
    """Base class of everything `CalendlyClient` raises."""


class CalendlyApiError(CalendlyError):
    """Calendly refused the request with a 4xx and its `{title, message, details}` body."""

    def __init__(self, status: int, title: str, message: str, details: Sequence[ErrorDetail] = ()) -> None:
        self.status = status
        self.title = title
        self.message = message
        self.details = tuple(details)
        super().__init__(self.describe())

    def describe(self) -> str:
        """Status, title, message and each detail, e.g. '400 Invalid Argument: ... (start_time: must be ...)'."""
        text = f"{self.status} {self.title}: {self.message}".rstrip(": ")
        if self.details:
            text += " (" + "; ".join(_detail_text(d) for d in self.details) + ")"
        return text


class CalendlyRateLimited(CalendlyError):
    """Calendly kept answering 429; `reset_seconds` is when its window reopens (X-RateLimit-Reset)."""

    def __init__(self, reset_seconds: float) -> None:
        self.reset_seconds = reset_seconds
        super().__init__(f"Calendly rate limit reached; it resets in {reset_seconds:g} s")


class CalendlyUnavailable(CalendlyError):
    """Calendly could not be reached or kept failing with 5xx."""


def _detail_text(detail: ErrorDetail) -> str:
    return f"{detail.parameter}: {detail.message}" if detail.parameter else detail.message
