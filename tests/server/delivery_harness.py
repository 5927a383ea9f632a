"""The real Delivery on a test database and the Twilio double, driven pass by pass (no worker, no waiting)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import httpx

from core.business import Business
from core.clock import FixedClock
from integrations.twilio.transport import MessageTransport, TwilioTransport
from server.ops.metrics import ServerMetrics
from server.pipeline.delivery import Delivery
from server.pipeline.delivery_retry import RetryPolicy
from server.pipeline.outbox import Outbox
from server.pipeline.undeliverable import UndeliverableAlert
from store import Database
from store.clients import ClientRepository
from store.conversations import ConversationRepository
from store.outbox import OutboxRepository
from tests.server.twilio_double import SENDER, TwilioDouble

STAFF = "whatsapp:+34600999888"
STAFF_TEMPLATE = "HX000000000000000000000000000staff"


@asynccontextmanager
async def direct_delivery(
    db: Database,
    clock: FixedClock,
    twilio: TwilioDouble,
    *,
    templates: Mapping[str, str] | None = None,
    retry: RetryPolicy | None = None,
    business: Business | None = None,
    transport: MessageTransport | None = None,
) -> AsyncIterator[Delivery]:
    """A Delivery as the wiring builds it (staff alerts to STAFF when `business` is given), its transport the real
    TwilioTransport over `twilio` (whose clock becomes `clock`) unless `transport` is given."""
    twilio.now = clock.now
    async with httpx.AsyncClient(transport=twilio.transport) as http:
        alert = None
        if business is not None:
            alert = UndeliverableAlert(Outbox(OutboxRepository(db), clock), ClientRepository(db), business, STAFF)
        yield Delivery(
            outbox=OutboxRepository(db),
            conversations=ConversationRepository(db),
            transport=transport
            or TwilioTransport(
                account_sid="AC" + "0" * 30 + "42",
                auth_token="token",
                from_number=SENDER,
                api_base_url="https://twilio.test",
                http=http,
            ),
            clock=clock,
            templates=templates or {},
            metrics=ServerMetrics(),
            retry=retry,
            alert=alert,
        )


async def drain(delivery: Delivery) -> int:
    """Delivery passes until one finds nothing due (as the worker's loop does); how many rows were handled."""
    handled = 0
    while count := await delivery.deliver_due():
        handled += count
    return handled
