"""The agent's part of the composition root: the model, the graph and the tracer that names its traces.

Split from `server.wiring` so that the root stays readable: this is everything that only exists when the process
answers customers, plus the tracer, which also exists without them (feedback and reminders are traced too).
"""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack

import httpx
from langchain_core.language_models import BaseChatModel

from agent.assistant import Assistant
from agent.checkpointer import SERVER_PRUNE_EVERY_TURNS, open_checkpointer
from agent.graph import build_graph
from agent.model import build_chat_model
from agent.policy import TurnPolicy
from agent.prompt_version import prompt_version
from agent.tracing import TraceLabels, TurnTracer
from core.business import Business
from core.clock import Clock
from core.settings import Settings
from server.backends import open_calendar
from server.pipeline.handoff import StaffAlertHandoff
from server.pipeline.outbox import Outbox, OutboxSender
from server.pipeline.reminders import ReminderScheduler
from store.appointments import AppointmentRepository
from store.clients import ClientRepository
from store.conversations import ConversationRepository
from store.database import Database
from tools.context import ToolServices

logger = logging.getLogger(__name__)


def model_name(settings: Settings, model: BaseChatModel | None) -> str:
    """The model traces name: the configured one, or what a test or benchmark put in its place."""
    if model is None:
        return settings.openai_model
    return str(getattr(model, "model_name", None) or getattr(model, "model", None) or type(model).__name__)


def build_tracer(settings: Settings, business: Business, model: BaseChatModel | None = None) -> TurnTracer:
    """The process's tracer, labelled with the model and prompt version (logged, so logs name them too)."""
    labels = TraceLabels(model=model_name(settings, model), prompt_version=prompt_version(business))
    tracer = TurnTracer.from_settings(settings, labels=labels)
    logger.info(
        "agent labels",
        extra={"model": labels.model, "prompt_version": labels.prompt_version, "tracing": tracer.enabled},
    )
    return tracer


async def open_assistant(
    settings: Settings,
    business: Business,
    clock: Clock,
    stack: AsyncExitStack,
    *,
    tracer: TurnTracer,
    model: BaseChatModel | None,
    calendly_http: httpx.AsyncBaseTransport | None,
    db: Database,
    appointments: AppointmentRepository,
    clients: ClientRepository,
    conversations: ConversationRepository,
    outbox: Outbox,
    sender: OutboxSender,
    reminders: ReminderScheduler,
) -> Assistant:
    """The LangGraph assistant: calendar, tools, checkpointer and graph around the model (`model` or configured)."""
    calendar = await open_calendar(settings, business, clock, appointments, stack, calendly_http)
    handoff = StaffAlertHandoff(
        conversations=conversations,
        clients=clients,
        outbox=outbox,
        business=business,
        clock=clock,
        staff_number=settings.staff_whatsapp_number,
    )
    tool_services = ToolServices(
        business, clock, calendar, clients, appointments, sender, observer=reminders, handoff=handoff
    )
    saver = await stack.enter_async_context(open_checkpointer(db, setup=True))
    policy = TurnPolicy.from_settings(settings)
    graph = build_graph(model or build_chat_model(settings), tool_services, saver, policy=policy)
    # Old checkpoints are pruned every few turns and by the worker's maintenance pass, not after every turn.
    return Assistant(graph, tool_services, tracer=tracer, policy=policy, prune_every=SERVER_PRUNE_EVERY_TURNS)
