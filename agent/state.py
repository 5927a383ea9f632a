"""The checkpointed state of one customer's conversation."""

from __future__ import annotations

from typing import Annotated, Any, TypedDict

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages


class PendingAction(TypedDict):
    """A validated write call waiting for the customer's yes to exactly this question.

    `id` names the question (a quick-reply button carries it); after `expires_at` (ISO 8601, never later than the
    slot itself) a yes no longer executes it.
    """

    id: str
    tool_call: dict[str, Any]
    question: str
    asked_at: str
    expires_at: str


class ConversationState(TypedDict, total=False):
    """Messages (trimmed as the thread grows) and the write action awaiting confirmation, if any."""

    messages: Annotated[list[AnyMessage], add_messages]
    pending: PendingAction | None
