"""Twilio's Content API, read-only: fetch a content (template) by its SID, its WhatsApp approval, its variables.

`GET {base}/v1/Content/{sid}` and `GET {base}/v1/Content/{sid}/ApprovalRequests`, with the account's basic auth.
Twilio serves them at content.twilio.com; `content_api_base` derives that from TWILIO_API_BASE_URL, so a proxy or a
local test double configured there serves the Content API too.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

_VARIABLE = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")


def content_api_base(api_base_url: str) -> str:
    """The Content API's base URL for a TWILIO_API_BASE_URL.

    Twilio's own REST hosts map to their Content twin (api.twilio.com -> content.twilio.com, and
    api.dublin.ie1.twilio.com -> content.dublin.ie1.twilio.com); any other base URL (a proxy, a local double) is
    taken to serve both APIs and is returned unchanged.
    """
    parts = urlsplit(api_base_url.rstrip("/"))
    host = parts.hostname or ""
    if host.startswith("api.") and (host == "api.twilio.com" or host.endswith(".twilio.com")):
        netloc = parts.netloc.replace(host, "content." + host.removeprefix("api."), 1)
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    return api_base_url.rstrip("/")


@dataclass(frozen=True)
class ContentTemplate:
    """A Content resource: its types (`twilio/text`, `twilio/quick-reply`, ...) with their bodies and actions."""

    sid: str
    friendly_name: str
    language: str | None
    types: dict[str, Any]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ContentTemplate:
        """Read Twilio's JSON for one Content resource."""
        types = data.get("types")
        return cls(
            sid=str(data.get("sid", "")),
            friendly_name=str(data.get("friendly_name") or ""),
            language=data.get("language"),
            types=types if isinstance(types, dict) else {},
        )

    def variables(self) -> set[str]:
        """Every `{{n}}` placeholder the content's bodies, buttons and other texts use."""
        return {match.group(1) for text in _strings(self.types) for match in _VARIABLE.finditer(text)}

    def action_ids(self, content_type: str) -> list[str]:
        """The ids of the buttons of one type (`twilio/quick-reply` actions), in order."""
        body = self.types.get(content_type)
        actions = body.get("actions") if isinstance(body, dict) else None
        if not isinstance(actions, list):
            return []
        return [str(action.get("id", "")) for action in actions if isinstance(action, dict)]


@dataclass(frozen=True)
class Approval:
    """The WhatsApp approval of a template (`approved`, `pending`, `rejected`, `unsubmitted`...)."""

    status: str
    name: str | None = None
    rejection_reason: str | None = None


class ContentLookupError(Exception):
    """The Content API did not give the resource: `status` is the HTTP status, None when it was not reached."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class ContentClient:
    """Reads Content resources with an account's credentials over a caller's httpx client."""

    def __init__(self, http: httpx.AsyncClient, base_url: str, account_sid: str, auth_token: str) -> None:
        self._http = http
        self._base = base_url.rstrip("/")
        self._auth = httpx.BasicAuth(account_sid, auth_token)

    def __repr__(self) -> str:
        return f"ContentClient(base_url={self._base!r})"

    async def fetch(self, sid: str) -> ContentTemplate:
        """The Content resource `sid`; raises `ContentLookupError` (status 404 when it does not exist)."""
        return ContentTemplate.from_json(await self._get(f"/v1/Content/{sid}"))

    async def approval(self, sid: str) -> Approval:
        """The WhatsApp approval of `sid` (`unsubmitted` when it was never sent for approval)."""
        data = await self._get(f"/v1/Content/{sid}/ApprovalRequests")
        whatsapp = data.get("whatsapp")
        if not isinstance(whatsapp, dict):
            return Approval("unsubmitted")
        return Approval(
            str(whatsapp.get("status") or "unsubmitted"),
            whatsapp.get("name"),
            whatsapp.get("rejection_reason") or None,
        )

    async def _get(self, path: str) -> dict[str, Any]:
        try:
            response = await self._http.get(self._base + path, auth=self._auth)
        except httpx.HTTPError as exc:
            raise ContentLookupError(f"{type(exc).__name__} from the Content API") from exc
        if response.status_code >= 400:
            raise ContentLookupError(_error_text(response), status=response.status_code)
        try:
            data = response.json()
        except ValueError as exc:
            raise ContentLookupError("the Content API answered something that is not JSON") from exc
        if not isinstance(data, dict):
            raise ContentLookupError("the Content API answered something that is not a JSON object")
        return data


def _error_text(response: httpx.Response) -> str:
    """`HTTP 404 (20404: The requested resource ... was not found)`, or just the status."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("message"):
        code = f"{body['code']}: " if body.get("code") else ""
        return f"HTTP {response.status_code} ({code}{body['message']})"
    return f"HTTP {response.status_code}"


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
