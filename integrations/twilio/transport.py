"""How a queued message leaves: the twilio SDK over an injectable httpx client, or the log (embedded default)."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import httpx
from twilio.base.exceptions import TwilioException
from twilio.http.response import Response as TwilioResponse
from twilio.rest import Client

from core.addresses import as_whatsapp_address
from integrations.twilio.http_client import (
    DEFAULT_TIMEOUT_SECONDS,
    HttpxTwilioHttpClient,
    capturing,
    retry_after_seconds,
)

logger = logging.getLogger(__name__)

# DEFAULT_TIMEOUT_SECONDS is defined with the HTTP client and named here, where the transports are configured.
__all__ = [
    "DEFAULT_TIMEOUT_SECONDS",
    "LogTransport",
    "MessageTransport",
    "OutgoingMessage",
    "SendFailure",
    "TwilioTransport",
    "refusal",
]

# HTTP statuses worth trying again: Twilio down or overloaded, rate limits, and rejected credentials (an operator's
# fix away; nothing is wrong with the message). Every other 4xx refuses the message itself (21211 invalid number...).
_TRANSIENT_STATUSES = frozenset({401, 408, 429})
# Network errors raised before the request could reach Twilio: nothing went out, sending again is safe.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# How many of a recipient's recent messages a lookup reads (one page): a few minutes' worth of one conversation.
LOOKUP_LIMIT = 50


@dataclass(frozen=True)
class OutgoingMessage:
    """One WhatsApp message to hand to the provider: free text, or an approved template with its variables."""

    to: str
    body: str | None = None
    content_sid: str | None = None
    content_variables: Mapping[str, str] | None = None


class SendFailure(Exception):
    """The provider refused or could not be reached. `transient` failures are retried with backoff.

    `retry_after`: seconds the provider asked us to wait (its Retry-After header). `ambiguous`: the request may have
    reached the provider (no answer came), so the message may have gone out: look it up before sending it again.
    """

    def __init__(
        self,
        message: str,
        *,
        transient: bool,
        code: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
        ambiguous: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.transient = transient
        self.code = code
        self.status = status
        self.retry_after = retry_after
        self.ambiguous = ambiguous


class MessageTransport(Protocol):
    """Sends one message and returns the provider's id for it (raises `SendFailure`); finds messages it sent."""

    name: str

    async def send(self, message: OutgoingMessage) -> str:
        """Send and return the provider message id."""
        ...

    async def find_sent(self, message: OutgoingMessage, *, since: datetime) -> list[str] | None:
        """Ids of messages already at the provider that may be `message`, sent since `since`, oldest first.

        None: this transport cannot tell. Raises `SendFailure` when the provider could not be asked.
        """
        ...


class TwilioTransport:
    """Sends through the official SDK (`messages.create_async`), its API base URL pointed at TWILIO_API_BASE_URL."""

    name = "twilio"

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        from_number: str,
        api_base_url: str,
        http: httpx.AsyncClient,
        status_callback_url: str | None = None,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        """`timeout_seconds` bounds a whole request (httpx's own timeout applies per phase: connect, write, read)."""
        self._client = Client(account_sid, auth_token, http_client=HttpxTwilioHttpClient(http), environment={})
        # The SDK has no constructor argument for the host; the domain's base URL is the documented seam.
        self._client.api.base_url = api_base_url.rstrip("/")
        self._from = as_whatsapp_address(from_number)
        self._status_callback_url = status_callback_url
        self._timeout = timeout_seconds

    async def send(self, message: OutgoingMessage) -> str:
        """Create the message at Twilio; 5xx, 429 and network errors are transient, other refusals final."""
        kwargs: dict[str, Any] = {"to": message.to, "from_": self._from}
        if message.content_sid:
            kwargs["content_sid"] = message.content_sid
            if message.content_variables:
                kwargs["content_variables"] = json.dumps(dict(message.content_variables), ensure_ascii=False)
        else:
            kwargs["body"] = message.body or ""
        if self._status_callback_url:
            kwargs["status_callback"] = self._status_callback_url
        with capturing() as captured:
            try:
                async with asyncio.timeout(self._timeout):
                    created = await self._client.messages.create_async(**kwargs)
            except TimeoutError as exc:
                text = f"no answer from Twilio within {self._timeout:g} s"
                raise SendFailure(text, transient=True, ambiguous=True) from exc
            except httpx.HTTPError as exc:
                ambiguous = not isinstance(exc, _NOT_SENT)
                raise SendFailure(f"{type(exc).__name__}: {exc}", transient=True, ambiguous=ambiguous) from exc
            except TwilioException as exc:
                raise refusal(exc, captured.response) from exc
        return str(created.sid)

    async def find_sent(self, message: OutgoingMessage, *, since: datetime) -> list[str] | None:
        """Messages from our number to `message.to` created since `since` (Twilio's Messages list, filtered by
        `To`, `From` and `DateSent>`) that may be `message`: with the same text, or any for a template or content
        message, whose text Twilio lists rendered (the caller tells them apart by the SIDs it has recorded)."""
        with capturing() as captured:
            try:
                async with asyncio.timeout(self._timeout):
                    found = await self._client.messages.list_async(
                        to=message.to, from_=self._from, date_sent_after=since, limit=LOOKUP_LIMIT
                    )
            except TimeoutError as exc:
                raise SendFailure("no answer from Twilio's message list", transient=True) from exc
            except httpx.HTTPError as exc:
                raise SendFailure(f"{type(exc).__name__}: {exc}", transient=True) from exc
            except TwilioException as exc:
                raise refusal(exc, captured.response) from exc
        # `DateSent>` may be applied by day only: the creation time decides.
        recent = [m for m in found if m.sid and (m.date_created is None or m.date_created >= since)]
        if message.content_sid is None:
            wanted = (message.body or "").strip()
            recent = [m for m in recent if (m.body or "").strip() == wanted]
        recent.sort(key=lambda m: m.date_created or since)
        return [str(m.sid) for m in recent]


def refusal(exc: TwilioException, response: TwilioResponse | None) -> SendFailure:
    """A Twilio error answer as a `SendFailure`: its status, Twilio's error code and any Retry-After."""
    status = getattr(exc, "status", None)
    if status is None and response is not None:
        # A failed list page raises a bare TwilioException; the answer says what happened.
        status = response.status_code
    code = getattr(exc, "code", None)
    text = getattr(exc, "msg", None) or getattr(exc, "detail", None) or str(exc)
    transient = status is None or status >= 500 or status in _TRANSIENT_STATUSES
    # Without a Twilio error body the SDK reports the HTTP status as the code; that is not an error code.
    twilio_code = None if code is None or code == status else str(code)
    retry_after = retry_after_seconds(response.headers or {}) if response is not None else None
    return SendFailure(str(text), transient=transient, code=twilio_code, status=status, retry_after=retry_after)


class LogTransport:
    """The embedded default when Twilio is not configured: messages are logged (phone masked), not sent."""

    name = "log"

    async def send(self, message: OutgoingMessage) -> str:
        """Log the message and return a local id."""
        logger.info(
            "whatsapp message (log sender)",
            extra={
                "to": message.to,
                "body": message.body,
                "content_sid": message.content_sid,
                "content_variables": dict(message.content_variables or {}),
            },
        )
        return f"LOG{uuid.uuid4().hex}"

    async def find_sent(self, message: OutgoingMessage, *, since: datetime) -> list[str] | None:
        """The log keeps no record to ask: cannot tell (the message is logged again)."""
        return None
