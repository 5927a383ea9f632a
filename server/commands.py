"""Server commands of the `asistente` CLI: serve, worker, calendly subscribe, admin token."""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import timedelta
from typing import Annotated, Literal

import typer

from core.business import Business
from core.clock import SystemClock
from core.logs import configure_logging
from core.settings import Settings

logger = logging.getLogger(__name__)


def _configuration() -> tuple[Settings, Business]:
    # Imported here: server.cli imports this module to register the commands.
    from server.cli import load_configuration

    return load_configuration()


def _fail(message: str) -> typer.Exit:
    typer.secho(message, fg=typer.colors.RED, err=True)
    return typer.Exit(code=1)


def _require_model(settings: Settings, with_agent: bool) -> None:
    if with_agent and not settings.openai_enabled:
        raise _fail(
            "no model configured: set OPENAI_API_KEY (or OPENAI_BASE_URL), or pass --no-agent to store messages "
            "without answering them"
        )


async def _migrate(settings: Settings) -> None:
    from store import open_database
    from store.migrate import migrate

    db = open_database(settings.database_url)
    try:
        await migrate(db)
    finally:
        await db.close()


def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on (0.0.0.0 in a container).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    worker: Annotated[bool, typer.Option("--worker/--no-worker", help="Run the background worker here too.")] = True,
    agent: Annotated[bool, typer.Option("--agent/--no-agent", help="Answer messages with the agent.")] = True,
    migrate_first: Annotated[bool, typer.Option("--migrate/--no-migrate", help="Apply the schema first.")] = True,
    allow_unsigned_webhooks: Annotated[
        bool,
        typer.Option(help="Development only: accept webhooks without signature when the secret is not set."),
    ] = False,
) -> None:
    """Run the HTTP server (webhooks, admin API, health, metrics), with the worker in-process by default."""
    import uvicorn

    from server.agent_runtime import assistant_provider
    from server.app import create_app
    from server.options import ServerOptions

    settings, business = _configuration()
    _require_model(settings, agent and worker)
    configure_logging(settings.log_level)
    if allow_unsigned_webhooks:
        logger.warning("unsigned webhooks are accepted where no secret is configured: development only")
    if migrate_first:
        asyncio.run(_migrate(settings))
    application = create_app(
        settings,
        business=business,
        # Without the in-process worker no turn runs here: the agent lives in the `asistente worker` processes.
        agent_provider=assistant_provider() if agent and worker else None,
        options=ServerOptions(allow_unsigned_webhooks=allow_unsigned_webhooks),
        run_worker=worker,
    )
    uvicorn.run(application, host=host, port=port, log_config=None, proxy_headers=True)


def run_worker(
    agent: Annotated[bool, typer.Option("--agent/--no-agent", help="Answer messages with the agent.")] = True,
) -> None:
    """Run the background worker alone (several may run against one PostgreSQL database)."""
    settings, business = _configuration()
    _require_model(settings, agent)
    configure_logging(settings.log_level)
    asyncio.run(_worker(settings, business, agent))


async def _worker(settings: Settings, business: Business, with_agent: bool) -> None:
    from server.agent_runtime import assistant_provider
    from server.metrics import ServerMetrics
    from server.options import ServerOptions
    from server.runtime import open_runtime

    async with open_runtime(
        settings,
        options=ServerOptions(),
        business=business,
        clock=SystemClock(),
        metrics=ServerMetrics(),
        agent_provider=assistant_provider() if with_agent else None,
    ) as services:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            # Finish the turns in flight, then exit; anything left is resumed by the next worker.
            loop.add_signal_handler(sig, services.worker.request_stop)
        logger.info("worker started")
        await services.worker.run()


def calendly_subscribe(
    scope: Annotated[str, typer.Option(help="'user' (events of the token's user) or 'organization'.")] = "user",
) -> None:
    """Create the Calendly webhook subscription for PUBLIC_BASE_URL + /api/calendly/webhook."""
    from server.calendly_subscribe import SubscriptionError, subscribe_webhook
    from tools.calendly import CalendlyError
    from tools.calendly.models import CalendlyApiError

    if scope not in ("user", "organization"):
        raise _fail("--scope must be 'user' or 'organization'")
    chosen: Literal["user", "organization"] = "user" if scope == "user" else "organization"
    settings, _ = _configuration()
    try:
        subscription = asyncio.run(subscribe_webhook(settings, scope=chosen))
    except SubscriptionError as exc:
        raise _fail(str(exc)) from None
    except CalendlyApiError as exc:
        raise _fail(f"Calendly refused: {exc.describe()}") from None
    except CalendlyError as exc:
        raise _fail(f"Calendly error: {exc}") from None
    typer.echo(f"subscribed {subscription.callback_url} to {', '.join(subscription.events)}")
    typer.echo(f"{subscription.uri} ({subscription.state})")


def admin_token(
    subject: Annotated[str, typer.Option(help="Who the token is for (shown as paused_by, etc.).")] = "admin",
    hours: Annotated[float, typer.Option(min=0.01, max=24 * 30, help="Validity in hours.")] = 12.0,
) -> None:
    """Print a Bearer token for the admin API, signed with JWT_SECRET."""
    from server.auth import mint_admin_token

    settings, _ = _configuration()
    if settings.jwt_secret is None:
        raise _fail("JWT_SECRET is not set: the admin API is disabled")
    token = mint_admin_token(
        settings.jwt_secret.get_secret_value(), subject=subject, now=SystemClock().now(), ttl=timedelta(hours=hours)
    )
    typer.echo(token)


def register_server_commands(app: typer.Typer) -> None:
    """Add the server commands to the `asistente` CLI."""
    app.command()(serve)
    app.command("worker")(run_worker)
    calendly_app = typer.Typer(help="Calendly integration.", no_args_is_help=True)
    calendly_app.command("subscribe")(calendly_subscribe)
    app.add_typer(calendly_app, name="calendly")
    admin_app = typer.Typer(help="Admin API.", no_args_is_help=True)
    admin_app.command("token")(admin_token)
    app.add_typer(admin_app, name="admin")
