"""`asistente serve`, `asistente worker` and `asistente admin token`: running the service and reaching its API."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
from contextlib import ExitStack
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated

import typer

from cli.config import fail, load_configuration
from cli.db import migrate_or_fail
from core.clock import SystemClock
from core.logs import configure_logging
from core.settings import Settings
from server.options import ServerOptions

if TYPE_CHECKING:
    from server.wiring import Overrides

logger = logging.getLogger(__name__)


def _require_model(settings: Settings, with_agent: bool) -> None:
    if with_agent and not settings.openai_enabled:
        raise fail(
            "no model configured: set OPENAI_API_KEY (or OPENAI_BASE_URL), or pass --no-agent to store messages "
            "without answering them"
        )


def _options() -> ServerOptions:
    # Timings from ASISTENTE_<FIELD> variables (tests and benchmarks shrink them); production keeps the defaults.
    try:
        return ServerOptions.from_env(os.environ)
    except ValueError as exc:
        raise fail(str(exc)) from None


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
    api_docs: Annotated[
        bool, typer.Option(help="Development only: serve the API documentation at /docs, /redoc, /openapi.json.")
    ] = False,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=65535,
            help="Serve the Prometheus metrics at http://METRICS_HOST:PORT/metrics, off the public address (the "
            "app's own /metrics answers only with METRICS_TOKEN).",
        ),
    ] = None,
    metrics_host: Annotated[
        str, typer.Option(help="Interface for --metrics-port (0.0.0.0 in a container, for the scraper).")
    ] = "127.0.0.1",
) -> None:
    """Run the HTTP server (webhooks, admin API, health, metrics), with the worker in-process by default."""
    import uvicorn

    from server.app import create_app
    from server.ops.metrics_server import serve_metrics
    from server.wiring import Overrides

    settings, business = load_configuration()
    _require_model(settings, agent and worker)
    options = dataclasses.replace(_options(), allow_unsigned_webhooks=allow_unsigned_webhooks, api_docs=api_docs)
    configure_logging(settings.log_level)
    if allow_unsigned_webhooks:
        logger.warning("unsigned webhooks are accepted where no secret is configured: development only")
    if migrate_first:
        migrate_or_fail(settings)
    application = create_app(
        settings,
        Overrides(business=business, options=options),
        # Without the in-process worker no turn runs here: the agent lives in the `asistente worker` processes.
        with_agent=agent and worker,
        run_worker=worker,
    )
    with ExitStack() as endpoint:
        if metrics_port is not None:
            try:
                endpoint.enter_context(serve_metrics(application.state.metrics, host=metrics_host, port=metrics_port))
            except OSError as exc:
                raise fail(f"cannot serve metrics on {metrics_host}:{metrics_port}: {exc.strerror or exc}") from None
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
    from server.wiring import Overrides

    settings, business = load_configuration()
    _require_model(settings, agent)
    options = _options()
    configure_logging(settings.log_level)
    metrics_at = None if metrics_port is None else (metrics_host, metrics_port)
    asyncio.run(_worker(settings, Overrides(business=business, options=options), agent, metrics_at))


async def _worker(
    settings: Settings, overrides: Overrides, with_agent: bool, metrics_at: tuple[str, int] | None
) -> None:
    from server.ops.metrics_server import serve_metrics
    from server.wiring import open_services

    async with open_services(settings, overrides, with_agent=with_agent) as services:
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
    hours: Annotated[
        float, typer.Option(min=0.01, help="Validity in hours (at most ADMIN_TOKEN_MAX_HOURS, 168 by default).")
    ] = 12.0,
) -> None:
    """Print a Bearer token for the admin API, signed with JWT_SECRET."""
    from server.http.auth import mint_admin_token

    settings, _ = load_configuration()
    if settings.jwt_secret is None:
        raise fail("JWT_SECRET is not set: the admin API is disabled")
    limit = settings.admin_token_max_hours
    if hours > limit:
        # Refused, not shortened: whoever asked for a week must not find out on day two.
        raise fail(f"--hours {hours:g} is longer than the server accepts (ADMIN_TOKEN_MAX_HOURS={limit:g})")
    token = mint_admin_token(
        settings.jwt_secret.get_secret_value(), subject=subject, now=SystemClock().now(), ttl=timedelta(hours=hours)
    )
    typer.echo(token)
