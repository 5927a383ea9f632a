"""What the agent did in a captured conversation that the appointments do not show: the tools the model called
(read from the customer's stored thread, LangGraph's checkpoint) and whether it handed the customer to staff."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from agent.assistant import thread_config
from agent.checkpointer import open_checkpointer
from agent.turn_outcome import HANDED_OFF
from evals.capture_file import Entry
from store.conversations import HANDOFF_PAUSED_BY
from store.database import Database, Dialect

# How the store says the agent handed a conversation to staff: the turn's outcome, and the pause it set.
_HANDED_OFF = HANDED_OFF
_HANDOFF_PAUSE = HANDOFF_PAUSED_BY


async def thread_tools(db: Database, wa_id: str, items: Sequence[Entry]) -> list[str] | None:
    """The tools the model called in the captured turns, in order, from the customer's stored thread (LangGraph's
    checkpoint); None when the thread no longer holds every one of them (trimmed, or no checkpoint tables)."""
    if db.dialect is Dialect.SQLITE:
        tables = "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'checkpoints'"
    else:
        tables = "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = 'checkpoints' AND table_schema = "
        tables += "current_schema()"
    if not await db.fetch_value(tables):
        return None  # checked first: reading through LangGraph's SQLite saver would create them
    async with open_checkpointer(db, setup=False) as saver:
        stored = await saver.aget_tuple(thread_config(wa_id))
    messages = stored.checkpoint["channel_values"].get("messages", []) if stored else []
    opened = {m.id for m in messages if _opens_turn(m)}
    if any(item.refs and opened.isdisjoint(item.refs) for item in items):
        return None
    wanted = {ref for item in items for ref in item.refs}
    names: list[str] = []
    inside = False
    for message in messages:
        if _opens_turn(message):
            inside = message.id in wanted
        elif inside and isinstance(message, AIMessage):
            names += [call["name"] for call in message.tool_calls]
    return names


def _opens_turn(message: BaseMessage) -> bool:
    # The customer's words ("wa:<message sid>", also their answer to a confirmation question) or an injected event.
    return isinstance(message, HumanMessage | SystemMessage) and str(message.id).startswith(("wa:", "event:"))


async def handed_off(db: Database, wa_id: str, start: datetime, cutoff: datetime | None) -> bool:
    """Whether a turn of the window ended with a hand-off to staff, or the agent paused the conversation for them."""
    bound = " AND {col} < :cutoff" if cutoff is not None else ""
    params = {"wa_id": wa_id, "start": start, "cutoff": cutoff, "outcome": _HANDED_OFF, "by": _HANDOFF_PAUSE}
    runs = await db.fetch_value(
        "SELECT COUNT(*) FROM turn_runs WHERE wa_id = :wa_id AND outcome = :outcome AND created_at >= :start"
        + bound.format(col="created_at"),
        params,
    )
    paused = await db.fetch_value(
        "SELECT COUNT(*) FROM conversations WHERE wa_id = :wa_id AND paused_by = :by AND paused_at >= :start"
        + bound.format(col="paused_at"),
        params,
    )
    return bool(runs or paused)
