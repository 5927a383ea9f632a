"""The drainer's bookkeeping: when each spooled webhook is due again, and what it tells the operator.

A webhook the database refuses while it answers otherwise (a bug, a constraint) is retried with a growing delay and
never dropped; the entries behind it go on. An outage is logged once when it starts and once when the spool empties,
not on every try.
"""

from __future__ import annotations

import logging
import time

logger = logging.getLogger(__name__)

# A refused entry is retried after retry_seconds x 2^attempts, at most this long.
MAX_ENTRY_DELAY_SECONDS = 600.0
# From this many refusals on, each one is logged as an error: someone has to look at it.
ALERT_AFTER_ATTEMPTS = 3


class DrainSchedule:
    """Per-entry retry delays and the outage state of one drainer."""

    def __init__(self, retry_seconds: float) -> None:
        self.retry_seconds = retry_seconds
        self._failures: dict[str, tuple[int, float]] = {}
        self._in_outage = False

    def due(self, name: str) -> bool:
        """Whether the entry may be tried now (not waiting out the delay after a refusal)."""
        failure = self._failures.get(name)
        return failure is None or time.monotonic() >= failure[1]

    def failed(self, name: str, kind: str, error: BaseException) -> None:
        """The database answers but did not take this entry: try it again later."""
        attempts = self._failures.get(name, (0, 0.0))[0] + 1
        delay = min(self.retry_seconds * 2**attempts, MAX_ENTRY_DELAY_SECONDS)
        self._failures[name] = (attempts, time.monotonic() + delay)
        log = logger.error if attempts >= ALERT_AFTER_ATTEMPTS else logger.warning
        log(
            "spooled webhook not taken by the database; kept and retried later",
            extra={"file": name, "kind": kind, "error": type(error).__name__, "attempts": attempts, "retry_in": delay},
        )

    def drained(self, name: str) -> None:
        """The entry is in the database."""
        self._failures.pop(name, None)

    def outage(self, waiting: int) -> None:
        """The database did not answer: the pass stops, the entries wait."""
        if not self._in_outage:
            self._in_outage = True
            logger.warning("database unavailable; spooled webhooks wait for it", extra={"waiting": waiting})

    def pass_done(self, drained: int, waiting: int) -> None:
        """A pass reached the end of the spool."""
        if drained or self._in_outage:
            logger.info("spooled webhooks moved into the database", extra={"drained": drained, "waiting": waiting})
        self._in_outage = False
