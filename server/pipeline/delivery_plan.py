"""What an outbox row becomes on the wire: WhatsApp's 24-hour rule, approved templates, one template per group."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from integrations.twilio.transport import OutgoingMessage
from store.conversations import ConversationRepository
from store.outbox import OutboxRepository
from store.outbox_message import OutboxMessage

# WhatsApp accepts free text only within 24 hours of the customer's last message.
SERVICE_WINDOW = timedelta(hours=24)

# Rows that would become the same template request and were queued this close together are one message (the parts
# of a split text, or a turn's messages of one kind): the template goes once. Legitimate repeats with the same
# variables, like an appointment's successive reminders, are hours apart.
TEMPLATE_GROUP_SPAN = timedelta(minutes=15)

# Statuses of a row whose request Twilio accepted.
WENT_OUT = frozenset({"sent", "delivered", "read"})


@dataclass(frozen=True)
class TemplateGroup:
    """The rows that one template request stands for: a member whose template already went out, if any, and the
    pending ones this send covers."""

    sent_by: OutboxMessage | None = None
    covering: list[int] = field(default_factory=list)


class MessagePlanner:
    """Decides, for one row at one moment, free text (or quick-reply buttons) inside the window, the kind's approved
    template outside it, or nothing (no template for that kind)."""

    def __init__(
        self,
        *,
        outbox: OutboxRepository,
        conversations: ConversationRepository,
        templates: Mapping[str, str],
        question_buttons_sid: str | None = None,
    ) -> None:
        """`question_buttons_sid`: the quick-reply content confirmation questions go out with (else plain text)."""
        self._outbox = outbox
        self._conversations = conversations
        self._templates = dict(templates)
        self._question_buttons = question_buttons_sid

    async def compose(self, row: OutboxMessage, *, at: datetime) -> OutgoingMessage | None:
        """The message `row` becomes if sent at `at`; None when it may not be sent then (outside the window, and
        its kind has no template)."""
        conversation = await self._conversations.get(row.wa_id)
        last_inbound = conversation.last_inbound_at if conversation else None
        if last_inbound is not None and at - last_inbound < SERVICE_WINDOW:
            if row.kind == "question" and self._question_buttons and row.template_variables:
                # Buttons whose payload names this very question: a tap can only confirm what it was asked about.
                return OutgoingMessage(
                    to=row.wa_id, content_sid=self._question_buttons, content_variables=row.template_variables
                )
            return OutgoingMessage(to=row.wa_id, body=row.body)
        template = self._templates.get(row.kind)
        if template is None:
            return None
        return OutgoingMessage(to=row.wa_id, content_sid=template, content_variables=row.template_variables)

    async def group(self, row: OutboxMessage, message: OutgoingMessage) -> TemplateGroup:
        """For a template send, the other rows it stands for (empty for free text or buttons).

        The template replaces the text, so the parts of a split message (or two messages of this kind from one turn)
        would each become this very request: it goes once, for the whole group.
        """
        template = message.content_sid
        if template is None or template != self._templates.get(row.kind):
            return TemplateGroup()
        members = await self._outbox.same_template_rows(row, within=TEMPLATE_GROUP_SPAN)
        # A turn's messages are queued (and delivered) one by one, so an earlier one may have gone out already.
        sent_by = next((g for g in members if g.template_sid == template and g.status in WENT_OUT), None)
        return TemplateGroup(sent_by=sent_by, covering=[g.id for g in members if g.status == "pending"])
