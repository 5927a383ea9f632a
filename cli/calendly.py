"""`asistente calendly subscribe`: the Calendly webhook subscription for this server."""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

import typer

from cli.config import fail, load_configuration


def calendly_subscribe(
    scope: Annotated[str, typer.Option(help="'user' (events of the token's user) or 'organization'.")] = "user",
) -> None:
    """Create the Calendly webhook subscription for PUBLIC_BASE_URL + /api/calendly/webhook.

    Deliveries are signed with CALENDLY_WEBHOOK_SIGNING_KEY; when it is unset, a new key is generated, used, and
    printed once, to be put in CALENDLY_WEBHOOK_SIGNING_KEY.
    """
    from integrations.calendly import CalendlyError
    from integrations.calendly.models import CalendlyApiError
    from integrations.calendly.subscription import (
        SubscriptionError,
        SubscriptionUncertain,
        generate_signing_key,
        subscribe_webhook,
    )

    if scope not in ("user", "organization"):
        raise fail("--scope must be 'user' or 'organization'")
    chosen: Literal["user", "organization"] = "user" if scope == "user" else "organization"
    settings, _ = load_configuration()
    generated = generate_signing_key() if settings.calendly_webhook_signing_key is None else None
    try:
        subscription = asyncio.run(subscribe_webhook(settings, scope=chosen, signing_key=generated))
    except SubscriptionUncertain as exc:
        # A subscription created with a key that was never shown can only be deleted and made again.
        then = "delete it there and run this again" if generated else "it uses CALENDLY_WEBHOOK_SIGNING_KEY: keep it"
        raise fail(f"{exc}. If Calendly lists a subscription for this server, {then}.") from None
    except SubscriptionError as exc:
        raise fail(str(exc)) from None
    except CalendlyApiError as exc:
        raise fail(f"Calendly refused: {exc.describe()}") from None
    except CalendlyError as exc:
        raise fail(f"Calendly error: {exc}") from None
    typer.echo(f"subscribed {subscription.callback_url} to {', '.join(subscription.events)}")
    typer.echo(f"{subscription.uri} ({subscription.state})")
    if generated is None:
        typer.echo("deliveries are signed with CALENDLY_WEBHOOK_SIGNING_KEY")
        return
    typer.echo(
        "\nA signing key was generated for this subscription. It is shown only this once: add this line to .env "
        "(or the environment), then restart the server, which refuses Calendly deliveries until it has the key:"
    )
    typer.secho(f"CALENDLY_WEBHOOK_SIGNING_KEY={generated}", bold=True)
