"""Everything a request handler may use, built once per app in the lifespan and kept on `app.state`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from core.business import Business
from core.clock import Clock
from core.settings import Settings
from server.calendly_events import CalendlyEventProcessor
from server.health import HealthChecker
from server.intake import InboundIntake
from server.metrics import ServerMetrics
from server.options import ServerOptions
from server.outbox import Outbox
from server.stats import StatsService
from store.appointments import AppointmentRepository
from store.calendar_events import CalendarEventRepository
from store.conversations import ConversationRepository
from store.database import Database
from store.inbound import InboundRepository
from store.outbox import OutboxRepository
from store.system_events import SystemEventRepository

# Pulls bookings from Calendly into `appointments` (provided by the Calendly integration); returns a summary.
CalendlySync = Callable[[], Awaitable[Mapping[str, object]]]


@dataclass(frozen=True)
class ServerState:
    """The request-side services of one app."""

    settings: Settings
    options: ServerOptions
    business: Business
    db: Database
    clock: Clock
    metrics: ServerMetrics
    intake: InboundIntake
    outbox: Outbox
    outbox_messages: OutboxRepository
    inbound: InboundRepository
    conversations: ConversationRepository
    system_events: SystemEventRepository
    calendar_events: CalendarEventRepository
    appointments: AppointmentRepository
    calendly: CalendlyEventProcessor
    health: HealthChecker
    stats: StatsService
    transport_name: str
    calendly_sync: CalendlySync | None = None
