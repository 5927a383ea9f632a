"""The twilio SDK's async HTTP client interface over an injectable httpx client, keeping the answer it got.

The SDK's exceptions carry the status and Twilio's error code but not the response headers, and `Retry-After` is a
header. The client hands each answer to whoever is `capturing` in the current task, so the transport can read it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from twilio.http import AsyncHttpClient
from twilio.http.response import Response as TwilioResponse

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 10.0


class Captured:
    """The last answer the SDK received inside a `capturing` block."""

    response: TwilioResponse | None = None

    @property
    def headers(self) -> Mapping[str, str]:
        """Its headers (case-insensitive when they came from httpx), empty without an answer."""
        headers = self.response.headers if self.response is not None else None
        return headers if headers is not None else {}


_capture: ContextVar[Captured | None] = ContextVar("twilio_capture", default=None)


@contextmanager
def capturing() -> Iterator[Captured]:
    """Keep the answers the SDK receives in this block (this task and any it starts)."""
    captured = Captured()
    token = _capture.set(captured)
    try:
        yield captured
    finally:
        _capture.reset(token)


class HttpxTwilioHttpClient(AsyncHttpClient):  # type: ignore[misc]
    """The twilio SDK's async HTTP client interface on top of an httpx client (so tests can inject a transport)."""

    def __init__(self, client: httpx.AsyncClient, *, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        super().__init__(logger=logger, is_async=True, timeout=timeout)
        self._client = client

    async def request(
        self,
        method: str,
        uri: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the SDK's HttpClient interface
        allow_redirects: bool = False,
    ) -> TwilioResponse:
        """Make the request the SDK asks for and wrap the answer in the SDK's response type."""
        response = await self._client.request(
            method.upper(),
            uri,
            params=_plain(params),
            data=_plain(data),
            headers=headers,
            auth=auth,
            timeout=timeout or self.timeout,
            follow_redirects=allow_redirects,
        )
        answer = TwilioResponse(response.status_code, response.text, response.headers)
        captured = _capture.get()
        if captured is not None:
            captured.response = answer
        return answer


def _plain(values: dict[str, object] | None) -> Any:
    return None if values is None else {k: v for k, v in values.items() if v is not None}


def retry_after_seconds(headers: Mapping[str, str], *, now: datetime | None = None) -> float | None:
    """`Retry-After` (delay in seconds, or an HTTP date) as seconds from now; None when absent or unreadable."""
    value = headers.get("Retry-After") or headers.get("retry-after")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
