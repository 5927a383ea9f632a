"""`asistente serve`, `asistente worker` and `asistente admin token`: running the service and reaching its API."""

from __future__ import annotations

import asyncio
import logging
import signal
from contextlib import ExitStack
from datetime import timedelta
from typing import Annotated

import typer

from cli.config import fail, load_configuration
from cli.db import migrate_or_fail
from core.business import Business
from core.clock import SystemClock
from core.logs import configure_logging
from core.settings import Settings

logger = logging.getLogger(__name__)


def _require_model(settings: Settings, with_agent: bool) -> None:
    if with_agent and not settings.openai_enabled:
        raise fail(
            "no model configured: set OPENAI_API_KEY (or OPENAI_BASE_URL), or pass --no-agent to store messages "
            "without answering them"
        )


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

    from server.app import create_app
    from server.options import ServerOptions
    from server.wiring import Overrides

    settings, business = load_configuration()
    _require_model(settings, agent and worker)
    configure_logging(settings.log_level)
    if allow_unsigned_webhooks:
        logger.warning("unsigned webhooks are accepted where no secret is configured: development only")
    if migrate_first:
        migrate_or_fail(settings)
    application = create_app(
        settings,
        Overrides(business=business, options=ServerOptions(allow_unsigned_webhooks=allow_unsigned_webhooks)),
        # Without the in-process worker no turn runs here: the agent lives in the `asistente worker` processes.
        with_agent=agent and worker,
        run_worker=worker,
    )
    uvicorn.run(application, host=host, port=port, log_config=None, proxy_headers=True)


def run_worker(
    agent: Annotated[bool, typer.Option("--agent/--no-agent", help="Answer messages with the agent.")] = True,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=65535,
            help="Serve this worker's Prometheus metrics at http://METRICS_HOST:PORT/metrics (off by default).",
        ),
    ] = None,
    metrics_host: Annotated[
        str, typer.Option(help="Interface for --metrics-port (0.0.0.0 in a container, for the scraper).")
    ] = "127.0.0.1",
) -> None:
    """Run the background worker alone (several may run against one PostgreSQL database)."""
    settings, business = load_configuration()
    _require_model(settings, agent)
    configure_logging(settings.log_level)
    metrics_at = None if metrics_port is None else (metrics_host, metrics_port)
    asyncio.run(_worker(settings, business, agent, metrics_at))


async def _worker(settings: Settings, business: Business, with_agent: bool, metrics_at: tuple[str, int] | None) -> None:
    from server.ops.metrics_server import serve_metrics
    from server.wiring import Overrides, open_services

    async with open_services(settings, Overrides(business=business), with_agent=with_agent) as services:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            # Finish the turns in flight, then exit; anything left is resumed by the next worker.
            loop.add_signal_handler(sig, services.worker.request_stop)
        with ExitStack() as endpoint:
            if metrics_at is not None:
                # Opened after the signal handlers: once the endpoint answers, the worker is up and stops cleanly.
                host, port = metrics_at
                try:
                    endpoint.enter_context(serve_metrics(services.metrics, host=host, port=port))
                except OSError as exc:
                    raise fail(f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}") from None
            logger.info("worker started")
            await services.worker.run()


def admin_token(
    subject: Annotated[str, typer.Option(help="Who the token is for (shown as paused_by, etc.).")] = "admin",
    hours: Annotated[float, typer.Option(min=0.01, max=24 * 30, help="Validity in hours.")] = 12.0,
) -> None:
    """Print a Bearer token for the admin API, signed with JWT_SECRET."""
    from server.http.auth import mint_admin_token

    settings, _ = load_configuration()
    if settings.jwt_secret is None:
        raise fail("JWT_SECRET is not set: the admin API is disabled")
    token = mint_admin_token(
        settings.jwt_secret.get_secret_value(), subject=subject, now=SystemClock().now(), ttl=timedelta(hours=hours)
    )
    typer.echo(token)
