"""The FastAPI application factory. Clients (database, HTTP) are created and closed in the lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from agent.api import ConversationAgent
from core.business import Business, load_business
from core.clock import Clock, SystemClock
from core.settings import Settings, get_settings
from server.http_errors import BodyLimitMiddleware, RequestMetricsMiddleware, install_error_handlers
from server.metrics import ServerMetrics
from server.options import ServerOptions
from server.routes import calendly, conversations, system, whatsapp_admin, whatsapp_webhooks
from server.runtime import open_runtime
from server.services import AgentProvider
from server.state import CalendlySync
from server.twilio_transport import MessageTransport
from store.database import Database

logger = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None,
    *,
    business: Business | None = None,
    agent: ConversationAgent | None = None,
    agent_provider: AgentProvider | None = None,
    db: Database | None = None,
    clock: Clock | None = None,
    options: ServerOptions | None = None,
    twilio_http_transport: httpx.AsyncBaseTransport | None = None,
    probe_http_transport: httpx.AsyncBaseTransport | None = None,
    message_transport: MessageTransport | None = None,
    calendly_sync: CalendlySync | None = None,
    run_worker: bool = True,
) -> FastAPI:
    """Build the app.

    Everything external is injectable: the agent (or a provider opening one with the outbox sender and the
    reminder scheduler), the database (opened from DATABASE_URL and closed by the app when not given), the clock,
    the HTTP transports used for Twilio and for health probes (tests point them at local doubles), or a whole
    message transport. With `run_worker` the background worker runs inside the app's event loop.
    """
    settings = settings or get_settings()
    options = options or ServerOptions()
    business = business or load_business(settings.business_config)
    clock = clock or SystemClock()
    metrics = ServerMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_runtime(
            settings,
            options=options,
            business=business,
            clock=clock,
            metrics=metrics,
            db=db,
            agent=agent,
            agent_provider=agent_provider,
            twilio_http_transport=twilio_http_transport,
            probe_http_transport=probe_http_transport,
            message_transport=message_transport,
            calendly_sync=calendly_sync,
        ) as services:
            app.state.server = services.state
            app.state.services = services
            if run_worker:
                services.worker.start()
            logger.info("server started", extra={"worker": run_worker, "transport": services.state.transport_name})
            try:
                yield
            finally:
                app.state.server = None
                await services.worker.stop()

    app = FastAPI(title="Asistente", version="0.1.0", lifespan=lifespan)
    install_error_handlers(app)
    for module in (whatsapp_webhooks, whatsapp_admin, calendly, conversations, system):
        app.include_router(module.router)
    # Added last = outermost: metrics also count requests the body limit refuses.
    app.add_middleware(BodyLimitMiddleware, max_bytes=options.max_body_bytes)
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics)
    return app
