"""The limits every turn runs under: how much the model may do, and how long a confirmation question stays valid."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from core.settings import Settings


@dataclass(frozen=True)
class TurnPolicy:
    """Bounds that hold whatever the model does (a model looping on a tool, or texting the customer in a loop)."""

    # Model calls in one turn; a normal booking turn takes two or three.
    max_model_calls: int = 8
    # `send_whatsapp` messages in one turn (system turns speak only through it).
    max_messages_sent: int = 2
    # A "sí" later than this (or after the slot itself has started) no longer confirms the question.
    confirmation_ttl: timedelta = timedelta(hours=3)

    @classmethod
    def from_settings(cls, settings: Settings) -> TurnPolicy:
        """The limits configured in settings."""
        return cls(
            max_model_calls=settings.turn_max_model_calls,
            max_messages_sent=settings.turn_max_messages,
            confirmation_ttl=timedelta(hours=settings.confirmation_expiry_hours),
        )

    @property
    def recursion_limit(self) -> int:
        """LangGraph's step limit, a backstop well above what the budget allows (at most four steps a model call)."""
        return self.max_model_calls * 4 + 10
