"""Sending WhatsApp messages: the interface tools use, and a logging sender for the embedded default."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

# "question": a confirmation question, sent with quick-reply buttons when they are configured.
OutboundKind = Literal["reply", "question", "system", "confirmation", "reminder", "cancellation", "staff", "admin"]

logger = logging.getLogger(__name__)


@runtime_checkable
class MessageSender(Protocol):
    """Queues a WhatsApp message for delivery (the server's implementation writes it to the outbox first)."""

    async def send(self, wa_id: str, body: str, *, kind: OutboundKind = "reply") -> None:
        """Queue `body` for the WhatsApp address `wa_id`."""
        ...


@dataclass
class RecordingSender:
    """Keeps every message in memory and logs it (console channel, tests, the demo)."""

    sent: list[tuple[str, str, OutboundKind]] = field(default_factory=list)

    async def send(self, wa_id: str, body: str, *, kind: OutboundKind = "reply") -> None:
        """Record the message."""
        self.sent.append((wa_id, body, kind))
        logger.info("whatsapp message queued", extra={"kind": kind, "chars": len(body)})
