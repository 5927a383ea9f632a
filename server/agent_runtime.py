"""The production agent behind the server: the LangGraph `Assistant`, wired with the server's sender and reminders."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
from langchain_core.language_models import BaseChatModel

from agent.api import ConversationAgent
from agent.assistant import Assistant
from agent.checkpointer import open_checkpointer
from agent.graph import build_graph
from agent.model import build_chat_model
from agent.tracing import TurnTracer
from core.business import Business
from core.clock import Clock
from core.settings import Settings
from server.handoff import StaffAlertHandoff
from server.services import AgentDeps, AgentProvider
from store.appointments import AppointmentRepository
from store.clients import ClientRepository
from store.conversations import ConversationRepository
from tools.calendar import Calendar
from tools.calendly import CalendlyCalendar, CalendlyClient
from tools.context import Context
from tools.local_calendar import LocalCalendar


async def open_calendar(
    settings: Settings,
    business: Business,
    clock: Clock,
    appointments: AppointmentRepository,
    stack: AsyncExitStack,
    http: httpx.AsyncClient | None = None,
) -> Calendar:
    """The configured calendar: Calendly when CALENDLY_ACCESS_TOKEN is set (its client closed with `stack`), else
    the local calendar from the business YAML."""
    if settings.calendly_access_token is None:
        return LocalCalendar(business, appointments, clock)
    client = CalendlyClient(
        str(settings.calendly_api_base_url), settings.calendly_access_token.get_secret_value(), http=http, clock=clock
    )
    stack.push_async_callback(client.aclose)
    user_uri = str(settings.calendly_user_uri) if settings.calendly_user_uri else (await client.current_user()).uri
    return CalendlyCalendar(client, appointments, business, clock, user_uri)


def assistant_provider(
    *, model: BaseChatModel | None = None, calendly_http: httpx.AsyncClient | None = None
) -> AgentProvider:
    """Opens the `Assistant` for a process: chat model (OpenAI unless given), checkpointer on the same database,
    the calendar (Calendly when configured, else local), the outbox sender and the reminder scheduler as observer."""

    @asynccontextmanager
    async def provide(deps: AgentDeps) -> AsyncIterator[ConversationAgent]:
        appointments = AppointmentRepository(deps.db)
        async with AsyncExitStack() as stack:
            calendar = await open_calendar(deps.settings, deps.business, deps.clock, appointments, stack, calendly_http)
            saver = await stack.enter_async_context(open_checkpointer(deps.db, setup=True))
            graph = build_graph(model or build_chat_model(deps.settings), saver)
            base = Context(
                wa_id="",
                business=deps.business,
                clock=deps.clock,
                calendar=calendar,
                clients=ClientRepository(deps.db),
                appointments=appointments,
                sender=deps.sender,
                language=deps.business.language,
                observer=deps.reminders,
                handoff=StaffAlertHandoff(
                    conversations=ConversationRepository(deps.db),
                    clients=ClientRepository(deps.db),
                    outbox=deps.outbox,
                    business=deps.business,
                    clock=deps.clock,
                    staff_number=deps.settings.staff_whatsapp_number,
                ),
            )
            yield Assistant(graph, base, tracer=TurnTracer.from_settings(deps.settings))

    return provide
