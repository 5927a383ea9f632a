"""How a queued message leaves: the twilio SDK over an injectable httpx client, or the log (embedded default)."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
from twilio.base.exceptions import TwilioException
from twilio.http import AsyncHttpClient
from twilio.http.response import Response as TwilioResponse
from twilio.rest import Client

from core.addresses import as_whatsapp_address

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class OutgoingMessage:
    """One WhatsApp message to hand to the provider: free text, or an approved template with its variables."""

    to: str
    body: str | None = None
    content_sid: str | None = None
    content_variables: Mapping[str, str] | None = None


class SendFailure(Exception):
    """The provider refused or could not be reached. `transient` failures are retried with backoff."""

    def __init__(self, message: str, *, transient: bool, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.transient = transient
        self.code = code
        self.status = status


class MessageTransport(Protocol):
    """Sends one message and returns the provider's id for it (raises `SendFailure`)."""

    name: str

    async def send(self, message: OutgoingMessage) -> str:
        """Send and return the provider message id."""
        ...


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
        return TwilioResponse(response.status_code, response.text, response.headers)


def _plain(values: dict[str, object] | None) -> Any:
    return None if values is None else {k: v for k, v in values.items() if v is not None}


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
    ) -> None:
        self._client = Client(account_sid, auth_token, http_client=HttpxTwilioHttpClient(http), environment={})
        # The SDK has no constructor argument for the host; the domain's base URL is the documented seam.
        self._client.api.base_url = api_base_url.rstrip("/")
        self._from = as_whatsapp_address(from_number)
        self._status_callback_url = status_callback_url

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
        try:
            created = await self._client.messages.create_async(**kwargs)
        except httpx.HTTPError as exc:
            raise SendFailure(f"{type(exc).__name__}: {exc}", transient=True) from exc
        except TwilioException as exc:
            status = getattr(exc, "status", None)
            code = getattr(exc, "code", None)
            text = getattr(exc, "msg", None) or getattr(exc, "detail", None) or str(exc)
            transient = status is None or status >= 500 or status == 429
            # Without a Twilio error body the SDK reports the HTTP status as the code; that is not an error code.
            twilio_code = None if code is None or code == status else str(code)
            raise SendFailure(str(text), transient=transient, code=twilio_code, status=status) from exc
        return str(created.sid)


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
