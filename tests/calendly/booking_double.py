"""A local Calendly that remembers what it booked and cancelled, and can "kill the process" mid-call.

On `httpx.MockTransport`, in Calendly API v2's wire format (resources shaped like tests/fixtures/calendly-*.json):
POST /invitees makes a scheduled event with its invitee, POST .../cancellation cancels one, and the list and get
endpoints read them back, filtered as Calendly filters them (invitee e-mail, start window, status). A booking for a
start an active event already holds is refused with Calendly's 400 on `start_time`.

`die_after(method, path)` makes the next such request take effect at Calendly and then raise `ProcessKilled`
instead of answering: what kill -9 does to a worker whose request Calendly has already processed. `lose_answer`
answers 504 after acting instead (a lost answer the process survives); `die_before` kills before Calendly acts.
"""

from __future__ import annotations

import copy
import itertools
import json
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import httpx

from tests.calendly.conftest import BASE_URL, EVENT_TYPE_URI, USER_URI, fixture_json
from tests.calendly.double import calendly_time, page

Fault = Literal["die_after", "die_before", "lose_answer"]


class ProcessKilled(BaseException):  # noqa: N818 - named for what it stands for
    """Stands for kill -9 during a call: a BaseException, so nothing in the application catches it."""


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass
class BookingCalendly:
    """Calendly with state: `events` by URI, each event's `invitees`, every request received in `requests`."""

    now: datetime
    duration_minutes: int = 45
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    invitees: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)
    lookups_fail: bool = False  # every GET of scheduled events answers 503 (what was booked cannot be asked)
    _faults: deque[tuple[str, str, Fault]] = field(default_factory=deque)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def transport(self) -> httpx.MockTransport:
        """The double as an httpx transport."""
        return httpx.MockTransport(self.handle)

    def die_after(self, method: str, path_suffix: str) -> None:
        """The next `method` request whose path ends with `path_suffix` acts, then the process "dies"."""
        self._faults.append((method, path_suffix, "die_after"))

    def die_before(self, method: str, path_suffix: str) -> None:
        """The next such request never reaches Calendly: the process "dies" while sending it."""
        self._faults.append((method, path_suffix, "die_before"))

    def lose_answer(self, method: str, path_suffix: str) -> None:
        """The next such request acts, but its answer is lost (504 from a proxy)."""
        self._faults.append((method, path_suffix, "lose_answer"))

    def sent(self, method: str, path_suffix: str = "") -> list[httpx.Request]:
        """The requests received with `method` whose path ends with `path_suffix`."""
        return [r for r in self.requests if r.method == method and r.url.path.endswith(path_suffix)]

    def active(self) -> list[dict[str, Any]]:
        """The active scheduled events, oldest first."""
        return [e for e in self.events.values() if e["status"] == "active"]

    def add_booking(self, start: datetime, email: str, name: str = "María López") -> tuple[str, str]:
        """An event booked earlier (e.g. the one an appointment mirrors); its event and invitee URIs."""
        given = {"email": email, "name": name}
        invitee = self._book({"event_type": EVENT_TYPE_URI, "start_time": calendly_time(start), "invitee": given})
        return invitee["event"], invitee["uri"]

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one request as Calendly would (or fail as the scripted fault says)."""
        self.requests.append(request)
        fault = self._fault_for(request)
        if fault == "die_before":
            raise ProcessKilled(f"{request.method} {request.url.path}")
        response = self._answer(request)
        if fault == "die_after":
            raise ProcessKilled(f"{request.method} {request.url.path}")
        if fault == "lose_answer":
            return httpx.Response(504, text="Gateway Timeout")
        return response

    def _fault_for(self, request: httpx.Request) -> Fault | None:
        for item in list(self._faults):
            method, suffix, fault = item
            if request.method == method and request.url.path.endswith(suffix):
                self._faults.remove(item)
                return fault
        return None

    def _answer(self, request: httpx.Request) -> httpx.Response:
        method, path = request.method, request.url.path
        if method == "GET" and self.lookups_fail and path.startswith("/scheduled_events"):
            return httpx.Response(503, json={"title": "Service Unavailable", "message": "try later"})
        parts = path.strip("/").split("/")
        if (method, path) == ("POST", "/invitees"):
            return self._create_invitee(json.loads(request.content))
        if (method, path) == ("GET", "/event_types"):
            return httpx.Response(200, json=fixture_json("calendly-event-types.json"))
        if (method, path) == ("GET", "/event_type_available_times"):
            return httpx.Response(200, json={"collection": self._available(request)})
        if (method, path) == ("GET", "/scheduled_events"):
            return httpx.Response(200, json=page(self._listed(request)))
        if parts[0] == "scheduled_events" and len(parts) >= 2:
            return self._event_resource(method, parts, request)
        return httpx.Response(404, json={"title": "Resource Not Found", "message": f"{method} {path}"})

    def _event_resource(self, method: str, parts: list[str], request: httpx.Request) -> httpx.Response:
        uri = f"{BASE_URL}/scheduled_events/{parts[1]}"
        event = self.events.get(uri)
        if event is None:
            return httpx.Response(404, json={"title": "Resource Not Found", "message": "The event does not exist"})
        if method == "POST" and parts[2:] == ["cancellation"]:
            return self._cancel(event, json.loads(request.content or b"{}"))
        if method == "GET" and len(parts) == 2:
            return httpx.Response(200, json={"resource": event})
        if method == "GET" and parts[2:3] == ["invitees"]:
            invitees = self.invitees[uri]
            if len(parts) == 4:
                found = [i for i in invitees if i["uri"].endswith("/" + parts[3])]
                return httpx.Response(200, json={"resource": found[0]})
            status = request.url.params.get("status")
            return httpx.Response(200, json=page([i for i in invitees if status in (None, i["status"])]))
        return httpx.Response(404, json={"title": "Resource Not Found", "message": method})

    def _create_invitee(self, body: dict[str, Any]) -> httpx.Response:
        start = _parse(body["start_time"])
        if any(_parse(e["start_time"]) == start for e in self.active()):
            detail = {"parameter": "start_time", "message": "is not available"}
            return httpx.Response(400, json={"title": "Invalid Argument", "message": "", "details": [detail]})
        return httpx.Response(201, json={"resource": self._book(body)})

    def _book(self, body: dict[str, Any]) -> dict[str, Any]:
        number = next(self._ids)
        event_uri = f"{BASE_URL}/scheduled_events/EVENT{number:011d}"
        start = _parse(body["start_time"])
        created = calendly_time(self.now)
        event: dict[str, Any] = copy.deepcopy(
            fixture_json("calendly-invitee-created.json")["payload"]["scheduled_event"]
        )
        event.update(
            uri=event_uri,
            name="Corte y Peinado",
            status="active",
            event_type=body["event_type"],
            start_time=calendly_time(start),
            end_time=calendly_time(start + timedelta(minutes=self.duration_minutes)),
            created_at=created,
            updated_at=created,
        )
        event.pop("cancellation", None)
        invitee: dict[str, Any] = copy.deepcopy(fixture_json("calendly-create-invitee-response.json")["resource"])
        given = body["invitee"]
        invitee.update(
            uri=f"{event_uri}/invitees/INVITEE{number:09d}",
            event=event_uri,
            email=given["email"],
            name=given.get("name", ""),
            text_reminder_number=given.get("text_reminder_number"),
            created_at=created,
            updated_at=created,
        )
        self.events[event_uri] = event
        self.invitees[event_uri] = [invitee]
        return invitee

    def _cancel(self, event: dict[str, Any], body: dict[str, Any]) -> httpx.Response:
        if event["status"] == "canceled":
            return httpx.Response(403, json={"title": "Permission Denied", "message": "Event is already canceled"})
        cancellation = fixture_json("calendly-cancellation-response.json")["resource"]
        cancellation["reason"] = body.get("reason")
        event.update(status="canceled", cancellation=cancellation)
        for invitee in self.invitees[event["uri"]]:
            invitee["status"] = "canceled"
        return httpx.Response(201, json={"resource": cancellation})

    def _listed(self, request: httpx.Request) -> list[dict[str, Any]]:
        params = request.url.params
        assert params.get("user") == USER_URI
        found = []
        for event in self.events.values():
            start = _parse(event["start_time"])
            emails = {i["email"] for i in self.invitees[event["uri"]]}
            if "invitee_email" in params and params["invitee_email"] not in emails:
                continue
            if "min_start_time" in params and start < _parse(params["min_start_time"]):
                continue
            if "max_start_time" in params and start > _parse(params["max_start_time"]):
                continue
            if "status" in params and event["status"] != params["status"]:
                continue
            found.append(event)
        return sorted(found, key=lambda e: e["start_time"])

    def _available(self, request: httpx.Request) -> list[dict[str, Any]]:
        # Every quarter hour from 08:30 to 18:00 UTC that no active event starts at.
        start, end = _parse(request.url.params["start_time"]), _parse(request.url.params["end_time"])
        taken = {_parse(e["start_time"]) for e in self.active()}
        times = []
        day = start.replace(hour=0, minute=0, second=0, microsecond=0)
        while day < end:
            slot = day.replace(hour=8, minute=30)
            while slot <= day.replace(hour=18):
                if start <= slot < end and slot not in taken:
                    times.append({"status": "available", "invitees_remaining": 1, "start_time": calendly_time(slot)})
                slot += timedelta(minutes=15)
            day += timedelta(days=1)
        return times
