"""Keeping the stored thread valid whatever the model or a failure did.

- Tool-call ids are ours: some OpenAI-compatible servers reuse ids ("call_0") or send empty ones, and the
  idempotency of writes is keyed on the id, so every model message gets fresh, unique ids before it is stored.
- No tool call stays without its result: OpenAI refuses a history with an unanswered call, so a call left open by
  a failure gets an explicit "interrupted" result before the model is asked again.
- The turn budget is read from the thread itself: what the model did since the turn began.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, SystemMessage, ToolMessage

from tools.results import problem


def new_call_id() -> str:
    """A tool-call id no model can repeat by accident."""
    return f"call_{uuid.uuid4().hex[:20]}"


def with_own_ids(message: AIMessage) -> AIMessage:
    """The model's message with every tool call (valid or not) under a fresh id of ours."""
    if not message.tool_calls and not message.invalid_tool_calls:
        return message
    calls = [{**call, "id": new_call_id()} for call in message.tool_calls]
    invalid = [{**call, "id": new_call_id()} for call in message.invalid_tool_calls]
    extra = {k: v for k, v in message.additional_kwargs.items() if k != "tool_calls"}  # the provider's raw ids
    return message.model_copy(update={"tool_calls": calls, "invalid_tool_calls": invalid, "additional_kwargs": extra})


def turn_start(messages: Sequence[AnyMessage]) -> int:
    """Index of the message that began the current turn (the customer's words or an injected event)."""
    for index in range(len(messages) - 1, -1, -1):
        if isinstance(messages[index], HumanMessage | SystemMessage):
            return index
    return 0


def model_calls_this_turn(messages: Sequence[AnyMessage]) -> int:
    """How many times the model answered since the turn began."""
    return sum(isinstance(m, AIMessage) for m in messages[turn_start(messages) :])


def calls_this_turn(messages: Sequence[AnyMessage], tool_name: str) -> int:
    """How many calls of `tool_name` were answered since the turn began (run, failed or refused)."""
    return sum(isinstance(m, ToolMessage) and m.name == tool_name for m in messages[turn_start(messages) :])


def unanswered_calls(messages: Sequence[AnyMessage]) -> list[tuple[str, str]]:
    """(id, name) of every tool call in the thread that has no result yet."""
    answered = {m.tool_call_id for m in messages if isinstance(m, ToolMessage)}
    open_calls: list[tuple[str, str]] = []
    for message in messages:
        if isinstance(message, AIMessage):
            for call in [*message.tool_calls, *message.invalid_tool_calls]:
                if call["id"] and call["id"] not in answered:
                    open_calls.append((call["id"], call["name"] or "unknown"))
    return open_calls


def interrupted_results(messages: Sequence[AnyMessage], *, keep: str | None = None) -> list[ToolMessage]:
    """Results that close every open tool call except `keep` (the write awaiting the customer's yes)."""
    content = problem(
        "interrupted",
        "This call was interrupted by a failure and its outcome is unknown. Check (e.g. lookup_client) before "
        "calling it again.",
    )
    return [
        ToolMessage(content=content, tool_call_id=call_id, name=name, status="error")
        for call_id, name in unanswered_calls(messages)
        if call_id != keep
    ]
