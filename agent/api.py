"""What the server sees of the agent: feed it a customer's messages or a calendar event, get replies back."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class IncomingText:
    """One WhatsApp message from the customer, as the worker folds it into a turn."""

    body: str
    button_payload: str | None = None
    message_sid: str | None = None


@dataclass(frozen=True)
class TurnResult:
    """What a turn produced. `replies` are for the caller to deliver (customer turns only); messages the agent sent
    itself through `send_whatsapp` were already handed to the sender."""

    replies: tuple[str, ...] = ()
    awaiting_confirmation: bool = False
    # The pending question's id (a quick-reply button answering it carries `confirm:<id>`).
    confirmation_id: str | None = None
    # Why the turn was cut short ("model_calls", "messages_sent"), if it was: counted and logged, not retried.
    budget_exhausted: str | None = None
    # The turn's root run in LangSmith (None with tracing off), what it did, and signals that become feedback.
    run_id: str | None = None
    outcome: str = "answered"
    appointment_ids: tuple[str, ...] = ()
    rejected_confirmation: bool = False  # the customer answered a confirmation question with something but a yes
    repeated: bool = False  # the customer said again what they had said just before


class ConversationAgent(Protocol):
    """The agent as the server uses it. One conversation must never run two turns at once (the worker ensures it)."""

    async def customer_turn(
        self,
        wa_id: str,
        messages: Sequence[IncomingText],
        *,
        profile_name: str | None = None,
        run_id: str | None = None,
    ) -> TurnResult:
        """Run one turn for messages the customer sent (several, folded in arrival order). `run_id` names the
        turn's trace, so the caller can refer to it even when the turn fails."""
        ...

    async def system_turn(
        self, wa_id: str, event: str, *, event_id: str | None = None, run_id: str | None = None
    ) -> TurnResult:
        """Inject a calendar event or reminder into the customer's thread; nothing reaches the customer unless the
        agent calls `send_whatsapp`. `event_id` makes a retried turn replace, not repeat, the event."""
        ...
