"""Twilio's webhooks: inbound WhatsApp messages and delivery status callbacks."""

from __future__ import annotations

import logging

from fastapi import APIRouter, HTTPException, Response, status
from pydantic import ValidationError

from integrations.twilio.models import TwilioInbound, TwilioStatusCallback, without_nul
from server.http.deps import AppServices, TwilioForm
from server.http.errors import invalid_fields

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/webhook/whatsapp", tags=["whatsapp webhooks"])

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


def _invalid(exc: ValidationError) -> HTTPException:
    return HTTPException(status.HTTP_400_BAD_REQUEST, f"invalid Twilio fields: {invalid_fields(exc)}")


@router.post("")
async def inbound_message(form: TwilioForm, services: AppServices) -> Response:
    """Store the message (once per MessageSid) and answer empty TwiML at once; a worker runs the turn later."""
    try:
        message = TwilioInbound.model_validate(form)
    except ValidationError as exc:
        raise _invalid(exc) from None
    # The raw form is stored too (jsonb on PostgreSQL, which cannot hold NUL characters).
    await services.intake.accept(message, without_nul(form))
    return Response(content=EMPTY_TWIML, media_type="text/xml")


@router.post("/status")
async def delivery_status(form: TwilioForm, services: AppServices) -> Response:
    """Record a delivery status Twilio reports for a message we sent (e.g. failed with 63016)."""
    try:
        callback = TwilioStatusCallback.model_validate(form)
    except ValidationError as exc:
        raise _invalid(exc) from None
    outbox_status = callback.outbox_status
    if outbox_status is not None:
        row = await services.outbox_messages.apply_status(
            callback.message_sid,
            status=outbox_status,
            now=services.clock.now(),
            error_code=callback.error_code,
            error_message=callback.error_message,
        )
        if row is None:
            # Usually the callback beat `mark_sent` (it races Twilio's create response): the status is kept and
            # applied when the SID is recorded; delivery logs a failure then.
            logger.info(
                "status callback before its message's SID was recorded; kept until it is",
                extra={"message_sid": callback.message_sid, "status": outbox_status},
            )
        elif outbox_status == "failed":
            services.metrics.dependency_errors.labels("twilio").inc()
            logger.warning(
                "twilio reported a failed delivery",
                extra={"outbox_id": row.id, "error_code": callback.error_code, "wa_id": row.wa_id},
            )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
