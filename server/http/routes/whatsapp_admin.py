"""Admin side of WhatsApp: send a message, read the configuration (secrets masked), statistics, health."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, field_validator

from core.addresses import parse_whatsapp_address
from core.sanitize import unstorable_characters
from core.settings import Settings
from core.urls import public_url
from server.http.deps import Admin, AppServices, JsonBody
from server.pipeline.delivery import SERVICE_WINDOW

router = APIRouter(prefix="/api/whatsapp", tags=["whatsapp admin"])


class SendRequest(BaseModel):
    """A message staff sends to a customer from the admin API."""

    to: str = Field(description="E.164 number ('+34600123456') or WhatsApp address ('whatsapp:+34600123456')")
    message: str = Field(min_length=1, max_length=4096)

    @field_validator("to")
    @classmethod
    def _address(cls, value: str) -> str:
        return parse_whatsapp_address(value.replace(" ", ""))

    @field_validator("message", mode="before")
    @classmethod
    def _sendable(cls, value: object) -> object:
        # Refused rather than cleaned: staff can fix the text, and a silently altered message is worse. PostgreSQL
        # cannot store NUL, and no database or HTTP body can encode half a surrogate pair ("\ud800" in JSON).
        # Before pydantic's own check, whose message for the latter ("unable to parse raw data") says less.
        if isinstance(value, str) and unstorable_characters(value):
            raise ValueError("must not contain NUL (\\u0000) or unpaired surrogate (\\ud800-\\udfff) characters")
        return value


def mask(value: str | None, *, keep: int = 4) -> str | None:
    """Show only the last characters of an identifier ('AC…0c34'); None stays None."""
    if value is None:
        return None
    return "…" + value[-keep:] if len(value) > keep else "***"


def public_config(settings: Settings, *, unsigned_allowed: bool, transport: str) -> dict[str, object]:
    """The WhatsApp configuration with every secret masked."""
    base = str(settings.public_base_url)
    return {
        "twilio_configured": settings.twilio_enabled,
        "transport": transport,
        "account_sid": mask(settings.twilio_account_sid),
        "auth_token": "***" if settings.twilio_auth_token is not None else None,
        "whatsapp_number": settings.twilio_whatsapp_number,
        "api_base_url": str(settings.twilio_api_base_url),
        "templates": {
            "confirmation": settings.twilio_template_confirmation_sid,
            "reminder": settings.twilio_template_reminder_sid,
            "cancellation": settings.twilio_template_cancellation_sid,
            "staff_alert": settings.twilio_template_staff_alert_sid,
            "confirm_buttons": settings.twilio_content_confirm_buttons_sid,
        },
        "webhook_url": public_url(base, "/webhook/whatsapp"),
        "status_callback_url": public_url(base, "/webhook/whatsapp/status"),
        "unsigned_webhooks_allowed": unsigned_allowed,
        "rate_limit_per_minute": settings.rate_limit_per_minute,
        "reminder_offsets_hours": settings.reminder_offsets_hours,
        "staff_whatsapp_number": mask(settings.staff_whatsapp_number, keep=3),
    }


@router.post("/send", status_code=status.HTTP_202_ACCEPTED, dependencies=[JsonBody])
async def send_message(request: SendRequest, services: AppServices, admin: Admin) -> dict[str, object]:
    """Queue a message to a customer (delivered by the worker, subject to WhatsApp's 24-hour rule)."""
    conversation = await services.conversations.get(request.to)
    last = conversation.last_inbound_at if conversation else None
    in_window = last is not None and services.clock.now() - last < SERVICE_WINDOW
    ids = await services.outbox.enqueue(request.to, request.message, kind="admin")
    # Outside the window free text cannot go out; the row is kept (as undeliverable) so staff sees why.
    return {"queued": ids, "to": request.to, "by": admin.subject, "within_24h_window": in_window}


@router.get("/config")
async def config(services: AppServices, admin: Admin) -> dict[str, object]:
    """The WhatsApp configuration, secrets masked."""
    return public_config(
        services.settings, unsigned_allowed=services.options.allow_unsigned_webhooks, transport=services.transport_name
    )


@router.get("/stats")
async def stats(
    services: AppServices, admin: Admin, hours: Annotated[int, Query(ge=1, le=24 * 90)] = 24
) -> dict[str, object]:
    """Messages per hour, reply latency (mean, p95), bookings, conversion and errors per dependency."""
    return await services.stats.summary(hours=hours)


@router.get("/health")
async def health(services: AppServices) -> JSONResponse:
    """Database and Twilio reachability (cached briefly)."""
    code, body = (await services.health.report()).view(["database", "twilio"])
    body["transport"] = services.transport_name
    return JSONResponse(body, status_code=code)
