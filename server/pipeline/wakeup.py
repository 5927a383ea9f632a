"""A nudge to a worker loop, so work is picked up at once instead of at the next poll: set by the web app for its
in-process worker, and by `work_listener.WorkListener` when another process stored work (PostgreSQL)."""

from __future__ import annotations

import asyncio
import contextlib


class Wakeup:
    """A level-triggered signal: `set()` any number of times, `wait()` returns once and clears it."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def set(self) -> None:
        """Ask the waiting loop to run now."""
        self._event.set()

    async def wait(self, seconds: float) -> None:
        """Wait until set or until `seconds` pass (the poll that covers other processes' work)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), seconds)
        self._event.clear()
