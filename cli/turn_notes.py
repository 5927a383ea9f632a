"""What a chat turn did besides answering, as short notes: the tools the model called and what became of a question.

Read from the checkpointed thread (the messages a turn added, and the write waiting for a yes), so the console shows
what really ran without the agent having to report it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage

from agent.assistant import Assistant, thread_config
from tools.registry import WRITE_TOOLS

# Long arguments (a message body, notes) are cut: a note is a glance, the thread keeps the whole call.
_ARGUMENT_WIDTH = 40


@dataclass(frozen=True)
class Asked:
    """The write call a question is about: it runs only if the customer's next message is a clear yes."""

    call_id: str
    name: str


@dataclass(frozen=True)
class ThreadView:
    """The customer's thread at one moment: its messages and the write waiting for a yes, if any."""

    messages: tuple[BaseMessage, ...]
    asked: Asked | None

    def added_since(self, earlier: ThreadView) -> list[BaseMessage]:
        """Messages that were not in `earlier` (compaction may drop old ones; only additions matter)."""
        seen = {m.id for m in earlier.messages}
        return [m for m in self.messages if m.id not in seen]


async def read_thread(assistant: Assistant, wa_id: str) -> ThreadView:
    """The checkpointed thread of `wa_id`."""
    snapshot = await assistant.graph.aget_state(thread_config(wa_id))
    values: dict[str, Any] = dict(snapshot.values or {})
    pending = values.get("pending") if snapshot.interrupts else None
    asked = Asked(str(pending["tool_call"]["id"]), str(pending["tool_call"]["name"])) if pending else None
    return ThreadView(tuple(values.get("messages", [])), asked)


def _argument(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= _ARGUMENT_WIDTH else f"{text[: _ARGUMENT_WIDTH - 1]}…"


def describe_call(name: str, args: dict[str, Any]) -> str:
    """`name(arg="value", ...)`, as the demo transcript shows calls; unset arguments are left out."""
    shown = ", ".join(f"{key}={_argument(value)}" for key, value in args.items() if value is not None)
    return f"{name}({shown})"


def _result(message: ToolMessage) -> dict[str, Any]:
    try:
        parsed = json.loads(str(message.content))
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _answer_note(message: ToolMessage, name: str) -> str:
    """What became of the write the customer was asked about."""
    result = _result(message)
    if result.get("ok"):
        return f"✔ the customer confirmed: {name} ran"
    if result.get("error") == "not_confirmed":
        why = "the question expired" if result.get("reason") == "expired" else "no clear yes"
        return f"✘ {why}: {name} did not run"
    return f"✘ the customer confirmed, but {name} failed ({result.get('error', 'error')})"


def turn_notes(before: ThreadView, after: ThreadView) -> list[str]:
    """One note per tool call of the turn, and one for the answer to the question asked the turn before."""
    notes: list[str] = []
    for message in after.added_since(before):
        if isinstance(message, ToolMessage) and before.asked and message.tool_call_id == before.asked.call_id:
            notes.append(_answer_note(message, before.asked.name))
        elif isinstance(message, ToolMessage) and message.name in WRITE_TOOLS:
            # A write answered without asking: invalid, refused by a check, or one change too many.
            notes.append(f"✘ {message.name} was not asked ({_result(message).get('error', 'refused')})")
        elif isinstance(message, AIMessage):
            notes += [_call_note(call["id"], call["name"], call["args"], after.asked) for call in message.tool_calls]
    return notes


def _call_note(call_id: str | None, name: str, args: dict[str, Any], asked: Asked | None) -> str:
    waits = asked is not None and asked.call_id == call_id
    return f"· {describe_call(name, args)}{'  ⏸ waits for a yes' if waits else ''}"
