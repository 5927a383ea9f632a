"""Calendly's resources as its API v2 writes them (scheduled events, invitees, cancellations, errors), for the
Calendly double."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from starlette.responses import JSONResponse, Response

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
API = "https://api.calendly.com"
EVENT_TYPE = f"{API}/event_types/AAAAAAAAAAAAAAAA"
DURATION = timedelta(minutes=45)


@dataclass
class Booking:
    """One scheduled event with its single invitee."""

    event: str  # uuid
    invitee: str  # uuid
    start: datetime
    email: str
    name: str
    timezone: str
    phone: str | None
    created_at: datetime
    status: str = "active"
    cancel_reason: str | None = None


def cancellation(booking: Booking) -> dict[str, Any]:
    """A canceled event's `cancellation` (also the answer to POST .../cancellation)."""
    return {
        "canceled_by": "Peluquería RB",
        "reason": booking.cancel_reason,
        "canceler_type": "host",
        "created_at": stamp(datetime.now(UTC)),
    }


def event_resource(booking: Booking, user: str) -> dict[str, Any]:
    """A scheduled event as GET /scheduled_events lists it."""
    active = int(booking.status == "active")
    resource: dict[str, Any] = {
        "uri": f"{API}/scheduled_events/{booking.event}",
        "name": "Corte y Peinado",
        "status": booking.status,
        "start_time": stamp(booking.start),
        "end_time": stamp(booking.start + DURATION),
        "event_type": EVENT_TYPE,
        "location": {"type": "physical", "location": "Calle Mayor 1, 28013 Madrid"},
        "invitees_counter": {"total": 1, "active": active, "limit": 1},
        "created_at": stamp(booking.created_at),
        "updated_at": stamp(booking.created_at),
        "event_memberships": [{"user": user}],
        "event_guests": [],
    }
    if booking.status == "canceled":
        resource["cancellation"] = cancellation(booking)
    return resource


def invitee_resource(booking: Booking) -> dict[str, Any]:
    """The invitee, shaped like the fixture of POST /invitees's answer."""
    data: dict[str, Any] = json.loads((FIXTURES / "calendly-create-invitee-response.json").read_text(encoding="utf-8"))[
        "resource"
    ]
    event = f"{API}/scheduled_events/{booking.event}"
    data.update(
        {
            "uri": f"{event}/invitees/{booking.invitee}",
            "event": event,
            "email": booking.email,
            "name": booking.name,
            "status": booking.status,
            "timezone": booking.timezone,
            "text_reminder_number": booking.phone,
            "created_at": stamp(booking.created_at),
            "updated_at": stamp(booking.created_at),
            "cancel_url": f"https://calendly.com/cancellations/{booking.invitee}",
            "reschedule_url": f"https://calendly.com/reschedulings/{booking.invitee}",
            "questions_and_answers": [],
        }
    )
    return data


def parse(value: str) -> datetime:
    """Calendly's timestamp as an aware UTC datetime."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def stamp(moment: datetime) -> str:
    """Calendly's timestamp format: UTC, microseconds, 'Z'."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def error(
    status: int, title: str, message: str, headers: dict[str, str] | None = None, details: list[Any] | None = None
) -> Response:
    """Calendly's error body: title, message and, for invalid arguments, details."""
    body: dict[str, Any] = {"title": title, "message": message}
    if details:
        body["details"] = details
    return JSONResponse(body, status_code=status, headers=headers)
