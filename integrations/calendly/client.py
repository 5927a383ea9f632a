"""The Calendly API v2 as typed resources: users, event types, available times, invitees, events and webhooks.

Only what Asistente needs: the current user, event types, available times, booking (Scheduling API `POST /invitees`),
cancelling, listing scheduled events and their invitees, and webhook subscriptions. Requests, rate limits, retries and
pagination are `CalendlyTransport`'s.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import httpx

from core.clock import Clock, SystemClock
from integrations.calendly.models import (
    AvailableTime,
    CalendlyUser,
    Cancellation,
    EventType,
    Invitee,
    Location,
    QuestionAndAnswer,
    ScheduledEvent,
    WebhookSubscription,
)
from integrations.calendly.transport import (
    DEFAULT_MAX_RATE_LIMIT_WAIT,
    DEFAULT_RATE_LIMIT_BUDGET,
    PAGE_SIZE,
    CalendlyTransport,
    Query,
    Sleep,
)

# GET /event_type_available_times accepts at most 31 days per request (7 before Calendly's 2026-07-09 change).
AVAILABLE_TIMES_MAX_SPAN = timedelta(days=31)
# Calendly refuses a start_time in the past; a minute of margin keeps "now" in the future when the request lands.
_FUTURE_MARGIN = timedelta(minutes=1)


class CalendlyClient:
    """Calendly API v2 over httpx. Create one per process; close it with `aclose()` (or `async with`)."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        http: httpx.AsyncClient | None = None,
        sleep: Sleep = asyncio.sleep,
        max_rate_limit_wait: float = DEFAULT_MAX_RATE_LIMIT_WAIT,
        rate_limit_budget: float = DEFAULT_RATE_LIMIT_BUDGET,
        max_rate_limit_retries: int = 2,
        max_retries: int = 2,
        backoff_seconds: float = 0.5,
        clock: Clock | None = None,
    ) -> None:
        """The defaults suit a customer's turn or an admin request: a 429 whose reset is over 5 s (or that would
        take one request's waits past 8 s) raises `CalendlyRateLimited` at once rather than blocking."""
        self._transport = CalendlyTransport(
            base_url,
            token,
            http=http,
            sleep=sleep,
            max_rate_limit_wait=max_rate_limit_wait,
            rate_limit_budget=rate_limit_budget,
            max_rate_limit_retries=max_rate_limit_retries,
            max_retries=max_retries,
            backoff_seconds=backoff_seconds,
        )
        self._clock: Clock = clock or SystemClock()

    def __repr__(self) -> str:
        return f"CalendlyClient(base_url={self._transport.base_url!r})"

    async def aclose(self) -> None:
        """Close the HTTP client if this object created it."""
        await self._transport.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def current_user(self) -> CalendlyUser:
        """The user the token belongs to (GET /users/me); also the cheapest health check."""
        data = await self._transport.request("GET", "/users/me")
        return CalendlyUser.model_validate(data["resource"])

    async def list_event_types(self, user_uri: str) -> list[EventType]:
        """Every event type of `user_uri`, following pagination to the end."""
        return await self._transport.paginate("/event_types", [("user", user_uri), ("count", PAGE_SIZE)], EventType)

    async def available_times(
        self, event_type_uri: str, start: datetime, end: datetime, *, now: datetime | None = None
    ) -> list[AvailableTime]:
        """Bookable start times of an event type in [start, end), oldest first, with aware datetimes.

        A start in the past is moved to now (Calendly refuses past ranges) and a range longer than Calendly's
        31-day limit is fetched in several requests. `now` defaults to the client's clock.
        """
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError("available_times needs timezone-aware datetimes")
        cursor = max(start, (now or self._clock.now()) + _FUTURE_MARGIN)
        found: dict[datetime, AvailableTime] = {}
        while cursor < end:
            chunk_end = min(cursor + AVAILABLE_TIMES_MAX_SPAN, end)
            params = [("event_type", event_type_uri), ("start_time", _iso(cursor)), ("end_time", _iso(chunk_end))]
            data = await self._transport.request("GET", "/event_type_available_times", params=params)
            for item in data.get("collection", []):
                available = AvailableTime.model_validate(item)
                # A time on a chunk boundary may come back from both requests.
                found.setdefault(available.start_time, available)
            cursor = chunk_end
        return [found[key] for key in sorted(found) if start <= key < end]

    async def create_invitee(
        self,
        event_type_uri: str,
        start_time: datetime,
        *,
        name: str,
        email: str,
        timezone: str,
        text_reminder_number: str | None = None,
        location: Location | None = None,
        questions_and_answers: Sequence[QuestionAndAnswer] = (),
    ) -> Invitee:
        """Book `start_time` on an event type for one invitee (Scheduling API, POST /invitees).

        Never sent twice unless the first attempt failed to connect: a lost answer may still mean a booking.
        """
        invitee = {"name": name, "email": email, "timezone": timezone}
        if text_reminder_number:
            invitee["text_reminder_number"] = text_reminder_number
        body: dict[str, Any] = {"event_type": event_type_uri, "start_time": _iso(start_time), "invitee": invitee}
        if location is not None:
            body["location"] = location.model_dump(exclude_none=True)
        if questions_and_answers:
            body["questions_and_answers"] = [qa.model_dump() for qa in questions_and_answers]
        data = await self._transport.request("POST", "/invitees", json=body, replayable=False)
        return Invitee.model_validate(data["resource"])

    async def get_invitee(self, invitee_uri: str) -> Invitee:
        """One invitee, by its URI (https://api.calendly.com/scheduled_events/{uuid}/invitees/{uuid})."""
        data = await self._transport.request("GET", _path_of(invitee_uri))
        return Invitee.model_validate(data["resource"])

    async def list_event_invitees(self, event_uri_or_uuid: str, *, status: str | None = None) -> list[Invitee]:
        """The invitees of a scheduled event ('active' or 'canceled' only, with `status`), following pagination."""
        params: Query = [("count", PAGE_SIZE)] + ([("status", status)] if status else [])
        return await self._transport.paginate(
            f"/scheduled_events/{_uuid_of(event_uri_or_uuid)}/invitees", params, Invitee
        )

    async def cancel_event(self, event_uri_or_uuid: str, reason: str | None = None) -> Cancellation:
        """Cancel a scheduled event as the host; Calendly notifies the invitee and shows them `reason`."""
        body = {"reason": reason} if reason else {}
        path = f"/scheduled_events/{_uuid_of(event_uri_or_uuid)}/cancellation"
        data = await self._transport.request("POST", path, json=body, replayable=False)
        return Cancellation.model_validate(data["resource"])

    async def get_scheduled_event(self, event_uri_or_uuid: str) -> ScheduledEvent:
        """One scheduled event (GET /scheduled_events/{uuid}); its `status` is 'canceled' once it was cancelled."""
        data = await self._transport.request("GET", f"/scheduled_events/{_uuid_of(event_uri_or_uuid)}")
        return ScheduledEvent.model_validate(data["resource"])

    async def list_scheduled_events(
        self,
        user_uri: str,
        *,
        invitee_email: str | None = None,
        min_start_time: datetime | None = None,
        status: str | None = None,
        max_start_time: datetime | None = None,
    ) -> list[ScheduledEvent]:
        """A user's scheduled events in start order, optionally filtered, following pagination to the end."""
        params: Query = [("user", user_uri), ("count", PAGE_SIZE), ("sort", "start_time:asc")]
        if invitee_email:
            params.append(("invitee_email", invitee_email))
        if min_start_time is not None:
            params.append(("min_start_time", _iso(min_start_time)))
        if max_start_time is not None:
            params.append(("max_start_time", _iso(max_start_time)))
        if status:
            params.append(("status", status))
        return await self._transport.paginate("/scheduled_events", params, ScheduledEvent)

    async def create_webhook_subscription(
        self,
        url: str,
        events: Sequence[str],
        *,
        organization: str,
        user: str | None,
        scope: str,
        signing_key: str | None = None,
    ) -> WebhookSubscription:
        """Subscribe `url` to webhook `events` ('invitee.created', 'invitee.canceled') for a user or organization."""
        body: dict[str, Any] = {"url": url, "events": list(events), "organization": organization, "scope": scope}
        if user:
            body["user"] = user
        if signing_key:
            body["signing_key"] = signing_key
        data = await self._transport.request("POST", "/webhook_subscriptions", json=body, replayable=False)
        return WebhookSubscription.model_validate(data["resource"])

    async def list_webhook_subscriptions(
        self, organization: str, scope: str, *, user: str | None = None
    ) -> list[WebhookSubscription]:
        """The webhook subscriptions of an organization (scope 'organization') or one user (scope 'user')."""
        params: Query = [("organization", organization), ("scope", scope), ("count", PAGE_SIZE)]
        if user:
            params.append(("user", user))
        return await self._transport.paginate("/webhook_subscriptions", params, WebhookSubscription)


def _iso(moment: datetime) -> str:
    """Calendly's timestamp format: UTC with a 'Z', whole seconds ('2026-11-26T09:00:00Z')."""
    if moment.tzinfo is None:
        raise ValueError("Calendly timestamps must be timezone-aware")
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def _uuid_of(uri_or_uuid: str) -> str:
    return uri_or_uuid.rstrip("/").rsplit("/", 1)[-1]


def _path_of(uri: str) -> str:
    return urlsplit(uri).path if "://" in uri else uri
