"""The backends settings choose: Twilio or the log transport, Calendly or the local calendar."""

from __future__ import annotations

from contextlib import AsyncExitStack
from urllib.parse import urlsplit

import httpx

from agent.api import ConversationAgent
from agent.assistant import Assistant
from booking.calendar import Calendar, RecoversInterruptedWrites
from booking.local_calendar import LocalCalendar
from core.business import Business
from core.clock import Clock
from core.settings import Settings
from core.urls import public_url
from integrations.calendly import CalendlyCalendar, CalendlyClient
from integrations.twilio.transport import LogTransport, MessageTransport, TwilioTransport
from store.appointments import AppointmentRepository

_LOCAL_HOSTS = {"localhost", "127.0.0.1", "0.0.0.0", "::1"}  # noqa: S104 - host names compared, nothing bound


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


def calendly_client_for(
    settings: Settings, clock: Clock, transport: httpx.AsyncBaseTransport | None = None
) -> CalendlyClient:
    """A Calendly client on CALENDLY_API_BASE_URL with CALENDLY_ACCESS_TOKEN (which must be set); close it after."""
    if settings.calendly_access_token is None:
        raise ValueError("CALENDLY_ACCESS_TOKEN is not set")
    token = settings.calendly_access_token.get_secret_value()
    http = httpx.AsyncClient(transport=transport) if transport is not None else None
    return CalendlyClient(str(settings.calendly_api_base_url), token, http=http, clock=clock)


async def open_calendar(
    settings: Settings,
    business: Business,
    clock: Clock,
    appointments: AppointmentRepository,
    stack: AsyncExitStack,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Calendar:
    """The configured calendar: Calendly when CALENDLY_ACCESS_TOKEN is set (its client closed with `stack`; each of
    its writes recorded first as an intent in the same database), else the local calendar from the business YAML
    (whose writes are single transactions, with nothing to record)."""
    if settings.calendly_access_token is None:
        return LocalCalendar(business, appointments, clock)
    client = calendly_client_for(settings, clock, transport)
    stack.push_async_callback(client.aclose)
    user_uri = str(settings.calendly_user_uri) if settings.calendly_user_uri else (await client.current_user()).uri
    return CalendlyCalendar(client, appointments, business, clock, user_uri)


def interrupted_writes(agent: ConversationAgent | None) -> RecoversInterruptedWrites | None:
    """The assistant's calendar when a crash can cut its writes off (Calendly), for the worker to settle; None for
    the local calendar (one transaction per write) or an agent built elsewhere."""
    calendar = agent.services.calendar if isinstance(agent, Assistant) else None
    return calendar if isinstance(calendar, RecoversInterruptedWrites) else None
