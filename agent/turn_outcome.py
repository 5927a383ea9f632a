"""What a turn did, read from the messages it added to the thread: the outcome an admin filters traces by, the
appointments it touched, and the signals that become feedback (a rejected confirmation, a customer repeating)."""

from __future__ import annotations

import difflib
import json
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from langchain_core.messages import AnyMessage, BaseMessage, HumanMessage, ToolMessage

Outcome = Literal[
    "booked",
    "rescheduled",
    "cancelled",
    "handed_off",
    "asked_to_confirm",
    "cut_short",
    "answered",
    "notified",
    "no_reply",
    "failed",
]

HANDED_OFF: Outcome = "handed_off"

# When one turn did several things, the trace is labelled with the weightiest (a move is a booking and a release).
_WRITE_OUTCOMES: tuple[Outcome, ...] = ("rescheduled", "booked", "cancelled", "handed_off")

# A repeat must be a real sentence: "sí", "ok" or "hola" twice says nothing about the answer before it.
_MIN_REPEAT_CHARS = 12
_REPEAT_SIMILARITY = 0.9
_RECENT_MESSAGES = 3


@dataclass(frozen=True)
class TurnOutcome:
    """The outcome of one turn, as traces and feedback report it."""

    outcome: Outcome
    appointment_ids: tuple[str, ...] = ()
    rejected_confirmation: bool = False


def _result(message: ToolMessage) -> dict[str, object]:
    try:
        data = json.loads(str(message.content))
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def outcome_of(
    added: Sequence[AnyMessage], *, system: bool, asked_to_confirm: bool, cut_short: bool, replied: bool
) -> TurnOutcome:
    """Label a finished turn from the messages it `added` (tool results included)."""
    statuses: set[str] = set()
    appointments: list[str] = []
    rejected = False
    for message in added:
        if not isinstance(message, ToolMessage):
            continue
        result = _result(message)
        if result.get("ok") is True:
            statuses.add(str(result.get("status")))  # "queued" is a send_whatsapp that went out
            appointment = result.get("appointment_id")
            if isinstance(appointment, str) and appointment not in appointments:
                appointments.append(appointment)
        elif result.get("error") == "not_confirmed" and result.get("reason") == "not_confirmed":
            rejected = True  # the customer answered the question with something other than a yes
    outcome: Outcome
    written = next((o for o in _WRITE_OUTCOMES if o in statuses), None)
    if written is not None:
        outcome = written
    elif asked_to_confirm:
        outcome = "asked_to_confirm"
    elif cut_short:
        outcome = "cut_short"
    elif system:
        outcome = "notified" if "queued" in statuses else "no_reply"
    else:
        outcome = "answered" if replied else "no_reply"
    return TurnOutcome(outcome, tuple(appointments), rejected)


def _normalise(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    letters = "".join(c for c in decomposed if not unicodedata.combining(c))
    return re.sub(r"[\W_]+", " ", letters).strip()


def repeats_earlier(texts: Sequence[str], earlier: Sequence[BaseMessage]) -> bool:
    """Whether the customer now says (nearly) what they said in one of their last few messages: a sign the answer
    in between did not help."""
    said = [_normalise(m.text) for m in earlier if isinstance(m, HumanMessage)][-_RECENT_MESSAGES:]
    for text in (_normalise(t) for t in texts):
        if len(text) < _MIN_REPEAT_CHARS:
            continue
        if any(difflib.SequenceMatcher(None, text, before).ratio() >= _REPEAT_SIMILARITY for before in said):
            return True
    return False
