"""Bounded history: what the model sees each turn, and how much of the thread the checkpoint keeps."""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.messages import AnyMessage, HumanMessage, RemoveMessage, SystemMessage

# The model sees the last few customer exchanges in full; older context comes from the client profile and
# upcoming appointments shown every turn, so input size stays flat however long the conversation runs.
MODEL_WINDOW_TURNS = 4
# The checkpoint keeps more, for transcripts and debugging, but still bounded.
STORED_WINDOW_TURNS = 20


def _turn_starts(messages: Sequence[AnyMessage]) -> list[int]:
    # A turn starts with the customer's message or with an injected event (a system message in the thread).
    return [i for i, m in enumerate(messages) if isinstance(m, HumanMessage | SystemMessage)]


def model_window(messages: Sequence[AnyMessage], turns: int = MODEL_WINDOW_TURNS) -> list[AnyMessage]:
    """The messages from the `turns`-th last customer message on (never starting mid tool-call exchange)."""
    starts = _turn_starts(messages)
    if len(starts) <= turns:
        return list(messages)
    return list(messages[starts[-turns] :])


def compaction(messages: Sequence[AnyMessage], turns: int = STORED_WINDOW_TURNS) -> list[RemoveMessage]:
    """Removals that drop whole turns older than the last `turns` customer messages from the state."""
    starts = _turn_starts(messages)
    if len(starts) <= turns:
        return []
    cut = starts[-turns]
    return [RemoveMessage(id=m.id) for m in messages[:cut] if m.id is not None]
