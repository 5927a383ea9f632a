"""`asistente calendly subscribe`: the Calendly webhook subscription for this server."""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

import typer

from cli.config import fail, load_configuration


def calendly_subscribe(
    scope: Annotated[str, typer.Option(help="'user' (events of the token's user) or 'organization'.")] = "user",
) -> None:
    """Create the Calendly webhook subscription for PUBLIC_BASE_URL + /api/calendly/webhook."""
    from integrations.calendly import CalendlyError
    from integrations.calendly.models import CalendlyApiError
    from integrations.calendly.subscription import SubscriptionError, subscribe_webhook

    if scope not in ("user", "organization"):
        raise fail("--scope must be 'user' or 'organization'")
    chosen: Literal["user", "organization"] = "user" if scope == "user" else "organization"
    settings, _ = load_configuration()
    try:
        subscription = asyncio.run(subscribe_webhook(settings, scope=chosen))
    except SubscriptionError as exc:
        raise fail(str(exc)) from None
    except CalendlyApiError as exc:
        raise fail(f"Calendly refused: {exc.describe()}") from None
    except CalendlyError as exc:
        raise fail(f"Calendly error: {exc}") from None
    typer.echo(f"subscribed {subscription.callback_url} to {', '.join(subscription.events)}")
    typer.echo(f"{subscription.uri} ({subscription.state})")
