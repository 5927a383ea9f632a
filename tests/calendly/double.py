"""A local Calendly API v2 on `httpx.MockTransport`, for tests that need to shape rate limits request by request.

It answers the endpoints Asistente calls in Calendly's wire format (bodies from tests/fixtures/calendly-*.json, the
429 headers of calendly-error-429.headers with the reset a test asks for) and records every request it receives.
"""

from __future__ import annotations

import copy
import json
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.calendly.conftest import BASE_URL, EVENT_TYPE_URI, FIXTURES, USER_URI, fixture_json

ORGANIZATION_URI = "https://api.calendly.com/organizations/OOOOOOOOOOOOOOOO"
TOO_MANY = {"title": "Too Many Requests", "message": "You have exceeded the rate limit. Please try again later."}


def rate_limit_headers(reset_seconds: int | str) -> dict[str, str]:
    """Calendly's 429 headers (calendly-error-429.headers), with `X-RateLimit-Reset` set to `reset_seconds`."""
    lines = (FIXTURES / "calendly-error-429.headers").read_text(encoding="utf-8").splitlines()[1:]
    headers = dict(line.split(": ", 1) for line in lines if line.strip())
    headers["X-RateLimit-Reset"] = str(reset_seconds)
    return headers


def calendly_time(moment: datetime) -> str:
    """Calendly's response timestamp format ('2026-11-26T09:00:00.000000Z')."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000000Z")


def scheduled_event(uuid: str, start: datetime, minutes: int = 45) -> dict[str, Any]:
    """An active event of the salon's Corte y Peinado, shaped like the fixture webhook's `scheduled_event`."""
    event: dict[str, Any] = copy.deepcopy(fixture_json("calendly-invitee-created.json")["payload"]["scheduled_event"])
    event.update(
        uri=f"{BASE_URL}/scheduled_events/{uuid}",
        name="Corte y Peinado",
        event_type=EVENT_TYPE_URI,
        start_time=calendly_time(start),
        end_time=calendly_time(start + timedelta(minutes=minutes)),
    )
    return event


@dataclass
class CalendlyDouble:
    """Calendly answering from `available` (UTC start times) and `events`; `rate_limit` queues 429s per endpoint."""

    available: list[datetime] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)
    _limits: dict[tuple[str, str], deque[int | str]] = field(default_factory=dict)

    def rate_limit(self, method: str, path: str, *resets: int | str) -> None:
        """The next requests to `method path` answer 429, one per reset (the `X-RateLimit-Reset` value, seconds),
        then the endpoint answers."""
        self._limits.setdefault((method, path), deque()).extend(resets)

    def transport(self) -> httpx.MockTransport:
        """The double as an httpx transport."""
        return httpx.MockTransport(self.handle)

    def http(self) -> httpx.AsyncClient:
        """An httpx client whose every request this double answers."""
        return httpx.AsyncClient(transport=self.transport())

    def sent(self, method: str, path: str) -> list[httpx.Request]:
        """The requests received for `method path`."""
        return [r for r in self.requests if r.method == method and r.url.path == path]

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one request as Calendly would."""
        self.requests.append(request)
        method, path = request.method, request.url.path
        queued = self._limits.get((method, path))
        if queued:
            return httpx.Response(429, headers=rate_limit_headers(queued.popleft()), json=TOO_MANY)
        if (method, path) == ("GET", "/users/me"):
            return httpx.Response(200, json={"resource": self._user()})
        if (method, path) == ("GET", "/event_type_available_times"):
            return httpx.Response(200, json={"collection": self._available_times(request)})
        if (method, path) == ("POST", "/invitees"):
            return httpx.Response(201, json=fixture_json("calendly-create-invitee-response.json"))
        if method == "POST" and path.startswith("/scheduled_events/") and path.endswith("/cancellation"):
            return httpx.Response(201, json=fixture_json("calendly-cancellation-response.json"))
        if (method, path) == ("GET", "/scheduled_events"):
            return httpx.Response(200, json=page(self.events))
        if method == "GET" and path.startswith("/scheduled_events/") and path.endswith("/invitees"):
            return httpx.Response(200, json=page([]))
        return httpx.Response(404, json={"title": "Resource Not Found", "message": f"{method} {path}"})

    def _available_times(self, request: httpx.Request) -> list[dict[str, Any]]:
        start = datetime.fromisoformat(request.url.params["start_time"])
        end = datetime.fromisoformat(request.url.params["end_time"])
        return [
            {"status": "available", "invitees_remaining": 1, "start_time": calendly_time(t)}
            for t in self.available
            if start <= t < end
        ]

    @staticmethod
    def _user() -> dict[str, Any]:
        return {
            "uri": USER_URI,
            "name": "Peluquería RB",
            "email": "hola@peluqueria-rb.example",
            "timezone": "Europe/Madrid",
            "current_organization": ORGANIZATION_URI,
        }


def page(collection: list[dict[str, Any]]) -> dict[str, Any]:
    """A one-page Calendly collection."""
    return {"collection": collection, "pagination": {"count": len(collection), "next_page": None}}


def request_json(request: httpx.Request) -> Any:
    """A request's decoded JSON body."""
    return json.loads(request.content)
