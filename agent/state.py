"""The checkpointed state of one customer's conversation."""

from __future__ import annotations

from typing import Annotated, Any, TypedDict

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages


class PendingAction(TypedDict):
    """A validated write call waiting for the customer's yes."""

    tool_call: dict[str, Any]
    question: str


class ConversationState(TypedDict, total=False):
    """Messages (trimmed as the thread grows) and the write action awaiting confirmation, if any."""

    messages: Annotated[list[AnyMessage], add_messages]
    pending: PendingAction | None
