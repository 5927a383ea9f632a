"""The FastAPI application factory. Services are opened in the lifespan (see `server.wiring`) and closed with it."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from core.settings import Settings, get_settings
from server.http.errors import BodyLimitMiddleware, RequestMetricsMiddleware, install_error_handlers
from server.http.routes import calendly, conversations, feedback, system, whatsapp_admin, whatsapp_webhooks
from server.ops.metrics import ServerMetrics
from server.options import ServerOptions
from server.wiring import Overrides, open_services

logger = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None,
    overrides: Overrides | None = None,
    *,
    with_agent: bool = True,
    run_worker: bool = True,
) -> FastAPI:
    """Build the app: webhooks, admin API, health and metrics, with the worker running in the app's event loop
    unless `run_worker` is off. Without `with_agent`, messages are stored and not answered here."""
    settings = settings or get_settings()
    overrides = overrides or Overrides()
    options = overrides.options or ServerOptions()
    metrics = ServerMetrics()  # before the lifespan: the middleware counts every request

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_services(settings, overrides, with_agent=with_agent, metrics=metrics) as services:
            app.state.services = services
            # Whether or not the worker runs here: webhooks this process spooled are drained by this process.
            services.receiver.start()
            if run_worker:
                services.worker.start()
            logger.info("server started", extra={"worker": run_worker, "transport": services.transport_name})
            try:
                yield
            finally:
                app.state.services = None
                await services.worker.stop()
                await services.receiver.stop()

    docs = options.api_docs  # off in production: no public map of the admin API
    app = FastAPI(
        title="Asistente",
        version="0.1.0",
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
    )
    app.state.metrics = metrics  # also served on a separate listener by `asistente serve --metrics-port`
    install_error_handlers(app)
    for module in (whatsapp_webhooks, whatsapp_admin, calendly, conversations, feedback, system):
        app.include_router(module.router)
    # Added last = outermost: metrics also count requests the body limit refuses.
    app.add_middleware(BodyLimitMiddleware, max_bytes=options.max_body_bytes)
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics)
    return app
