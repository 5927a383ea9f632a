"""The Calendly API v2 endpoints Asistente calls, as a local HTTP server with Calendly's wire format: users/me,
event_types, event_type_available_times, POST /invitees (Scheduling API), scheduled_events (filters invitee_email,
min/max_start_time, status; pagination), one event, its invitees, cancellation. Bearer token required.

One event type (the fixture's "Corte y Peinado"), bookable Tuesday to Saturday, 10:00 to 13:00 in the business's
timezone every 15 minutes, one invitee per start time. Fault switches: 429 with `X-RateLimit-Reset` for a while;
`booking_gate`: record a booking, then hold the answer to POST /invitees (a crash mid-booking).
"""

from __future__ import annotations

import json
import math
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.reliability.background import BackgroundServer, Gate
from tests.reliability.calendly_resources import (
    API,
    EVENT_TYPE,
    FIXTURES,
    Booking,
    cancellation,
    error,
    event_resource,
    invitee_resource,
    parse,
    stamp,
)

__all__ = ["API", "EVENT_TYPE", "Booking", "CalendlyDouble"]
_OPEN_WEEKDAYS = {1, 2, 3, 4, 5}  # Tuesday..Saturday
_FIRST, _LAST, _STEP = (10, 0), (13, 0), timedelta(minutes=15)


@dataclass
class CalendlyDouble:
    """The double's state; `server` serves it."""

    token: str
    timezone: str = "Europe/Madrid"
    closed_dates: frozenset[str] = frozenset()
    user: str = field(default_factory=lambda: f"{API}/users/{uuid.uuid4()}")
    organization: str = field(default_factory=lambda: f"{API}/organizations/{uuid.uuid4()}")
    bookings: list[Booking] = field(default_factory=list)
    requests: list[tuple[str, str, int]] = field(default_factory=list)  # method, path, status
    booking_gate: Gate = field(default_factory=Gate)
    _rate_limited_until: float = 0.0
    # Re-entrant: a booking checks the free times (which read the bookings) under the same lock.
    _lock: threading.RLock = field(default_factory=threading.RLock)

    def __post_init__(self) -> None:
        app = Starlette(
            routes=[
                Route("/users/me", self._me),
                Route("/event_types", self._event_types),
                Route("/event_type_available_times", self._available_times),
                Route("/invitees", self._create_invitee, methods=["POST"]),
                Route("/scheduled_events", self._events),
                Route("/scheduled_events/{event}", self._event),
                Route("/scheduled_events/{event}/invitees", self._invitees),
                Route("/scheduled_events/{event}/invitees/{invitee}", self._invitee),
                Route("/scheduled_events/{event}/cancellation", self._cancel, methods=["POST"]),
            ]
        )
        self.server = BackgroundServer(self._guarded(app), name="calendly")

    def rate_limit(self, seconds: float) -> None:
        """Answer every request with 429 for `seconds`; X-RateLimit-Reset counts down to the end."""
        self._rate_limited_until = time.monotonic() + seconds

    def active(self, email: str | None = None) -> list[Booking]:
        """Active bookings (of one invitee e-mail)."""
        with self._lock:
            return [b for b in self.bookings if b.status == "active" and (email is None or b.email == email)]

    def _guarded(self, app: Starlette) -> Any:
        async def guarded(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            request = Request(scope, receive)
            refusal = self._refusal(request)
            status: list[int] = []

            async def recording_send(message: Any) -> None:
                if message["type"] == "http.response.start":
                    status.append(message["status"])
                await send(message)

            if refusal is not None:
                await refusal(scope, receive, recording_send)
            else:
                await app(scope, receive, recording_send)
            with self._lock:
                self.requests.append((request.method, request.url.path, status[0] if status else 0))

        return guarded

    def _refusal(self, request: Request) -> Response | None:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return error(401, "Unauthenticated", "The access token is invalid")
        left = self._rate_limited_until - time.monotonic()
        if left > 0:
            headers = {
                "X-RateLimit-Limit": "10",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(math.ceil(left)),
            }
            return error(429, "Too Many Requests", "You have exceeded the rate limit.", headers)
        return None

    async def _me(self, request: Request) -> Response:
        return JSONResponse(
            {
                "resource": {
                    "uri": self.user,
                    "name": "Peluquería RB",
                    "email": "agenda@peluqueria.test",
                    "timezone": self.timezone,
                    "current_organization": self.organization,
                    "slug": "peluqueria-rb",
                    "scheduling_url": "https://calendly.com/peluqueria-rb",
                }
            }
        )

    async def _event_types(self, request: Request) -> Response:
        data = json.loads((FIXTURES / "calendly-event-types.json").read_text(encoding="utf-8"))
        for item in data["collection"]:
            item["profile"]["owner"] = self.user
        return JSONResponse(data)

    def _free_starts(self, start: datetime, end: datetime) -> list[datetime]:
        tz = ZoneInfo(self.timezone)
        now = datetime.now(UTC)
        taken = {b.start for b in self.active()}
        found: list[datetime] = []
        day = start.astimezone(tz).date()
        while day <= end.astimezone(tz).date():
            if day.weekday() in _OPEN_WEEKDAYS and day.isoformat() not in self.closed_dates:
                moment = datetime(day.year, day.month, day.day, *_FIRST, tzinfo=tz)
                last = datetime(day.year, day.month, day.day, *_LAST, tzinfo=tz)
                while moment <= last:
                    utc = moment.astimezone(UTC)
                    if start <= utc < end and utc > now and utc not in taken:
                        found.append(utc)
                    moment += _STEP
            day += timedelta(days=1)
        return found

    async def _available_times(self, request: Request) -> Response:
        query = request.query_params
        if query.get("event_type") != EVENT_TYPE:
            return error(404, "Resource Not Found", "The event type was not found")
        start, end = parse(query["start_time"]), parse(query["end_time"])
        if end - start > timedelta(days=31) or start < datetime.now(UTC):
            return error(400, "Invalid Argument", "The supplied parameters are invalid.")
        collection = [
            {
                "status": "available",
                "invitees_remaining": 1,
                "start_time": stamp(moment),
                "scheduling_url": f"https://calendly.com/peluqueria-rb/corte-y-peinado/{stamp(moment)}",
            }
            for moment in self._free_starts(start, end)
        ]
        return JSONResponse({"collection": collection})

    async def _create_invitee(self, request: Request) -> Response:
        body = await request.json()
        invitee = body.get("invitee") or {}
        if body.get("event_type") != EVENT_TYPE or not invitee.get("email") or not invitee.get("timezone"):
            return error(400, "Invalid Argument", "The supplied parameters are invalid.")
        start = parse(body["start_time"])
        with self._lock:
            if start not in self._free_starts(start, start + timedelta(seconds=1)):
                detail = [{"parameter": "start_time", "message": "is no longer available"}]
                return error(400, "Invalid Argument", "The supplied parameters are invalid.", details=detail)
            booking = Booking(
                event=str(uuid.uuid4()),
                invitee=str(uuid.uuid4()),
                start=start,
                email=invitee["email"],
                name=invitee.get("name") or "",
                timezone=invitee["timezone"],
                phone=invitee.get("text_reminder_number"),
                created_at=datetime.now(UTC),
            )
            self.bookings.append(booking)
        # Calendly holds the booking now, whatever happens to this answer.
        await self.booking_gate.passage()
        return JSONResponse({"resource": invitee_resource(booking)}, status_code=201)

    async def _events(self, request: Request) -> Response:
        query = request.query_params
        if query.get("user") and query["user"] != self.user:
            return error(403, "Permission Denied", "You do not have permission")
        with self._lock:
            found = list(self.bookings)
        if query.get("invitee_email"):
            found = [b for b in found if b.email == query["invitee_email"]]
        if query.get("status"):
            found = [b for b in found if b.status == query["status"]]
        if query.get("min_start_time"):
            found = [b for b in found if b.start >= parse(query["min_start_time"])]
        if query.get("max_start_time"):
            found = [b for b in found if b.start <= parse(query["max_start_time"])]
        found.sort(key=lambda b: b.start, reverse=query.get("sort") == "start_time:desc")
        count = int(query.get("count", "20"))
        offset = int(query.get("page_token") or 0)
        page = found[offset : offset + count]
        next_token = str(offset + count) if offset + count < len(found) else None
        kept = [(k, v) for k, v in query.multi_items() if k != "page_token"]
        next_page = f"{API}/scheduled_events?{urlencode([*kept, ('page_token', next_token)])}" if next_token else None
        pagination = {
            "count": len(page),
            "next_page": next_page,
            "next_page_token": next_token,
            "previous_page": None,
            "previous_page_token": None,
        }
        return JSONResponse({"collection": [event_resource(b, self.user) for b in page], "pagination": pagination})

    def _find(self, event: str) -> Booking | None:
        with self._lock:
            return next((b for b in self.bookings if b.event == event), None)

    async def _event(self, request: Request) -> Response:
        booking = self._find(request.path_params["event"])
        if booking is None:
            return error(404, "Resource Not Found", "The event was not found")
        return JSONResponse({"resource": event_resource(booking, self.user)})

    async def _invitees(self, request: Request) -> Response:
        booking = self._find(request.path_params["event"])
        if booking is None:
            return error(404, "Resource Not Found", "The event was not found")
        status = request.query_params.get("status")
        items = [invitee_resource(booking)] if status in (None, booking.status) else []
        pagination = {"count": len(items), "next_page": None, "next_page_token": None}
        return JSONResponse({"collection": items, "pagination": pagination})

    async def _invitee(self, request: Request) -> Response:
        booking = self._find(request.path_params["event"])
        if booking is None or booking.invitee != request.path_params["invitee"]:
            return error(404, "Resource Not Found", "The invitee was not found")
        return JSONResponse({"resource": invitee_resource(booking)})

    async def _cancel(self, request: Request) -> Response:
        booking = self._find(request.path_params["event"])
        if booking is None:
            return error(404, "Resource Not Found", "The event was not found")
        if booking.status == "canceled":
            return error(403, "Permission Denied", "Event in the past or already canceled")
        body = await request.json() if await request.body() else {}
        with self._lock:
            booking.status = "canceled"
            booking.cancel_reason = body.get("reason")
        return JSONResponse({"resource": cancellation(booking)}, status_code=201)
