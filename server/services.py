"""Wiring: one place that builds the server's services from settings, a database and the agent."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

import httpx

from agent.api import ConversationAgent
from core.business import Business
from core.clock import Clock
from core.settings import Settings
from server.calendly_events import CalendlyEventProcessor
from server.calendly_sync import CalendlySyncer
from server.delivery import Delivery, templates_from
from server.health import HealthChecker
from server.intake import InboundIntake
from server.metrics import ServerMetrics
from server.options import ServerOptions
from server.outbox import Outbox, OutboxSender
from server.reminders import ReminderDispatcher, ReminderScheduler
from server.signatures import public_url
from server.state import CalendlySync, ServerState
from server.stats import StatsService
from server.turns import ConversationRunner
from server.twilio_transport import LogTransport, MessageTransport, TwilioTransport
from server.wakeup import Wakeup
from server.worker import Worker
from store.appointments import AppointmentRepository
from store.calendar_events import CalendarEventRepository
from store.clients import ClientRepository
from store.conversations import ConversationRepository
from store.database import Database
from store.inbound import InboundRepository
from store.outbox import OutboxRepository
from store.reminders import ReminderRepository
from store.system_events import SystemEventRepository
from tools.calendly.client import CalendlyClient

_LOCAL_HOSTS = {"localhost", "127.0.0.1", "0.0.0.0", "::1"}  # noqa: S104 - host names compared, nothing bound


@dataclass(frozen=True)
class AgentDeps:
    """What the server offers the agent it drives: the outbox (and a sender on it) and the reminder scheduler."""

    settings: Settings
    business: Business
    db: Database
    clock: Clock
    sender: OutboxSender
    reminders: ReminderScheduler
    outbox: Outbox


# Opens the agent for the lifetime of an app or worker process (it may hold a checkpointer connection) and closes it.
AgentProvider = Callable[[AgentDeps], AbstractAsyncContextManager[ConversationAgent]]


@dataclass(frozen=True)
class Services:
    """The request-side state and the worker of one app or worker process."""

    state: ServerState
    worker: Worker
    sender: OutboxSender
    reminders: ReminderScheduler


def build_transport(settings: Settings, http: httpx.AsyncClient) -> MessageTransport:
    """Twilio when configured, otherwise the log sender (embedded default)."""
    if not settings.twilio_enabled:
        return LogTransport()
    assert settings.twilio_account_sid is not None and settings.twilio_auth_token is not None
    assert settings.twilio_whatsapp_number is not None
    base = str(settings.public_base_url)
    # Twilio refuses status callback URLs it cannot reach; a local base URL means no callbacks.
    callback = None if urlsplit(base).hostname in _LOCAL_HOSTS else public_url(base, "/webhook/whatsapp/status")
    return TwilioTransport(
        account_sid=settings.twilio_account_sid,
        auth_token=settings.twilio_auth_token.get_secret_value(),
        from_number=settings.twilio_whatsapp_number,
        api_base_url=str(settings.twilio_api_base_url),
        http=http,
        status_callback_url=callback,
    )


@asynccontextmanager
async def open_services(
    *,
    settings: Settings,
    options: ServerOptions,
    business: Business,
    db: Database,
    clock: Clock,
    metrics: ServerMetrics,
    transport: MessageTransport,
    probe_http: httpx.AsyncClient,
    agent: ConversationAgent | None = None,
    agent_provider: AgentProvider | None = None,
    calendly_sync: CalendlySync | None = None,
    calendly_client: CalendlyClient | None = None,
    owner: str,
) -> AsyncIterator[Services]:
    """Build every service around one database; the agent comes ready-made or is opened from `agent_provider`
    (which receives the outbox-backed sender and the reminder scheduler) and closed on exit. Without a
    `calendly_sync`, a `calendly_client` (owned by the caller) backs the real one."""
    turn_wakeup, delivery_wakeup = Wakeup(), Wakeup()
    outbox = Outbox(OutboxRepository(db), clock, on_enqueued=delivery_wakeup.set)
    sender = OutboxSender(outbox)
    scheduler = ReminderScheduler(ReminderRepository(db), clock, settings.reminder_offsets_hours)
    async with AsyncExitStack() as stack:
        if agent is None and agent_provider is not None:
            deps = AgentDeps(settings, business, db, clock, sender, scheduler, outbox)
            agent = await stack.enter_async_context(agent_provider(deps))
        yield _assemble(
            settings=settings,
            options=options,
            business=business,
            db=db,
            clock=clock,
            metrics=metrics,
            transport=transport,
            probe_http=probe_http,
            agent=agent,
            calendly_sync=calendly_sync,
            calendly_client=calendly_client,
            owner=owner,
            outbox=outbox,
            sender=sender,
            scheduler=scheduler,
            wakeups=(turn_wakeup, delivery_wakeup),
        )


def _assemble(
    *,
    settings: Settings,
    options: ServerOptions,
    business: Business,
    db: Database,
    clock: Clock,
    metrics: ServerMetrics,
    transport: MessageTransport,
    probe_http: httpx.AsyncClient,
    agent: ConversationAgent | None,
    calendly_sync: CalendlySync | None,
    calendly_client: CalendlyClient | None,
    owner: str,
    outbox: Outbox,
    sender: OutboxSender,
    scheduler: ReminderScheduler,
    wakeups: tuple[Wakeup, Wakeup],
) -> Services:
    turn_wakeup, delivery_wakeup = wakeups
    inbound = InboundRepository(db)
    conversations = ConversationRepository(db)
    outbox_messages = OutboxRepository(db)
    system_events = SystemEventRepository(db)
    calendar_events = CalendarEventRepository(db)
    appointments = AppointmentRepository(db)
    reminder_rows = ReminderRepository(db)
    clients = ClientRepository(db)
    calendly = CalendlyEventProcessor(
        events=calendar_events,
        appointments=appointments,
        clients=clients,
        system_events=system_events,
        reminders=scheduler,
        business=business,
        clock=clock,
        metrics=metrics,
        on_injected=turn_wakeup.set,
        agent_settle_seconds=options.calendly_agent_settle_seconds,
    )
    intake = InboundIntake(
        inbound=inbound,
        conversations=conversations,
        outbox=outbox,
        business=business,
        clock=clock,
        metrics=metrics,
        rate_limit_per_minute=settings.rate_limit_per_minute,
        rate_window=timedelta(seconds=options.rate_window_seconds),
        notice_cooldown=timedelta(seconds=options.rate_notice_cooldown_seconds),
        on_stored=turn_wakeup.set,
    )
    runner = None
    if agent is not None:
        runner = ConversationRunner(
            agent=agent,
            inbound=inbound,
            system_events=system_events,
            conversations=conversations,
            outbox=outbox,
            clock=clock,
            metrics=metrics,
            owner=owner,
            debounce_seconds=options.debounce_seconds,
            lease_seconds=options.lease_seconds,
            language=business.language,
        )
    delivery = Delivery(
        outbox=outbox_messages,
        conversations=conversations,
        transport=transport,
        clock=clock,
        templates=templates_from(settings),
        metrics=metrics,
        max_attempts=options.delivery_max_attempts,
        backoff_seconds=options.delivery_backoff_seconds,
        concurrency=options.delivery_concurrency,
    )
    worker = Worker(
        runner=runner,
        conversations=conversations,
        delivery=delivery,
        reminder_scheduler=scheduler,
        reminder_dispatcher=ReminderDispatcher(
            repository=reminder_rows,
            business=business,
            clock=clock,
            metrics=metrics,
            owner=owner,
            on_enqueued=delivery_wakeup.set,
        ),
        calendly=calendly,
        clock=clock,
        options=options,
        turn_wakeup=turn_wakeup,
        delivery_wakeup=delivery_wakeup,
    )
    if calendly_sync is None and calendly_client is not None:
        user_uri = settings.calendly_user_uri
        calendly_sync = CalendlySyncer(
            client=calendly_client,
            appointments=appointments,
            clients=clients,
            reminders=scheduler,
            business=business,
            clock=clock,
            user_uri=str(user_uri) if user_uri else None,
        )
    state = ServerState(
        settings=settings,
        options=options,
        business=business,
        db=db,
        clock=clock,
        metrics=metrics,
        intake=intake,
        outbox=outbox,
        outbox_messages=outbox_messages,
        inbound=inbound,
        conversations=conversations,
        system_events=system_events,
        calendar_events=calendar_events,
        appointments=appointments,
        calendly=calendly,
        health=HealthChecker(settings, db, probe_http, ttl_seconds=options.health_cache_seconds),
        stats=StatsService(
            db=db, inbound=inbound, outbox=outbox_messages, calendar_events=calendar_events, clock=clock
        ),
        transport_name=transport.name,
        calendly_sync=calendly_sync,
    )
    return Services(state=state, worker=worker, sender=sender, reminders=scheduler)
