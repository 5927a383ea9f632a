"""Creating the Calendly webhook subscription that points at this server, with a signing key."""

from __future__ import annotations

import secrets
from typing import Literal

import httpx

from core.settings import Settings
from core.urls import public_url
from integrations.calendly import CalendlyApiError, CalendlyClient, CalendlyUnavailable
from integrations.calendly.models import WebhookSubscription
from integrations.calendly.webhook_models import HANDLED_EVENTS

WEBHOOK_PATH = "/api/calendly/webhook"


class SubscriptionError(ValueError):
    """The subscription cannot be created with this configuration."""


class SubscriptionUncertain(SubscriptionError):
    """The request to create the subscription went out but no answer came back: Calendly may have created it."""


def generate_signing_key() -> str:
    """A new webhook signing key: 32 random bytes, URL-safe text (43 characters)."""
    return secrets.token_urlsafe(32)


async def subscribe_webhook(
    settings: Settings,
    *,
    scope: Literal["user", "organization"] = "user",
    signing_key: str | None = None,
    http: httpx.AsyncClient | None = None,
) -> WebhookSubscription:
    """Subscribe PUBLIC_BASE_URL + /api/calendly/webhook to invitee.created and invitee.canceled.

    The subscription is signed with `signing_key`, or else CALENDLY_WEBHOOK_SIGNING_KEY; one of them is required,
    since the server refuses unsigned Calendly deliveries (`generate_signing_key` makes a new one). Calendly
    refusing a second subscription for the same URL raises `SubscriptionError`, naming the existing one; no answer
    to the creation request raises `SubscriptionUncertain`.
    """
    if settings.calendly_access_token is None:
        raise SubscriptionError("CALENDLY_ACCESS_TOKEN is not set")
    configured = settings.calendly_webhook_signing_key
    key = signing_key or (configured.get_secret_value() if configured is not None else None)
    if not key:
        raise SubscriptionError("CALENDLY_WEBHOOK_SIGNING_KEY is not set: the server would refuse every delivery")
    url = public_url(str(settings.public_base_url), WEBHOOK_PATH)
    if not url.startswith("https://"):
        raise SubscriptionError(f"Calendly needs an https URL; PUBLIC_BASE_URL gives {url}")
    client = CalendlyClient(
        str(settings.calendly_api_base_url), settings.calendly_access_token.get_secret_value(), http=http
    )
    async with client:
        me = await client.current_user()
        user = me.uri if scope == "user" else None
        try:
            return await client.create_webhook_subscription(
                url, HANDLED_EVENTS, organization=me.current_organization, user=user, scope=scope, signing_key=key
            )
        except CalendlyUnavailable as exc:
            raise SubscriptionUncertain(f"{exc}; Calendly may have created the subscription anyway") from exc
        except CalendlyApiError as exc:
            if exc.status != 409:
                raise
            existing = await client.list_webhook_subscriptions(me.current_organization, scope, user=user)
            same = [s.uri for s in existing if s.callback_url.rstrip("/") == url.rstrip("/")]
            raise SubscriptionError(
                f"Calendly already has a subscription for {url} ({', '.join(same) or 'not listed for this scope'}). "
                "Deliveries are signed with the key it was created with: keep that key in "
                "CALENDLY_WEBHOOK_SIGNING_KEY, or delete the subscription in Calendly and run this again."
            ) from None
