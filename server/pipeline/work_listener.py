"""Wakes a worker when another process stores work for it (PostgreSQL `LISTEN`), so it need not poll quickly.

Store code calls `Connection.notify(Work...)` in the transaction that writes an inbound message, an outbox row or a
system event; PostgreSQL delivers the notification to every listening session when that transaction commits. This
listener holds one such session per worker and sets the matching `Wakeup`. The session is trusted (`active`) only
once a probe of its own has come back through it: behind a transaction pooler notifications may never arrive, and
a worker that relied on them would then answer late. While it is not active (no push channel, not yet connected,
reconnecting after the database went away) the worker polls at its normal pace.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator

from server.pipeline.wakeup import Wakeup
from store.database import Database, Work

logger = logging.getLogger(__name__)

PROBE_PREFIX = "probe:"
# The probe is sent through the pool and comes back through the listening session, a round trip of milliseconds.
PROBE_TIMEOUT_SECONDS = 5.0
# After a failure the next try waits this long, doubling up to the cap (while it waits, the worker polls quickly).
FIRST_RETRY_SECONDS = 0.5
MAX_RETRY_SECONDS = 30.0


class NotificationsNotDelivered(Exception):
    """The listening session is up but its own probe did not come back (a transaction pooler drops them)."""


class WorkListener:
    """Sets `turn` or `delivery` when a notification of that kind arrives; both when the session starts or ends."""

    def __init__(
        self,
        db: Database,
        *,
        turn: Wakeup,
        delivery: Wakeup,
        first_retry_seconds: float = FIRST_RETRY_SECONDS,
        max_retry_seconds: float = MAX_RETRY_SECONDS,
        probe_timeout_seconds: float = PROBE_TIMEOUT_SECONDS,
    ) -> None:
        self._db = db
        self._probe_timeout = probe_timeout_seconds
        self._wakeups = {Work.TURN.value: turn, Work.DELIVERY.value: delivery}
        self._first_retry = first_retry_seconds
        self._max_retry = max_retry_seconds
        self._active = False
        self._warned = False
        self.sessions = 0  # how many times a session became active (a reconnection adds one)

    @property
    def active(self) -> bool:
        """Whether notifications are known to reach this worker now (its polls may then be slow)."""
        return self._active

    async def run(self) -> None:
        """Listen until cancelled, reconnecting with a growing delay; returns at once if the engine cannot push."""
        if self._db.listen() is None:
            return
        delay = self._first_retry
        try:
            while True:
                try:
                    await self._session()
                except Exception as exc:  # whatever ended the session, the worker polls meanwhile
                    if not self._warned:  # once per outage, not at every try
                        self._warned = True
                        logger.warning(
                            "work notifications unavailable; the worker polls until its listener is back",
                            extra={"error": type(exc).__name__, "detail": str(exc)[:200]},
                        )
                if self._active:
                    self._set_inactive()
                    delay = self._first_retry  # it had worked: the first try after a loss is soon
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_retry)
        finally:
            self._active = False

    async def _session(self) -> None:
        session = self._db.listen()
        assert session is not None
        async with session as payloads:
            probe = f"{PROBE_PREFIX}{uuid.uuid4().hex}"
            async with self._db.transaction() as conn:
                await conn.notify(probe)
            try:
                async with asyncio.timeout(self._probe_timeout):
                    await self._until(payloads, probe)
            except TimeoutError:
                raise NotificationsNotDelivered(
                    f"a notification sent through the database did not come back within {self._probe_timeout:g} s "
                    "(DATABASE_URL through a transaction pooler such as Supabase's :6543 cannot carry LISTEN)"
                ) from None
            self._active, self._warned = True, False
            self.sessions += 1
            logger.info("listening for work notifications", extra={"sessions": self.sessions})
            # Whatever was stored while nobody listened is looked for now.
            self._wake_all()
            await self._until(payloads, None)
        raise ConnectionError("the notification session ended")

    async def _until(self, payloads: AsyncIterator[str], probe: str | None) -> None:
        # Wakes for each notification until `probe` arrives (never, with None: until the connection is lost).
        async for payload in payloads:
            if payload == probe:
                return
            if payload.startswith(PROBE_PREFIX):
                continue  # another worker's probe
            wakeup = self._wakeups.get(payload)
            if wakeup is not None:
                wakeup.set()
            else:
                self._wake_all()  # a kind this version does not know: looking costs one scan

    def _set_inactive(self) -> None:
        self._active = False
        # Loops waiting out a slow poll go back to the normal pace now.
        self._wake_all()

    def _wake_all(self) -> None:
        for wakeup in self._wakeups.values():
            wakeup.set()
