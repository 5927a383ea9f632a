"""Twilio's webhooks: inbound WhatsApp messages and delivery status callbacks."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response, status
from pydantic import ValidationError

from integrations.twilio.models import TwilioInbound, TwilioStatusCallback
from server.http.deps import AppServices, TwilioForm
from server.http.errors import invalid_fields
from server.pipeline.spool import SpoolUnavailable

router = APIRouter(prefix="/webhook/whatsapp", tags=["whatsapp webhooks"])

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


def _invalid(exc: ValidationError) -> HTTPException:
    return HTTPException(status.HTTP_400_BAD_REQUEST, f"invalid Twilio fields: {invalid_fields(exc)}")


def _not_kept() -> HTTPException:
    # Never 200 for what is not durable: a quick 503 lets Twilio's retry (connection overrides) or fallback URL act.
    return HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "message not stored; try again")


@router.post("")
async def inbound_message(form: TwilioForm, services: AppServices) -> Response:
    """Store the message (once per MessageSid) and answer empty TwiML within a few seconds, whatever the database
    does: if it does not take the message in time, the message is spooled to disk and stored when it answers again.
    A worker runs the turn later."""
    try:
        message = TwilioInbound.model_validate(form)
    except ValidationError as exc:
        raise _invalid(exc) from None
    try:
        await services.receiver.message(message, form)
    except SpoolUnavailable:
        raise _not_kept() from None
    return Response(content=EMPTY_TWIML, media_type="text/xml")


@router.post("/status")
async def delivery_status(form: TwilioForm, services: AppServices) -> Response:
    """Record a delivery status Twilio reports for a message we sent (e.g. failed with 63016); like messages,
    spooled when the database does not take it in time."""
    try:
        callback = TwilioStatusCallback.model_validate(form)
    except ValidationError as exc:
        raise _invalid(exc) from None
    try:
        await services.receiver.status(callback, form)
    except SpoolUnavailable:
        raise _not_kept() from None
    return Response(status_code=status.HTTP_204_NO_CONTENT)
