"""Creating the Calendly webhook subscription that points at this server."""

from __future__ import annotations

from typing import Literal

import httpx

from core.settings import Settings
from core.urls import public_url
from integrations.calendly import CalendlyClient
from integrations.calendly.models import WebhookSubscription
from integrations.calendly.webhook_models import HANDLED_EVENTS

WEBHOOK_PATH = "/api/calendly/webhook"


class SubscriptionError(ValueError):
    """The subscription cannot be created with this configuration."""


async def subscribe_webhook(
    settings: Settings,
    *,
    scope: Literal["user", "organization"] = "user",
    http: httpx.AsyncClient | None = None,
) -> WebhookSubscription:
    """Subscribe PUBLIC_BASE_URL + /api/calendly/webhook to invitee.created and invitee.canceled.

    The signing key is required: the server refuses unsigned Calendly deliveries.
    """
    if settings.calendly_access_token is None:
        raise SubscriptionError("CALENDLY_ACCESS_TOKEN is not set")
    if settings.calendly_webhook_signing_key is None:
        raise SubscriptionError("CALENDLY_WEBHOOK_SIGNING_KEY is not set: the server would refuse every delivery")
    url = public_url(str(settings.public_base_url), WEBHOOK_PATH)
    if not url.startswith("https://"):
        raise SubscriptionError(f"Calendly needs an https URL; PUBLIC_BASE_URL gives {url}")
    client = CalendlyClient(
        str(settings.calendly_api_base_url), settings.calendly_access_token.get_secret_value(), http=http
    )
    async with client:
        me = await client.current_user()
        return await client.create_webhook_subscription(
            url,
            HANDLED_EVENTS,
            organization=me.current_organization,
            user=me.uri if scope == "user" else None,
            scope=scope,
            signing_key=settings.calendly_webhook_signing_key.get_secret_value(),
        )
