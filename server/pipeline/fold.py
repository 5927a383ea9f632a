"""When a customer has finished writing: a burst ("hola" / "quiero cita" / "mañana") is answered as one turn.

A turn starts once the customer has been quiet for a short window since their last message, or once the first
message has waited the maximum, so that someone typing on and on is still answered. Nothing is waited for when the
customer has gone quiet already (messages stored while the previous turn ran, or drained after a restart).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from server.options import ServerOptions
from store.models import InboundMessage

# Below this a wait is not worth a re-check: the event loop may wake a sleeper a hair early.
_NEGLIGIBLE_SECONDS = 0.001


@dataclass(frozen=True)
class FoldWindow:
    """How long a burst may gather: `quiet_seconds` of silence, at most `max_wait_seconds` from its first message.

    `sleep` and `monotonic` are injected so tests can record the waits without waiting.
    """

    quiet_seconds: float
    max_wait_seconds: float
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep, compare=False)
    monotonic: Callable[[], float] = field(default=time.monotonic, compare=False)

    @classmethod
    def from_options(cls, options: ServerOptions) -> FoldWindow:
        """The window `ServerOptions` configures."""
        return cls(quiet_seconds=options.fold_quiet_seconds, max_wait_seconds=options.fold_max_wait_seconds)

    def burst(self) -> Burst:
        """A fresh tracker for one conversation's run (it remembers when this process first saw each message)."""
        return Burst(self)


class Burst:
    """The messages of one conversation gathering towards a turn, and how long to wait before it starts."""

    def __init__(self, window: FoldWindow) -> None:
        self._window = window
        self._seen: dict[int, float] = {}

    def wait_seconds(self, messages: Sequence[InboundMessage], now: datetime) -> float:
        """Seconds to wait before `messages` (pending, read at `now` on the server clock) make a turn; 0: start."""
        if not messages:
            return 0.0
        moment = self._window.monotonic()
        # Only the messages still open are remembered, so this stays as small as the burst.
        self._seen = {m.id: self._seen.get(m.id, moment) for m in messages}

        def waited(message: InboundMessage) -> float:
            # The server clock sees how long a message stood in the table before this run read it (stored during
            # the previous turn, or before a restart); the monotonic clock counts the wait in this process, and is
            # what bounds it when the server clock stands still (a pinned clock in tests).
            stored = (now - message.received_at).total_seconds()
            return max(stored, moment - self._seen[message.id])

        quiet_left = self._window.quiet_seconds - min(waited(m) for m in messages)
        # Messages already tried (waiting out a failed turn's backoff) are old: the burst the customer is writing
        # now counts from its own first message, not from theirs.
        untried = [m for m in messages if m.error is None] or list(messages)
        patience_left = self._window.max_wait_seconds - max(waited(m) for m in untried)
        left = min(quiet_left, patience_left)
        return left if left > _NEGLIGIBLE_SECONDS else 0.0
