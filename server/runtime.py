"""Opening everything a server or worker process needs, and closing it in reverse order."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx

from agent.api import ConversationAgent
from core.business import Business
from core.clock import Clock
from core.settings import Settings
from server.calendly_sync import calendly_client_for
from server.metrics import ServerMetrics
from server.options import ServerOptions
from server.services import AgentProvider, Services, build_transport, open_services
from server.state import CalendlySync
from server.twilio_transport import DEFAULT_TIMEOUT_SECONDS, MessageTransport
from server.worker import worker_id
from store.database import Database, open_database

PROBE_TIMEOUT_SECONDS = 5.0


@asynccontextmanager
async def open_runtime(
    settings: Settings,
    *,
    options: ServerOptions,
    business: Business,
    clock: Clock,
    metrics: ServerMetrics,
    db: Database | None = None,
    agent: ConversationAgent | None = None,
    agent_provider: AgentProvider | None = None,
    twilio_http_transport: httpx.AsyncBaseTransport | None = None,
    probe_http_transport: httpx.AsyncBaseTransport | None = None,
    message_transport: MessageTransport | None = None,
    calendly_sync: CalendlySync | None = None,
) -> AsyncIterator[Services]:
    """The database (opened from DATABASE_URL unless given, then also closed here), HTTP clients for Twilio,
    health probes and Calendly, the agent and every service built on them.

    With CALENDLY_ACCESS_TOKEN set and no `calendly_sync` given, a Calendly client is opened for the real sync
    behind POST /api/calendly/sync, and closed here.
    """
    async with AsyncExitStack() as stack:
        database = db
        if database is None:
            database = open_database(settings.database_url)
            stack.push_async_callback(database.close)
        calendly_client = None
        if calendly_sync is None and settings.calendly_access_token is not None:
            calendly_client = await stack.enter_async_context(calendly_client_for(settings, clock))
        twilio_http = await stack.enter_async_context(
            httpx.AsyncClient(transport=twilio_http_transport, timeout=DEFAULT_TIMEOUT_SECONDS)
        )
        probe_http = await stack.enter_async_context(
            httpx.AsyncClient(transport=probe_http_transport, timeout=PROBE_TIMEOUT_SECONDS)
        )
        services = await stack.enter_async_context(
            open_services(
                settings=settings,
                options=options,
                business=business,
                db=database,
                clock=clock,
                metrics=metrics,
                transport=message_transport or build_transport(settings, twilio_http),
                probe_http=probe_http,
                agent=agent,
                agent_provider=agent_provider,
                calendly_sync=calendly_sync,
                calendly_client=calendly_client,
                owner=worker_id(),
            )
        )
        yield services
