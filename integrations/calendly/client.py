"""An async client for the Calendly API v2: typed resources, pagination, rate limits and retries.

Only what Asistente needs: the current user, event types, available times, booking (Scheduling API `POST /invitees`),
cancelling, listing scheduled events and their invitees, and webhook subscriptions. The access token is sent on every
request and appears nowhere else (not in logs, reprs or exception messages).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import parse_qsl, urlsplit

import httpx
from pydantic import BaseModel

from core.clock import Clock, SystemClock
from integrations.calendly.models import (
    AvailableTime,
    CalendlyApiError,
    CalendlyRateLimited,
    CalendlyUnavailable,
    CalendlyUser,
    Cancellation,
    ErrorDetail,
    EventType,
    Invitee,
    Location,
    QuestionAndAnswer,
    ScheduledEvent,
    WebhookSubscription,
)

logger = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
Query = list[tuple[str, str]]
ModelT = TypeVar("ModelT", bound=BaseModel)

# GET /event_type_available_times accepts at most 31 days per request (7 before Calendly's 2026-07-09 change).
AVAILABLE_TIMES_MAX_SPAN = timedelta(days=31)
# Calendly refuses a start_time in the past; a minute of margin keeps "now" in the future when the request lands.
_FUTURE_MARGIN = timedelta(minutes=1)
_PAGE_SIZE = "100"
_MAX_PAGES = 100
_DEFAULT_RESET_SECONDS = 60.0
# Failures where the request certainly never reached Calendly, so even a booking may be sent again.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


class CalendlyClient:
    """Calendly API v2 over httpx. Create one per process; close it with `aclose()` (or `async with`)."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        http: httpx.AsyncClient | None = None,
        sleep: Sleep = asyncio.sleep,
        max_rate_limit_wait: float = 60.0,
        max_rate_limit_retries: int = 2,
        max_retries: int = 2,
        backoff_seconds: float = 0.5,
        clock: Clock | None = None,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        self._owns_http = http is None
        self._http = http if http is not None else httpx.AsyncClient(timeout=httpx.Timeout(15.0))
        self._sleep = sleep
        self._max_rate_limit_wait = max_rate_limit_wait
        self._max_rate_limit_retries = max_rate_limit_retries
        self._max_retries = max_retries
        self._backoff_seconds = backoff_seconds
        self._clock: Clock = clock or SystemClock()

    def __repr__(self) -> str:
        return f"CalendlyClient(base_url={self._base_url!r})"

    async def aclose(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def current_user(self) -> CalendlyUser:
        """The user the token belongs to (GET /users/me); also the cheapest health check."""
        data = await self._request("GET", "/users/me")
        return CalendlyUser.model_validate(data["resource"])

    async def list_event_types(self, user_uri: str) -> list[EventType]:
        """Every event type of `user_uri`, following pagination to the end."""
        return await self._paginate("/event_types", [("user", user_uri), ("count", _PAGE_SIZE)], EventType)

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
            data = await self._request("GET", "/event_type_available_times", params=params)
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
        data = await self._request("POST", "/invitees", json=body, replayable=False)
        return Invitee.model_validate(data["resource"])

    async def get_invitee(self, invitee_uri: str) -> Invitee:
        """One invitee, by its URI (https://api.calendly.com/scheduled_events/{uuid}/invitees/{uuid})."""
        data = await self._request("GET", _path_of(invitee_uri))
        return Invitee.model_validate(data["resource"])

    async def list_event_invitees(self, event_uri_or_uuid: str, *, status: str | None = None) -> list[Invitee]:
        """The invitees of a scheduled event ('active' or 'canceled' only, with `status`), following pagination."""
        params: Query = [("count", _PAGE_SIZE)] + ([("status", status)] if status else [])
        return await self._paginate(f"/scheduled_events/{_uuid_of(event_uri_or_uuid)}/invitees", params, Invitee)

    async def cancel_event(self, event_uri_or_uuid: str, reason: str | None = None) -> Cancellation:
        """Cancel a scheduled event as the host; Calendly notifies the invitee and shows them `reason`."""
        body = {"reason": reason} if reason else {}
        path = f"/scheduled_events/{_uuid_of(event_uri_or_uuid)}/cancellation"
        data = await self._request("POST", path, json=body, replayable=False)
        return Cancellation.model_validate(data["resource"])

    async def list_scheduled_events(
        self,
        user_uri: str,
        *,
        invitee_email: str | None = None,
        min_start_time: datetime | None = None,
        status: str | None = None,
    ) -> list[ScheduledEvent]:
        """A user's scheduled events in start order, optionally filtered, following pagination to the end."""
        params: Query = [("user", user_uri), ("count", _PAGE_SIZE), ("sort", "start_time:asc")]
        if invitee_email:
            params.append(("invitee_email", invitee_email))
        if min_start_time is not None:
            params.append(("min_start_time", _iso(min_start_time)))
        if status:
            params.append(("status", status))
        return await self._paginate("/scheduled_events", params, ScheduledEvent)

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
        data = await self._request("POST", "/webhook_subscriptions", json=body, replayable=False)
        return WebhookSubscription.model_validate(data["resource"])

    async def list_webhook_subscriptions(
        self, organization: str, scope: str, *, user: str | None = None
    ) -> list[WebhookSubscription]:
        """The webhook subscriptions of an organization (scope 'organization') or one user (scope 'user')."""
        params: Query = [("organization", organization), ("scope", scope), ("count", _PAGE_SIZE)]
        if user:
            params.append(("user", user))
        return await self._paginate("/webhook_subscriptions", params, WebhookSubscription)

    async def _paginate(self, path: str, params: Query, model: type[ModelT]) -> list[ModelT]:
        items: list[ModelT] = []
        query = params
        for _ in range(_MAX_PAGES):
            data = await self._request("GET", path, params=query)
            items.extend(model.model_validate(item) for item in data.get("collection", []))
            next_page = (data.get("pagination") or {}).get("next_page")
            if not next_page:
                return items
            # Re-issue Calendly's next-page query against our base URL, so a configured proxy stays in the path.
            query = parse_qsl(urlsplit(next_page).query)
        raise CalendlyUnavailable(f"GET {path}: more than {_MAX_PAGES} pages")

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Query | None = None,
        json: dict[str, Any] | None = None,
        replayable: bool = True,
    ) -> dict[str, Any]:
        failures = 0
        rate_limited = 0
        while True:
            try:
                response = await self._http.request(
                    method, self._base_url + path, params=tuple(params or ()), json=json, headers=self._headers
                )
            except httpx.TransportError as exc:
                failures += 1
                if failures > self._max_retries or not (replayable or isinstance(exc, _NOT_SENT)):
                    raise CalendlyUnavailable(f"{method} {path}: {type(exc).__name__}") from exc
                await self._sleep(self._backoff_seconds * 2 ** (failures - 1))
                continue
            status = response.status_code
            if status == 429:
                reset = _reset_seconds(response)
                if rate_limited >= self._max_rate_limit_retries or reset > self._max_rate_limit_wait:
                    raise CalendlyRateLimited(reset)
                rate_limited += 1
                logger.warning("calendly rate limited", extra={"path": path, "reset_seconds": reset})
                await self._sleep(reset)
                continue
            if status >= 500:
                failures += 1
                # A 5xx after a POST may still have booked or cancelled: only reads are repeated.
                if failures > self._max_retries or not replayable:
                    raise CalendlyUnavailable(f"{method} {path}: Calendly answered {status}")
                logger.warning("calendly server error", extra={"path": path, "status": status})
                await self._sleep(self._backoff_seconds * 2 ** (failures - 1))
                continue
            if status >= 400:
                raise _api_error(response)
            return _json_object(response)


def _iso(moment: datetime) -> str:
    """Calendly's timestamp format: UTC with a 'Z', whole seconds ('2026-11-26T09:00:00Z')."""
    if moment.tzinfo is None:
        raise ValueError("Calendly timestamps must be timezone-aware")
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def _uuid_of(uri_or_uuid: str) -> str:
    return uri_or_uuid.rstrip("/").rsplit("/", 1)[-1]


def _path_of(uri: str) -> str:
    return urlsplit(uri).path if "://" in uri else uri


def _reset_seconds(response: httpx.Response) -> float:
    for header in ("X-RateLimit-Reset", "Retry-After"):
        value = response.headers.get(header)
        if value is not None:
            try:
                return max(0.0, float(value))
            except ValueError:
                continue
    return _DEFAULT_RESET_SECONDS


def _json_object(response: httpx.Response) -> dict[str, Any]:
    if not response.content:
        return {}
    try:
        data = response.json()
    except ValueError as exc:
        raise CalendlyUnavailable(f"Calendly answered {response.status_code} with a body that is not JSON") from exc
    if not isinstance(data, dict):
        raise CalendlyUnavailable(f"Calendly answered {response.status_code} with an unexpected JSON body")
    return data


def _api_error(response: httpx.Response) -> CalendlyApiError:
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return CalendlyApiError(response.status_code, response.reason_phrase, response.text[:200])
    details = [ErrorDetail.model_validate(d) for d in data.get("details") or [] if isinstance(d, dict)]
    return CalendlyApiError(
        response.status_code,
        str(data.get("title") or response.reason_phrase),
        str(data.get("message") or ""),
        details,
    )
