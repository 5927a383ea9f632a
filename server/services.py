"""What a server or worker process runs on (`Services`), and what a test or benchmark may put in place of its
parts (`Overrides`); `server.wiring` builds the one from settings and the other."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import httpx
from langchain_core.language_models import BaseChatModel

from agent.api import ConversationAgent
from agent.tracing import TurnTracer
from core.business import Business
from core.clock import Clock
from core.settings import Settings
from integrations.twilio.transport import MessageTransport
from server.calendar_sync.events import CalendlyEventProcessor
from server.ops.health import HealthChecker
from server.ops.metrics import ServerMetrics
from server.ops.stats import StatsService
from server.options import ServerOptions
from server.pipeline.feedback import FeedbackPublisher
from server.pipeline.intake import InboundIntake
from server.pipeline.outbox import Outbox, OutboxSender
from server.pipeline.receiver import WebhookReceiver
from server.pipeline.reminders import ReminderScheduler
from server.pipeline.worker import Worker
from store.appointments import AppointmentRepository
from store.calendar_events import CalendarEventRepository
from store.conversations import ConversationRepository
from store.database import Database
from store.inbound import InboundRepository
from store.outbox import OutboxRepository
from store.system_events import SystemEventRepository

# Pulls bookings from Calendly into `appointments`; returns a summary (POST /api/calendly/sync).
CalendlySync = Callable[[], Awaitable[Mapping[str, object]]]


@dataclass(frozen=True)
class Overrides:
    """What a test or benchmark puts in place of what settings would build; `None` means "build it"."""

    business: Business | None = None
    db: Database | None = None  # owned by the caller: not closed here
    clock: Clock | None = None
    options: ServerOptions | None = None
    agent: ConversationAgent | None = None  # a ready-made agent instead of the LangGraph assistant
    model: BaseChatModel | None = None  # the assistant around this model instead of the configured one
    twilio_http: httpx.AsyncBaseTransport | None = None
    probe_http: httpx.AsyncBaseTransport | None = None
    calendly_http: httpx.AsyncBaseTransport | None = None
    message_transport: MessageTransport | None = None
    calendly_sync: CalendlySync | None = None


@dataclass(frozen=True)
class Services:
    """Everything one server or worker process runs on (request handlers take what they need from it)."""

    settings: Settings
    options: ServerOptions
    business: Business
    db: Database
    clock: Clock
    metrics: ServerMetrics
    intake: InboundIntake
    outbox: Outbox
    sender: OutboxSender
    reminders: ReminderScheduler
    calendly: CalendlyEventProcessor
    calendly_sync: CalendlySync | None
    health: HealthChecker
    stats: StatsService
    transport_name: str
    worker: Worker
    inbound: InboundRepository
    conversations: ConversationRepository
    outbox_messages: OutboxRepository
    system_events: SystemEventRepository
    calendar_events: CalendarEventRepository
    appointments: AppointmentRepository
    receiver: WebhookReceiver  # Twilio's webhooks, stored or spooled within a bound; its drainer runs in `serve`
    tracer: TurnTracer
    feedback: FeedbackPublisher  # staff ratings and automatic signals on traced turns
