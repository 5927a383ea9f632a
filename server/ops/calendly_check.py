"""`asistente check` on Calendly: the token's user (whose URI goes in CALENDLY_USER_URI), and which event type
each service of the business YAML books, verified to exist, be active and last as long as the service."""

from __future__ import annotations

import httpx

from core.business import Business, Service, normalize_name
from core.settings import Settings, is_placeholder_url
from integrations.calendly import CalendlyApiError, CalendlyClient, CalendlyError
from integrations.calendly.models import CalendlyUser, EventType
from server.ops.config_check import CheckRow

_CLIENT_KEYS = {"CALENDLY_ACCESS_TOKEN", "CALENDLY_API_BASE_URL"}


async def calendly_rows(
    settings: Settings, business: Business | None, http: httpx.AsyncClient | None, *, broken: set[str], offline: bool
) -> list[CheckRow]:
    """The user row, then one row per service: which event type it books on Calendly."""
    if not settings.calendly_enabled or settings.calendly_access_token is None:
        return [CheckRow("calendly", "CALENDLY_ACCESS_TOKEN", "off", "not configured: local calendar from the YAML")]
    services = business.services if business is not None else ()
    if broken & _CLIENT_KEYS or offline or http is None:
        why = "--offline" if offline or http is None else "fix the Calendly settings above first"
        return [_unverified_row(service, why) for service in services]
    client = CalendlyClient(
        str(settings.calendly_api_base_url),
        settings.calendly_access_token.get_secret_value(),
        http=http,
        max_retries=0,
        max_rate_limit_retries=0,
    )
    try:
        me = await client.current_user()
    except CalendlyError as exc:
        return [CheckRow("calendly", "CALENDLY_ACCESS_TOKEN", "FAILED", f"GET /users/me: {_describe(exc)}")]
    rows = [_user_row(settings, me, broken)]
    configured = settings.calendly_user_uri
    owner = str(configured) if configured and "CALENDLY_USER_URI" not in broken else me.uri
    try:
        event_types = await client.list_event_types(owner)
    except CalendlyError as exc:
        return [*rows, CheckRow("calendly", "event types", "FAILED", f"of {owner}: {_describe(exc)}")]
    return rows + [service_row(service, event_types, owner) for service in services]


def _user_row(settings: Settings, me: CalendlyUser, broken: set[str]) -> CheckRow:
    detail = f"user {me.uri} ({me.name})"
    configured = str(settings.calendly_user_uri) if settings.calendly_user_uri else None
    if "CALENDLY_USER_URI" in broken:
        return CheckRow("calendly", "CALENDLY_USER_URI", "FAILED", f"{detail}: set CALENDLY_USER_URI={me.uri}")
    if configured is not None and configured.rstrip("/") != me.uri.rstrip("/"):
        detail += f"; CALENDLY_USER_URI is another user, {configured}, whose event types are checked"
        return CheckRow("calendly", "CALENDLY_USER_URI", "warning", detail)
    return CheckRow("calendly", "CALENDLY_ACCESS_TOKEN", "ok", detail)


def service_row(service: Service, event_types: list[EventType], owner: str) -> CheckRow:
    """Which of `owner`'s event types `service` books, as the Calendly calendar picks it: `calendly_event_type`
    from the YAML, or else an active event type with the service's name or an alias."""
    wanted = service.calendly_event_type
    if wanted and is_placeholder_url(wanted):
        return CheckRow("calendly", service.name, "FAILED", f"calendly_event_type {wanted} is a placeholder")
    if wanted:
        found = next((t for t in event_types if t.uri.rstrip("/") == wanted.rstrip("/")), None)
        if found is None:
            names = ", ".join(f"'{t.name}'" for t in event_types if t.active) or "none"
            detail = f"calendly_event_type {wanted} is not an event type of {owner} (active: {names})"
            return CheckRow("calendly", service.name, "FAILED", detail)
        if not found.active:
            return CheckRow("calendly", service.name, "FAILED", f"-> '{found.name}' ({found.uri}) is inactive")
        return _mapped(service, found, "")
    by_name = {normalize_name(t.name): t for t in event_types if t.active}
    match = next((by_name[name] for name in service.names if name in by_name), None)
    if match is None:
        detail = "no active event type has its name or an alias: it cannot be booked; set calendly_event_type"
        return CheckRow("calendly", service.name, "warning", detail)
    return _mapped(service, match, ", matched by name")


def _mapped(service: Service, event_type: EventType, how: str) -> CheckRow:
    detail = f"-> '{event_type.name}' ({event_type.uri}{how})"
    if event_type.duration != service.duration_minutes:
        detail += f"; it lasts {event_type.duration} min on Calendly, {service.duration_minutes} in the YAML"
        return CheckRow("calendly", service.name, "warning", detail)
    return CheckRow("calendly", service.name, "ok", detail)


def _unverified_row(service: Service, why: str) -> CheckRow:
    wanted = service.calendly_event_type
    if wanted and is_placeholder_url(wanted):
        return CheckRow("calendly", service.name, "FAILED", f"calendly_event_type {wanted} is a placeholder")
    target = wanted or "an event type with its name (or an alias)"
    return CheckRow("calendly", service.name, "skipped", f"-> {target}; not verified ({why})")


def _describe(exc: CalendlyError) -> str:
    return exc.describe() if isinstance(exc, CalendlyApiError) else str(exc)
