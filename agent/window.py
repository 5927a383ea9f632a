"""Bounded history: what the model sees each turn, and how much of the thread the checkpoint keeps."""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.messages import AnyMessage, HumanMessage, RemoveMessage, SystemMessage

# The model sees the last few customer exchanges in full; older context comes from the client profile and
# upcoming appointments shown every turn, so input size stays flat however long the conversation runs.
MODEL_WINDOW_TURNS = 4
# The checkpoint keeps more, for transcripts and debugging, but still bounded.
STORED_WINDOW_TURNS = 20
# One customer message in front of the model: WhatsApp's limit for a text we send. A longer one (a pasted document)
# is stored whole; the model reads its start and a note saying how much was left out.
MESSAGE_MAX_CHARS = 4096


def bounded_text(text: str, limit: int = MESSAGE_MAX_CHARS) -> str:
    """`text`, or its first `limit` characters and a note saying how much of it that is."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n[message cut: {limit} of {len(text)} characters shown]"


def _turn_starts(messages: Sequence[AnyMessage]) -> list[int]:
    # A turn starts with the customer's message or with an injected event (a system message in the thread). The
    # messages of one burst, folded into one turn, are adjacent: they are one turn, not one each (else a burst of
    # more than `MODEL_WINDOW_TURNS` messages, e.g. drained from the webhook spool, would hide its own start).
    def opens(i: int) -> bool:
        return isinstance(messages[i], HumanMessage | SystemMessage) and (
            i == 0 or not isinstance(messages[i - 1], HumanMessage | SystemMessage)
        )

    return [i for i in range(len(messages)) if opens(i)]


def model_window(messages: Sequence[AnyMessage], turns: int = MODEL_WINDOW_TURNS) -> list[AnyMessage]:
    """The messages from the start of the `turns`-th last turn on (never starting mid tool-call exchange)."""
    starts = _turn_starts(messages)
    if len(starts) <= turns:
        return list(messages)
    return list(messages[starts[-turns] :])


def compaction(messages: Sequence[AnyMessage], turns: int = STORED_WINDOW_TURNS) -> list[RemoveMessage]:
    """Removals that drop whole turns older than the last `turns` turns from the state."""
    starts = _turn_starts(messages)
    if len(starts) <= turns:
        return []
    cut = starts[-turns]
    return [RemoveMessage(id=m.id) for m in messages[:cut] if m.id is not None]
