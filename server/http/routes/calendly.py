"""Calendly: the signed webhook (and its verification probe), health, sync and the mirrored events."""

from __future__ import annotations

import json
import logging
import math
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from core.sanitize import TooDeep, storable
from core.urls import public_url
from integrations.calendly.models import CalendlyError, CalendlyRateLimited
from integrations.calendly.signature import CalendlySignatureError, verify_calendly_signature
from integrations.calendly.webhook_models import HANDLED_EVENTS, CalendlyWebhook
from server.http.deps import JSON, Admin, AppServices, require_content_type
from server.http.errors import invalid_fields

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/calendly", tags=["calendly"])


async def verified_calendly_webhook(request: Request, services: AppServices) -> CalendlyWebhook:
    """The delivery, after checking `Calendly-Webhook-Signature` on the raw body (3-minute tolerance)."""
    require_content_type(request, JSON)
    raw = await request.body()
    key = services.settings.calendly_webhook_signing_key
    if key is None:
        if not services.options.allow_unsigned_webhooks:
            services.metrics.webhook_rejections.labels("calendly", "not_configured").inc()
            raise HTTPException(status.HTTP_403_FORBIDDEN, "CALENDLY_WEBHOOK_SIGNING_KEY not set: webhooks refused")
    else:
        try:
            verify_calendly_signature(
                key.get_secret_value(),
                request.headers.get("calendly-webhook-signature"),
                raw,
                now=services.clock.now(),
                tolerance_seconds=services.options.calendly_signature_tolerance_seconds,
            )
        except CalendlySignatureError as exc:
            services.metrics.webhook_rejections.labels("calendly", "bad_signature").inc()
            logger.warning("calendly webhook refused", extra={"reason": str(exc)})
            raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from None
    try:
        # Cleaned, not refused: the body is signed by Calendly, which would retry a 4xx and then give up.
        webhook = CalendlyWebhook.model_validate(storable(json.loads(raw)))
        if webhook.event in HANDLED_EVENTS:
            webhook.invitee()  # refuse a malformed invitee now, before anything is stored
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        # RecursionError: nesting deeper than the parser itself can recurse (json.loads does not say JSONDecodeError).
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "body is not valid JSON") from None
    except TooDeep as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
    except ValidationError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"invalid Calendly payload: {invalid_fields(exc)}") from None
    return webhook


CalendlyDelivery = Annotated[CalendlyWebhook, Depends(verified_calendly_webhook)]


@router.post("/webhook")
async def webhook(delivery: CalendlyDelivery, services: AppServices) -> JSONResponse:
    """Record the delivery once, mirror the appointment, and queue a system turn for the customer."""
    outcome = await services.calendly.receive(delivery)
    body = {
        "status": outcome.status,
        "detail": outcome.detail,
        "appointment_id": outcome.appointment_id,
        "customer_notified": outcome.injected,
    }
    return JSONResponse(body, status_code=202 if outcome.status == "received" else 200)


@router.get("/webhook")
async def webhook_probe(services: AppServices) -> dict[str, object]:
    """Answer a verification probe: the endpoint exists and whether it can check signatures."""
    return {
        "status": "ok",
        "webhook_url": public_url(str(services.settings.public_base_url), "/api/calendly/webhook"),
        "signing_key_configured": services.settings.calendly_webhook_signing_key is not None,
        "events": list(HANDLED_EVENTS),
    }


@router.get("/health")
async def health(services: AppServices) -> JSONResponse:
    """Database and Calendly reachability (cached briefly)."""
    code, body = (await services.health.report()).view(["database", "calendly"])
    return JSONResponse(body, status_code=code)


@router.post("/sync")
async def sync(services: AppServices, admin: Admin) -> JSONResponse:
    """Pull bookings from Calendly now, through the configured sync (409 when none is configured; 503 while
    Calendly rate-limits us, 502 when it fails)."""
    if services.calendly_sync is None:
        return JSONResponse(
            {"error": "no Calendly sync configured: set CALENDLY_ACCESS_TOKEN and run with the Calendly calendar"},
            status_code=status.HTTP_409_CONFLICT,
        )
    try:
        summary = await services.calendly_sync()
    except CalendlyRateLimited as exc:
        # The sync reads everything before writing anything, so a refusal leaves the database as it was.
        services.metrics.dependency_errors.labels("calendly").inc()
        retry = max(1, math.ceil(exc.reset_seconds))
        logger.warning("calendly sync rate limited", extra={"retry_after_seconds": retry})
        return JSONResponse(
            {"error": f"Calendly rate limit reached; nothing was synced, retry in {retry} s", "retry_after": retry},
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(retry)},
        )
    except CalendlyError as exc:  # unreachable, failing with 5xx, or refusing us (e.g. a revoked token)
        services.metrics.dependency_errors.labels("calendly").inc()
        logger.warning("calendly sync failed", extra={"error": str(exc)})
        return JSONResponse(
            {"error": f"Calendly sync failed; nothing was synced: {exc}"}, status_code=status.HTTP_502_BAD_GATEWAY
        )
    return JSONResponse({"status": "ok", "by": admin.subject, "summary": dict(summary)})


@router.get("/events")
async def events(
    services: AppServices, admin: Admin, limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> dict[str, object]:
    """Appointments mirrored from Calendly and the latest webhook deliveries."""
    appointments = await services.calendar_events.mirrored_appointments(limit=limit)
    deliveries = await services.calendar_events.recent(limit=limit)
    return {
        "appointments": [a.model_dump(mode="json") for a in appointments],
        "deliveries": [d.model_dump(mode="json", exclude={"payload"}) for d in deliveries],
    }
