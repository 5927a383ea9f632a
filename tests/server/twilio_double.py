"""Twilio's Messages REST API as an in-process httpx transport: create and list, with faults on demand.

Creates answer 201 with the fixture's shape and a new SID, and Twilio then holds the message; the list filters by
`To`, `From`, `DateSent`, `DateSent<` and `DateSent>` (a date compares by day, a date-time to the second) and
answers newest first in Twilio's page envelope. Every request is recorded.

Faults: `script` fails the next creations with the given statuses; `invalid_numbers` are refused with 21211;
`fail()` fails every Messages request (create or list) for N requests or until `restore()`, optionally with
Retry-After; `lose_answers` accepts the next creations but answers them with a read timeout. A worker that dies after
Twilio accepted its message is `accept()`, called directly: Twilio holds the message and nobody learns its SID.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qsl

import httpx

from tests.conftest import FIXTURES

SENDER = "whatsapp:+14155238886"


def _wall_clock() -> datetime:
    return datetime.now(UTC)


@dataclass
class Fault:
    """How Messages requests fail while it is set: `status`, for `remaining` more requests (None: until restored)."""

    status: int
    remaining: int | None = None
    retry_after: int | None = None


@dataclass
class TwilioDouble:
    """The double's state; `transport` serves it. `now` is Twilio's clock (tests pass the server's fixed clock)."""

    script: list[int] = field(default_factory=list)
    error_body: dict[str, Any] | None = None
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    now: Callable[[], datetime] = _wall_clock
    held: list[dict[str, Any]] = field(default_factory=list)
    lose_answers: int = 0
    invalid_numbers: set[str] = field(default_factory=set)
    fault: Fault | None = None
    _sids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def transport(self) -> httpx.MockTransport:
        """The transport to inject into the app."""
        return httpx.MockTransport(self._handle)

    def messages(self) -> list[dict[str, str]]:
        """Form bodies of every message creation request (answered or not), in order."""
        return [form for method, path, form in self.requests if method == "POST" and path.endswith("/Messages.json")]

    def lookups(self) -> list[dict[str, str]]:
        """Query parameters of every message list request, in order."""
        return [query for method, path, query in self.requests if method == "GET" and path.endswith("/Messages.json")]

    def delivered_to(self, to: str) -> list[str]:
        """What Twilio holds for one address (text, or the ContentSid of a template), oldest first."""
        return [m["body"] or m["_content_sid"] for m in self.held if m["to"] == to]

    def fail(self, status: int = 500, *, times: int | None = None, retry_after: int | None = None) -> None:
        """Fail every Messages request with `status` for `times` requests (None: until `restore()`)."""
        self.fault = Fault(status, times, retry_after)

    def restore(self) -> None:
        """Twilio answers again."""
        self.fault = None

    def accept(self, form: Mapping[str, str]) -> dict[str, Any]:
        """Create a message as a POST would (recorded as one): Twilio holds it from now on. Returns the resource."""
        self.requests.append(("POST", "/2010-04-01/Accounts/AC/Messages.json", dict(form)))
        return self._create(form)

    def _create(self, form: Mapping[str, str]) -> dict[str, Any]:
        moment = self.now().astimezone(UTC)
        resource = json.loads((FIXTURES / "twilio-message-created.json").read_text(encoding="utf-8"))
        stamp = format_datetime(moment)
        resource.update(
            {
                "sid": f"SM{next(self._sids):032x}",
                "to": form.get("To"),
                "from": form.get("From", SENDER),
                "body": form.get("Body", ""),
                "date_created": stamp,
                "date_updated": stamp,
            }
        )
        # Held as listed later: sent at once (the create answer itself says 'queued', as Twilio's does). The keys
        # starting with '_' are the double's own, never shown.
        listed = {**resource, "status": "sent", "date_sent": stamp}
        self.held.append({**listed, "_at": moment, "_content_sid": form.get("ContentSid")})
        return resource

    def _handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "GET":
            form = dict(request.url.params)
        else:
            form = dict(parse_qsl(request.content.decode(), keep_blank_values=True))
        self.requests.append((request.method, path, form))
        if not path.endswith("/Messages.json"):
            if request.method == "GET" and path.startswith("/2010-04-01/Accounts/"):
                return httpx.Response(200, json={"sid": "AC", "status": "active"})
            return httpx.Response(404, json={"code": 20404, "message": "not found", "status": 404})
        if self.fault is not None:
            return self._fail(self.fault)
        if request.method == "GET":
            return httpx.Response(200, json=self._page(request, form))
        if form.get("To") in self.invalid_numbers:
            return httpx.Response(400, json=_fixture("twilio-error-21211.json"))
        status = self.script.pop(0) if self.script else 201
        if status >= 500:
            return httpx.Response(status, json={"code": 20500, "message": "Internal Server Error", "status": status})
        if status >= 400:
            return httpx.Response(status, json=self.error_body or _fixture("twilio-error-21211.json"))
        created = self._create(form)
        if self.lose_answers > 0:
            self.lose_answers -= 1
            raise httpx.ReadTimeout("the answer was lost", request=request)
        return httpx.Response(201, json=created)

    def _fail(self, fault: Fault) -> httpx.Response:
        if fault.remaining is not None:
            fault.remaining -= 1
            if fault.remaining <= 0:
                self.fault = None
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else None
        code, text = (20429, "Too Many Requests") if fault.status == 429 else (20500, "Internal Server Error")
        body = {"code": code, "message": text, "more_info": f"https://www.twilio.com/docs/errors/{code}"}
        return httpx.Response(fault.status, json={**body, "status": fault.status}, headers=headers)

    def _page(self, request: httpx.Request, query: Mapping[str, str]) -> dict[str, Any]:
        found = [m for m in reversed(self.held) if _matches(m, query)]  # newest first, as Twilio lists
        size = max(1, min(int(query.get("PageSize", "50")), 1000))
        shown = [{k: v for k, v in m.items() if not k.startswith("_")} for m in found[:size]]
        uri = f"{request.url.path}?{request.url.query.decode()}"
        return {
            "messages": shown,
            "end": max(len(shown) - 1, 0),
            "first_page_uri": uri,
            "next_page_uri": None,  # one page is all a lookup reads (at most 50 recent messages to one address)
            "page": 0,
            "page_size": size,
            "previous_page_uri": None,
            "start": 0,
            "uri": uri,
        }


def _matches(message: Mapping[str, Any], query: Mapping[str, str]) -> bool:
    if query.get("To") and message["to"] != query["To"]:
        return False
    if query.get("From") and message["from"] != query["From"]:
        return False
    sent: datetime = message["_at"]
    for key, keep in (("DateSent>", _on_or_after), ("DateSent<", _on_or_before), ("DateSent", _same)):
        value = query.get(key)
        if value and not keep(*_comparable(sent, value)):
            return False
    return True


def _comparable(sent: datetime, value: str) -> tuple[date | datetime, date | datetime]:
    if len(value) == 10:  # YYYY-MM-DD: Twilio compares dates
        return sent.date(), date.fromisoformat(value)
    bound = datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    return sent.replace(microsecond=0), bound.replace(microsecond=0)


def _on_or_after(a: Any, b: Any) -> bool:
    return bool(a >= b)


def _on_or_before(a: Any, b: Any) -> bool:
    return bool(a <= b)


def _same(a: Any, b: Any) -> bool:
    return bool(a == b)


def _fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))
