"""The composition root: settings in, every service of a server or worker process out, closed in reverse order.

Nothing else builds services. Tests and benchmarks replace parts through one `Overrides` object; whatever it leaves
empty is built from settings (the database from DATABASE_URL, the calendar, Twilio or the log transport, OpenAI).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta

import httpx

from agent.checkpointer import PrunesCheckpoints
from core.business import configured_business
from core.clock import SystemClock
from core.settings import Settings
from integrations.twilio.transport import DEFAULT_TIMEOUT_SECONDS
from server.agent_wiring import build_tracer, open_assistant
from server.backends import build_transport, calendly_client_for, interrupted_writes
from server.calendar_sync.alerts import UnmatchedBookingAlert
from server.calendar_sync.events import CalendlyEventProcessor
from server.calendar_sync.sync import CalendlySyncer
from server.ops.health import HealthChecker
from server.ops.metrics import ServerMetrics
from server.ops.stats import StatsService
from server.options import ServerOptions
from server.pipeline.delivery import Delivery, RetryPolicy, UndeliverableAlert, templates_from
from server.pipeline.feedback import FeedbackPublisher
from server.pipeline.fold import FoldWindow
from server.pipeline.holding import HoldingNotifier
from server.pipeline.intake import InboundIntake
from server.pipeline.outbox import Outbox, OutboxSender
from server.pipeline.receiver import WebhookReceiver
from server.pipeline.reminders import ReminderDispatcher, ReminderScheduler
from server.pipeline.turn_traces import LangSmithFeedback, TurnTraces
from server.pipeline.turns import ConversationRunner
from server.pipeline.wakeup import Wakeup
from server.pipeline.work_listener import WorkListener
from server.pipeline.worker import Worker, worker_id
from server.services import Overrides, Services
from store.appointments import AppointmentRepository
from store.calendar_events import CalendarEventRepository
from store.clients import ClientRepository
from store.conversations import ConversationRepository
from store.engines import open_database
from store.feedback import FeedbackRepository
from store.inbound import InboundRepository
from store.outbox import OutboxRepository
from store.reminders import ReminderRepository
from store.system_events import SystemEventRepository
from store.turn_runs import TurnRunRepository

PROBE_TIMEOUT_SECONDS = 5.0

__all__ = ["Overrides", "Services", "open_services"]


@asynccontextmanager
async def open_services(
    settings: Settings,
    overrides: Overrides | None = None,
    *,
    with_agent: bool = True,
    metrics: ServerMetrics | None = None,
) -> AsyncIterator[Services]:
    """Open the database, HTTP clients, agent (unless `with_agent` is off: messages are stored, not answered) and
    every service built on them; close them all on exit. `metrics` is the app's registry when an app exists."""
    given = overrides or Overrides()
    options = given.options or ServerOptions()
    business = given.business or configured_business(settings)
    clock = given.clock or SystemClock()
    metrics = metrics or ServerMetrics()
    owner = worker_id()
    async with AsyncExitStack() as stack:
        db = given.db
        if db is None:
            db = open_database(settings.database_url)
            stack.push_async_callback(db.close)
        twilio_http = await stack.enter_async_context(
            httpx.AsyncClient(transport=given.twilio_http, timeout=DEFAULT_TIMEOUT_SECONDS)
        )
        probe_http = await stack.enter_async_context(
            httpx.AsyncClient(transport=given.probe_http, timeout=PROBE_TIMEOUT_SECONDS)
        )
        transport = given.message_transport or build_transport(settings, twilio_http)

        inbound, conversations = InboundRepository(db), ConversationRepository(db)
        outbox_messages, system_events = OutboxRepository(db), SystemEventRepository(db)
        calendar_events, appointments = CalendarEventRepository(db), AppointmentRepository(db)
        clients = ClientRepository(db)

        turn_wakeup, delivery_wakeup = Wakeup(), Wakeup()
        outbox = Outbox(outbox_messages, clock, on_enqueued=delivery_wakeup.set)
        sender = OutboxSender(outbox)
        reminders = ReminderScheduler(ReminderRepository(db), clock, settings.reminder_offsets_hours)

        tracer = build_tracer(settings, business, given.model)
        stack.callback(tracer.flush)  # traces still buffered go out before the process ends
        agent = given.agent
        if agent is None and with_agent:
            agent = await open_assistant(
                settings,
                business,
                clock,
                stack,
                tracer=tracer,
                model=given.model,
                calendly_http=given.calendly_http,
                db=db,
                appointments=appointments,
                clients=clients,
                conversations=conversations,
                outbox=outbox,
                sender=sender,
                reminders=reminders,
            )
        turn_runs = TurnRunRepository(db)
        feedback = FeedbackPublisher(
            FeedbackRepository(db),
            turn_runs,
            LangSmithFeedback(tracer.client, tracer.project) if tracer.client else None,
            clock,
        )

        staff_number = settings.staff_whatsapp_number
        unmatched_alert = UnmatchedBookingAlert(outbox=outbox, business=business, staff_number=staff_number)
        calendly_sync = given.calendly_sync
        if calendly_sync is None and settings.calendly_access_token is not None:
            client = calendly_client_for(settings, clock, given.calendly_http)
            stack.push_async_callback(client.aclose)
            user_uri = settings.calendly_user_uri
            calendly_sync = CalendlySyncer(
                client=client,
                appointments=appointments,
                clients=clients,
                reminders=reminders,
                business=business,
                clock=clock,
                user_uri=str(user_uri) if user_uri else None,
                alert=unmatched_alert,
            )

        calendly = CalendlyEventProcessor(
            events=calendar_events,
            appointments=appointments,
            clients=clients,
            system_events=system_events,
            reminders=reminders,
            business=business,
            clock=clock,
            metrics=metrics,
            alert=unmatched_alert,
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
            clients=clients,
        )
        receiver = WebhookReceiver(
            intake, outbox_messages, db, settings.spool_dir, clock=clock, metrics=metrics, options=options
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
                fold=FoldWindow.from_options(options),
                lease_seconds=options.lease_seconds,
                language=business.language,
                clients=clients,
                traces=TurnTraces(turn_runs, feedback, clock) if tracer.enabled else None,
            )
        delivery = Delivery(
            outbox=outbox_messages,
            conversations=conversations,
            transport=transport,
            clock=clock,
            templates=templates_from(settings),
            metrics=metrics,
            retry=RetryPolicy.from_options(options),
            stuck_after=timedelta(seconds=options.delivery_stuck_after_seconds),
            concurrency=options.delivery_concurrency,
            question_buttons_sid=settings.twilio_content_confirm_buttons_sid,
            alert=UndeliverableAlert(outbox, clients, business, settings.staff_whatsapp_number),
        )
        dispatcher = ReminderDispatcher(
            repository=ReminderRepository(db),
            business=business,
            clock=clock,
            metrics=metrics,
            owner=owner,
            on_enqueued=delivery_wakeup.set,
            tracer=tracer,
        )
        worker = Worker(
            runner=runner,
            conversations=conversations,
            delivery=delivery,
            reminder_scheduler=reminders,
            reminder_dispatcher=dispatcher,
            calendly=calendly,
            clock=clock,
            options=options,
            turn_wakeup=turn_wakeup,
            delivery_wakeup=delivery_wakeup,
            holding=HoldingNotifier(
                db=db,
                clients=clients,
                clock=clock,
                language=business.language,
                after=timedelta(seconds=options.holding_after_seconds),
            ),
            interrupted_writes=interrupted_writes(agent),
            feedback=feedback,
            listener=WorkListener(db, turn=turn_wakeup, delivery=delivery_wakeup),
            checkpoints=agent if isinstance(agent, PrunesCheckpoints) else None,
        )
        yield Services(
            settings=settings,
            options=options,
            business=business,
            db=db,
            clock=clock,
            metrics=metrics,
            intake=intake,
            outbox=outbox,
            sender=sender,
            reminders=reminders,
            calendly=calendly,
            calendly_sync=calendly_sync,
            health=HealthChecker(
                settings, db, probe_http, ttl_seconds=options.health_cache_seconds, spool_state=receiver.spool.state
            ),
            stats=StatsService(
                db=db, inbound=inbound, outbox=outbox_messages, calendar_events=calendar_events, clock=clock
            ),
            transport_name=transport.name,
            worker=worker,
            inbound=inbound,
            conversations=conversations,
            outbox_messages=outbox_messages,
            system_events=system_events,
            calendar_events=calendar_events,
            appointments=appointments,
            receiver=receiver,
            tracer=tracer,
            feedback=feedback,
        )
