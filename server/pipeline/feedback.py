"""Feedback on turns: staff ratings and automatic signals, stored first, then sent to LangSmith by a `FeedbackSink`.

Every piece of feedback is a row before it is anything else (`store.feedback`), so it survives LangSmith being down
and the process dying mid-send. It is sent at once when it can be; what could not be sent is retried by the worker's
maintenance pass (`publish_pending`), oldest first, waiting longer after each failure (an outage of hours is
outlasted), then given up (logged as an error, the row kept). The id LangSmith is given is the row's own
`feedback_id`, so a send repeated after a lost answer does not count twice.

Without a sink (tracing off) feedback is still stored, answered as not sent, and sent by a later maintenance pass of
a process that has one (tracing turned on), within the same attempt limit: runs traced while tracing was on keep
their feedback across a restart that turns it off and on again.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Protocol

from core.clock import Clock
from store.feedback import FeedbackEntry, FeedbackRepository
from store.turn_runs import TurnRun, TurnRunRepository

logger = logging.getLogger(__name__)

STAFF_RATING = "staff_rating"
# The signals the system raises by itself; each names something that went wrong in the run it is attached to.
SystemSignal = Literal["handoff", "rejected_confirmation", "budget_exhausted", "turn_failed", "customer_repeated"]
KEY_PATTERN = r"^[a-z_]{1,40}$"
_KEY = re.compile(KEY_PATTERN)
# Namespace of the ids of system signals: one id per (run, key), so a signal raised twice is stored and sent once.
_SIGNAL_NAMESPACE = uuid.UUID("5b0e4a52-7f3c-4d0f-9a51-2f1c6f9e0d13")


class FeedbackSink(Protocol):
    """Where feedback goes once stored (LangSmith). Synchronous (it runs in a thread) and may raise: the row is then
    kept for a later attempt. Must be idempotent on `entry.feedback_id`."""

    def send(self, entry: FeedbackEntry) -> None:
        """Deliver `entry` as feedback on run `entry.run_id`, under id `entry.feedback_id`."""
        ...


class UnknownTurn(LookupError):
    """No recorded (traced) run matches what the feedback names."""


@dataclass(frozen=True)
class PublishPolicy:
    """How feedback is sent: batch size of a maintenance pass, attempts before giving up, how long one send may
    take, and the wait after the n-th failed attempt (`retry_after` doubled n - 1 times, at most `max_wait`; with
    the defaults, about six hours from the first attempt to the last)."""

    batch: int = 50
    max_attempts: int = 12
    send_timeout_seconds: float = 10.0
    retry_after: timedelta = timedelta(minutes=1)
    max_wait: timedelta = timedelta(hours=1)

    def wait_after(self, attempts: int) -> timedelta:
        """The wait before the next attempt once `attempts` have failed."""
        doubled: timedelta = self.retry_after * 2 ** max(attempts - 1, 0)
        return min(doubled, self.max_wait)


class FeedbackPublisher:
    """Stores feedback on a turn's run and sends it to the sink, now or later."""

    def __init__(
        self,
        feedback: FeedbackRepository,
        runs: TurnRunRepository,
        sink: FeedbackSink | None,
        clock: Clock,
        *,
        policy: PublishPolicy | None = None,
    ) -> None:
        self._feedback = feedback
        self._runs = runs
        self._sink = sink
        self._clock = clock
        self._policy = policy or PublishPolicy()

    @property
    def tracing(self) -> bool:
        """Whether feedback can be sent from this process (a sink is configured)."""
        return self._sink is not None

    async def resolve(
        self, *, run_id: str | None = None, message_sid: str | None = None, outbox_id: int | None = None
    ) -> TurnRun:
        """The run named by exactly one of: its id, a customer message the turn folded (its MessageSid), or an outbox
        row the turn queued. Raises `UnknownTurn` when no recorded run matches."""
        if sum(target is not None for target in (run_id, message_sid, outbox_id)) != 1:
            raise ValueError("name exactly one of run_id, message_sid, outbox_id")
        if run_id is not None:
            run = await self._runs.get(run_id)
        elif message_sid is not None:
            run = await self._runs.for_message_sid(message_sid)
        else:
            assert outbox_id is not None
            run = await self._runs.for_outbox(outbox_id)
        if run is None:
            raise UnknownTurn("no traced turn matches")
        return run

    async def rate(
        self,
        *,
        run_id: str | None = None,
        message_sid: str | None = None,
        outbox_id: int | None = None,
        score: float,
        comment: str | None,
        author: str,
        key: str = STAFF_RATING,
    ) -> FeedbackEntry:
        """Staff's rating of a turn (named as in `resolve`): stored, then sent at once if possible. Returns the row as
        it stands after that attempt (`sent` tells whether LangSmith has it). Raises `UnknownTurn`."""
        _check_key(key)
        run = await self.resolve(run_id=run_id, message_sid=message_sid, outbox_id=outbox_id)
        entry = await self._feedback.add(
            run_id=run.run_id,
            key=key,
            score=score,
            comment=comment,
            source="staff",
            author=author,
            now=self._clock.now(),
            not_before=self._held_until() if self._sink else None,  # sent below: no maintenance pass must take it first
        )
        logger.info("turn rated", extra={"run_id": run.run_id, "feedback_key": key, "feedback_row": entry.id})
        return await self._send(entry)

    async def signal(
        self,
        run_id: str,
        key: SystemSignal | str,
        score: float | None,
        comment: str | None = None,
        *,
        send_now: bool = True,
    ) -> FeedbackEntry:
        """A signal the system raised about run `run_id` (a recorded run), stored once per (run, key) however often it
        is raised, and sent at once unless `send_now` is off (then by the next maintenance pass, keeping a turn
        from waiting on LangSmith). The comment must hold no personal data. Raises `UnknownTurn`."""
        _check_key(key)
        run = await self.resolve(run_id=run_id)
        entry = await self._feedback.add(
            run_id=run.run_id,
            key=key,
            score=score,
            comment=comment,
            source="system",
            author=None,
            now=self._clock.now(),
            feedback_id=str(uuid.uuid5(_SIGNAL_NAMESPACE, f"{run.run_id}:{key}")),
            not_before=self._held_until() if send_now and self._sink else None,
        )
        return await self._send(entry) if send_now and not entry.sent else entry

    async def feedback_for(self, run_id: str) -> list[FeedbackEntry]:
        """Every piece of feedback stored on `run_id`, oldest first."""
        return await self._feedback.for_run(run_id)

    async def publish_pending(self) -> int:
        """Send what is still unsent and due (oldest first, one batch), skipping rows given up on, waiting out their
        retry wait or in flight elsewhere; return how many were sent. Nothing without a sink."""
        if self._sink is None:
            return 0
        pending = await self._feedback.unsent(
            self._policy.batch, max_attempts=self._policy.max_attempts, due_at=self._clock.now()
        )
        sent = 0
        for entry in pending:  # one at a time: a maintenance pass has no hurry, LangSmith no need of a burst
            sent += await self._attempt(entry)
        return sent

    async def _send(self, entry: FeedbackEntry) -> FeedbackEntry:
        """One send attempt of a stored row; the row as it then stands."""
        await self._attempt(entry)
        return await self._feedback.get(entry.id) or entry

    def _held_until(self) -> datetime:
        # Held from other senders for longer than a send may take: the hold lapses only if this process died.
        return self._clock.now() + max(
            self._policy.retry_after, timedelta(seconds=self._policy.send_timeout_seconds * 2)
        )

    async def _attempt(self, entry: FeedbackEntry) -> bool:
        """Send a stored row if this process has a sink and wins the row; whether this call delivered it."""
        sink = self._sink
        hold_until = self._held_until()
        if sink is None or entry.attempts >= self._policy.max_attempts:
            return False
        if not await self._feedback.claim(entry, hold_until=hold_until):
            return False
        context = {"run_id": entry.run_id, "feedback_key": entry.key, "feedback_row": entry.id}
        try:
            # A thread, as the sink blocks on HTTP; bounded, so a hung LangSmith never holds a request or a turn (a
            # send finishing after the timeout is harmless: the retry names the same feedback id).
            await asyncio.wait_for(asyncio.to_thread(sink.send, entry), self._policy.send_timeout_seconds)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            attempts = entry.attempts + 1
            await self._feedback.mark_failed(
                entry.id, error, retry_at=self._clock.now() + self._policy.wait_after(attempts)
            )
            if attempts >= self._policy.max_attempts:
                logger.error("feedback not sent, given up", extra={**context, "attempts": attempts, "error": error})
            else:
                logger.warning("feedback not sent, will retry", extra={**context, "attempts": attempts, "error": error})
            return False
        await self._feedback.mark_sent(entry.id, self._clock.now())
        return True


def _check_key(key: str) -> None:
    if not _KEY.match(key):
        raise ValueError(f"feedback key must match {KEY_PATTERN}")
