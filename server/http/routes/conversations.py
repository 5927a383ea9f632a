"""Conversations for staff: list, transcript, and pausing the bot for one customer (staff takeover)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, status

from core.addresses import parse_whatsapp_address
from server.http.deps import Admin, AppServices

router = APIRouter(prefix="/api/conversations", tags=["conversations"])


def whatsapp_address(value: str) -> str:
    """Accept 'whatsapp:+34600123456', '+34600123456' or '34600123456' in the path; 400 for anything else."""
    try:
        return parse_whatsapp_address(value, require_plus=False)
    except ValueError:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "not a WhatsApp address or phone number") from None


WaIdPath = Annotated[str, Path(description="WhatsApp address or E.164 number", max_length=64)]


@router.get("")
async def list_conversations(
    services: AppServices, admin: Admin, limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> dict[str, object]:
    """Conversations, most recently active first, with their takeover services."""
    conversations = await services.conversations.list_recent(limit=limit)
    return {
        "conversations": [
            c.model_dump(mode="json", include={"wa_id", "paused", "paused_by", "paused_at", "last_inbound_at"})
            for c in conversations
        ]
    }


@router.get("/{wa_id}")
async def transcript(
    wa_id: WaIdPath, services: AppServices, admin: Admin, limit: Annotated[int, Query(ge=1, le=1000)] = 200
) -> dict[str, object]:
    """The conversation as stored: customer messages, system events and outgoing messages in time order."""
    address = whatsapp_address(wa_id)
    conversation = await services.conversations.get(address)
    if conversation is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no conversation with this customer")
    # (moment, rank, id, entry): customer messages sort before the events and replies of the same instant.
    entries: list[tuple[datetime, int, int, dict[str, object]]] = []
    for m in await services.inbound.for_conversation(address, limit=limit):
        entry = {"direction": "in", "id": m.id, "text": m.body, "status": m.status, "error": m.error}
        entries.append((m.received_at, 0, m.id, entry))
    for e in await services.system_events.for_conversation(address, limit=limit):
        entry = {"direction": "event", "id": e.id, "text": e.description, "status": e.status}
        entries.append((e.created_at, 1, e.id, entry))
    for o in await services.outbox_messages.for_conversation(address, limit=limit):
        entry = {
            "direction": "out",
            "id": o.id,
            "text": o.body,
            "kind": o.kind,
            "status": o.status,
            "error_code": o.error_code,
            "in_reply_to": o.inbound_message_id,
        }
        entries.append((o.created_at, 2, o.id, entry))
    entries.sort(key=lambda item: item[:3])
    return {
        "conversation": conversation.model_dump(mode="json", exclude={"lease_owner", "lease_until"}),
        "messages": [{"at": at.isoformat(), **entry} for at, _, _, entry in entries],
    }


@router.post("/{wa_id}/pause")
async def pause(wa_id: WaIdPath, services: AppServices, admin: Admin) -> dict[str, object]:
    """Staff takes over: messages are still stored but the bot no longer answers this customer."""
    conversation = await services.conversations.set_paused(
        whatsapp_address(wa_id), paused=True, by=admin.subject, now=services.clock.now()
    )
    return conversation.model_dump(mode="json", exclude={"lease_owner", "lease_until"})


@router.post("/{wa_id}/resume")
async def resume(wa_id: WaIdPath, services: AppServices, admin: Admin) -> dict[str, object]:
    """Hand the customer back to the bot.

    Calendar events held during the takeover are released to the worker (the customer must still hear about a
    cancellation); customer messages received while paused stay unanswered by the bot, as staff dealt with them.
    """
    conversation = await services.conversations.set_paused(
        whatsapp_address(wa_id), paused=False, by=None, now=services.clock.now()
    )
    return conversation.model_dump(mode="json", exclude={"lease_owner", "lease_until"})
