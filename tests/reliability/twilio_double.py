"""Twilio's Messages REST API as a local HTTP server: create (form-encoded, 201 as in the docs) and list (filters
To, From, DateSent / DateSent< / DateSent>, Twilio's page envelope), Basic auth with the account SID and token.

Fault switches: answer every create with a status (500, 429 with Retry-After) or hang it; `accepted` gate: record the
message (Twilio has it and will deliver it) but hold the response, so the sender can be killed before it learns the
SID. Every accepted message and every create attempt is recorded.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.reliability.background import BackgroundServer, Gate

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
_PAGE_SIZE = 50


@dataclass(frozen=True)
class SentMessage:
    """A message Twilio accepted (and so delivers to the customer)."""

    sid: str
    to: str
    sender: str
    body: str
    content_sid: str | None
    at: datetime  # wall clock, UTC
    monotonic: float


@dataclass(frozen=True)
class Attempt:
    """One create request and how it was answered."""

    to: str
    body: str
    status: int
    monotonic: float
    retry_after: float | None = None


@dataclass
class TwilioFault:
    """How creates fail while the fault is set: a status (with Retry-After for 429), or a hang."""

    status: int = 500
    retry_after: float | None = None
    hang: bool = False


@dataclass
class TwilioDouble:
    """The double's state; `server` serves it."""

    account_sid: str
    auth_token: str
    fault: TwilioFault | None = None
    accepted_gate: Gate = field(default_factory=Gate)
    messages: list[SentMessage] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    list_requests: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _sids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        prefix = "/2010-04-01/Accounts/{account}"
        app = Starlette(
            routes=[
                Route(prefix + "/Messages.json", self._messages, methods=["GET", "POST"]),
                Route(prefix + ".json", self._account, methods=["GET"]),
            ]
        )
        self.server = BackgroundServer(app, name="twilio")

    def to(self, wa_id: str) -> list[SentMessage]:
        """Accepted messages to one address, oldest first."""
        with self._lock:
            return [m for m in self.messages if m.to == wa_id]

    def accepted(self) -> list[SentMessage]:
        """Every accepted message, oldest first."""
        with self._lock:
            return list(self.messages)

    def _authorized(self, request: Request) -> bool:
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        return request.headers.get("authorization") == f"Basic {expected}" and (
            request.path_params["account"] == self.account_sid
        )

    async def _account(self, request: Request) -> Response:
        if not self._authorized(request):
            return _error(401, 20003, "Authenticate")
        return JSONResponse({"sid": self.account_sid, "status": "active"})

    async def _messages(self, request: Request) -> Response:
        if not self._authorized(request):
            return _error(401, 20003, "Authenticate")
        if request.method == "GET":
            return self._list(request)
        return await self._create(request)

    async def _create(self, request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        to, sender = form.get("To", ""), form.get("From", "")
        body = form.get("Body", "")
        if not to or not sender:
            return _error(400, 21604, "A 'To' phone number is required.")
        if not body and not form.get("ContentSid"):
            return _error(400, 21619, "A text message Body or Media URL is required.")
        fault = self.fault
        now = time.monotonic()
        if fault is not None:
            if fault.hang:
                while self.fault is fault:  # noqa: ASYNC110 - switched from the test's thread
                    await asyncio.sleep(0.05)
                return _error(503, 20503, "Service Unavailable")
            with self._lock:
                self.attempts.append(Attempt(to, body, fault.status, now, fault.retry_after))
            headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else None
            message = "Too Many Requests" if fault.status == 429 else "Internal Server Error"
            return _error(fault.status, 20429 if fault.status == 429 else 20500, message, headers)
        moment = datetime.now(UTC)
        sid = f"SM{next(self._sids):08d}{int(moment.timestamp() * 1e6):024x}"[:34]
        sent = SentMessage(sid, to, sender, body, form.get("ContentSid"), moment, now)
        with self._lock:
            self.attempts.append(Attempt(to, body, 201, now))
            self.messages.append(sent)
        # Twilio has the message now, whatever happens to this response.
        await self.accepted_gate.passage()
        resource = self._resource(sent)
        resource.update({"status": "queued", "date_sent": None})
        return JSONResponse(resource, status_code=201)

    def _list(self, request: Request) -> Response:
        query = request.query_params
        with self._lock:
            self.list_requests += 1
            found = [m for m in reversed(self.messages) if _matches(m, query)]  # newest first, as Twilio lists
        size = max(1, min(int(query.get("PageSize", _PAGE_SIZE)), 1000))
        page = int(query.get("Page", "0"))
        chunk = found[page * size : (page + 1) * size]
        kept = [(k, v) for k, v in query.multi_items() if k not in ("Page", "PageToken", "PageSize")]

        def uri(n: int) -> str:
            return f"{request.url.path}?{urlencode([*kept, ('PageSize', size), ('Page', n), ('PageToken', f'PA{n}')])}"

        more = (page + 1) * size < len(found)
        return JSONResponse(
            {
                "messages": [self._resource(m) for m in chunk],
                "end": page * size + max(len(chunk) - 1, 0),
                "first_page_uri": uri(0),
                "next_page_uri": uri(page + 1) if more else None,
                "page": page,
                "page_size": size,
                "previous_page_uri": uri(page - 1) if page > 0 else None,
                "start": page * size,
                "uri": uri(page),
            }
        )

    def _resource(self, message: SentMessage) -> dict[str, Any]:
        created: dict[str, Any] = json.loads((FIXTURES / "twilio-message-created.json").read_text(encoding="utf-8"))
        stamp = format_datetime(message.at)
        uri = f"/2010-04-01/Accounts/{self.account_sid}/Messages/{message.sid}"
        created.update(
            {
                "account_sid": self.account_sid,
                "sid": message.sid,
                "to": message.to,
                "from": message.sender,
                "body": message.body,
                "status": "sent",
                "date_created": stamp,
                "date_updated": stamp,
                "date_sent": stamp,
                "uri": uri + ".json",
                "subresource_uris": {"media": uri + "/Media.json"},
            }
        )
        return created


def _matches(message: SentMessage, query: Any) -> bool:
    if query.get("To") and message.to != query["To"]:
        return False
    if query.get("From") and message.sender != query["From"]:
        return False
    # `DateSent>` / `DateSent<` are "on or after" / "on or before" (the SDK's date_sent_after / _before).
    for key, wanted in (("DateSent>", (0, 1)), ("DateSent<", (-1, 0)), ("DateSent", (0,))):
        value = query.get(key)
        if not value:
            continue
        if len(value) == 10:  # YYYY-MM-DD: Twilio compares dates
            bound: Any = datetime.fromisoformat(value).date()
            sent: Any = message.at.date()
        else:
            bound = datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC).replace(microsecond=0)
            sent = message.at.replace(microsecond=0)
        if (sent > bound) - (sent < bound) not in wanted:
            return False
    return True


def _error(status: int, code: int, message: str, headers: dict[str, str] | None = None) -> Response:
    more_info = f"https://www.twilio.com/docs/errors/{code}"
    body = {"code": code, "message": message, "more_info": more_info, "status": status}
    return JSONResponse(body, status_code=status, headers=headers)
