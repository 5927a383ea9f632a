"""The background worker: runs conversation turns, delivers the outbox, sends reminders, finishes stray webhooks.

Several workers (processes) may run against one PostgreSQL database: conversations are leased, outbox rows and
reminders are claimed with conditional updates, so nothing is processed twice or concurrently for one customer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from datetime import timedelta

from agent.checkpointer import PrunesCheckpoints
from booking.calendar import RecoversInterruptedWrites
from core.clock import Clock
from server.calendar_sync.events import CalendlyEventProcessor
from server.options import ServerOptions
from server.pipeline.delivery import Delivery
from server.pipeline.feedback import FeedbackPublisher
from server.pipeline.holding import HoldingNotifier
from server.pipeline.reminders import ReminderDispatcher, ReminderScheduler
from server.pipeline.turns import ConversationRunner
from server.pipeline.wakeup import Wakeup
from server.pipeline.work_listener import WorkListener
from store.conversations import ConversationRepository

logger = logging.getLogger(__name__)

CALENDLY_GIVE_UP_AFTER = timedelta(days=1)


def worker_id() -> str:
    """A name unique to this worker instance (host, process, random suffix), used as lease and claim owner."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Worker:
    """Three loops: conversations (leased turns), delivery (outbox), maintenance (reminders, sweeps)."""

    def __init__(
        self,
        *,
        runner: ConversationRunner | None,
        conversations: ConversationRepository,
        delivery: Delivery,
        reminder_scheduler: ReminderScheduler,
        reminder_dispatcher: ReminderDispatcher,
        calendly: CalendlyEventProcessor,
        clock: Clock,
        options: ServerOptions,
        turn_wakeup: Wakeup,
        delivery_wakeup: Wakeup,
        holding: HoldingNotifier | None = None,
        interrupted_writes: RecoversInterruptedWrites | None = None,
        feedback: FeedbackPublisher | None = None,
        listener: WorkListener | None = None,
        checkpoints: PrunesCheckpoints | None = None,
    ) -> None:
        """`holding` tells customers kept waiting by failing turns that an answer will follow (None: never);
        `feedback` is retried by the maintenance pass (what LangSmith did not take at once); `listener` sets the
        wakeups when other processes store work (it runs with the worker; polls slow down while it is active)."""
        self._listener = listener
        self._checkpoints = checkpoints  # old conversation checkpoints, pruned by the maintenance pass
        self._holding = holding
        self._feedback = feedback
        # The calendar whose writes a crash can cut off (Calendly); the maintenance pass settles them.
        self._interrupted_writes = interrupted_writes
        self._runner = runner
        self._conversations = conversations
        self._delivery = delivery
        self._scheduler = reminder_scheduler
        self._dispatcher = reminder_dispatcher
        self._calendly = calendly
        self._clock = clock
        self._options = options
        self._turn_wakeup = turn_wakeup
        self._delivery_wakeup = delivery_wakeup
        self._active: dict[str, asyncio.Task[None]] = {}
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def start(self) -> None:
        """Run the worker in the background of the current event loop (the in-process mode of `serve`)."""
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="asistente-worker")

    async def stop(self, *, grace_seconds: float | None = None) -> None:
        """Stop: loops end at their next pause and running turns after their current turn; whatever is still
        running after the grace period is cancelled (its messages stay unanswered and are resumed on restart)."""
        if self._task is None:
            return
        self.request_stop()
        grace = self._options.shutdown_grace_seconds if grace_seconds is None else grace_seconds
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout=grace)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None

    def request_stop(self) -> None:
        """Ask every loop to finish (without cancelling anything in flight)."""
        self._stopping.set()
        self._turn_wakeup.set()
        self._delivery_wakeup.set()

    async def run(self) -> None:
        """Run until stopped or cancelled. Work left by a previous run is picked up straight away."""
        if self._runner is None:
            logger.warning("no agent configured: customer messages are stored but not answered by this worker")
        listening = asyncio.create_task(self._listener.run(), name="work-listener") if self._listener else None
        loops = [self._delivery_loop(), self._maintenance_loop()]
        if self._runner is not None:
            loops.append(self._conversation_loop(self._runner))
            if self._holding is not None:
                loops.append(self._holding_loop(self._holding))
        try:
            await asyncio.gather(*loops)
            await asyncio.gather(*self._active.values(), return_exceptions=True)
        finally:
            if listening is not None:
                listening.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listening
            # Cancelled (grace over, or the process is going down): stop the turns still running.
            for task in list(self._active.values()):
                task.cancel()
            await asyncio.gather(*self._active.values(), return_exceptions=True)
            self._active.clear()

    async def _conversation_loop(self, runner: ConversationRunner) -> None:
        while not self._stopping.is_set():
            try:
                free = self._options.max_concurrent_turns - len(self._active)
                if free > 0:
                    candidates = await self._conversations.with_work(now=self._clock.now(), limit=free * 2)
                    for wa_id in candidates:
                        if wa_id not in self._active and len(self._active) < self._options.max_concurrent_turns:
                            self._active[wa_id] = asyncio.create_task(self._run_conversation(runner, wa_id))
            except Exception:
                logger.exception("conversation scan failed")
            await self._turn_wakeup.wait(self._poll_seconds())

    @property
    def listening(self) -> bool:
        """Whether other processes' work reaches this worker by notification now (else only by polling)."""
        return self._listener is not None and self._listener.active

    def _poll_seconds(self) -> float:
        # Notified, the loops poll only for what no notification announces: work that becomes due with time.
        return self._options.notify_poll_seconds if self.listening else self._options.poll_seconds

    async def _run_conversation(self, runner: ConversationRunner, wa_id: str) -> None:
        try:
            await runner.run(wa_id, stopping=self._stopping)
        except Exception:
            logger.exception("conversation run failed", extra={"wa_id": wa_id})
        finally:
            self._active.pop(wa_id, None)
            # Messages stored while this run was finishing wait for a scan; make it happen now.
            self._turn_wakeup.set()

    async def _delivery_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                while await self._delivery.deliver_due():
                    pass
            except Exception:
                logger.exception("delivery pass failed")
            await self._delivery_wakeup.wait(self._poll_seconds())

    async def _holding_loop(self, holding: HoldingNotifier) -> None:
        # Its own short period: the maintenance pass runs every half minute, too coarse for "after about a minute".
        while not self._stopping.is_set():
            try:
                if await holding.notify_waiting():
                    self._delivery_wakeup.set()
            except Exception:
                logger.exception("holding-message pass failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._options.holding_check_seconds)

    async def _maintenance_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.maintenance()
            except Exception:
                logger.exception("maintenance pass failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._options.reminder_interval_seconds)

    async def maintenance(self) -> None:
        """One pass of the periodic work: reminders (reconcile, send due), stuck outbox rows, stray webhooks, old
        conversation checkpoints."""
        await self._scheduler.reconcile()
        if await self._dispatcher.dispatch_due():
            self._delivery_wakeup.set()
        if await self._delivery.recover():
            self._delivery_wakeup.set()
        if self._interrupted_writes is not None:
            # Before the webhook retries: a settled booking is then recorded as the agent's own, not mirrored anew.
            for appointment in await self._interrupted_writes.sweep(
                older_than=timedelta(seconds=self._options.calendar_write_settle_seconds),
                abandon_after=timedelta(seconds=self._options.calendar_write_abandon_seconds),
            ):
                await self._scheduler.appointment_changed(appointment)
        await self._calendly.retry_unfinished(
            older_than=timedelta(seconds=self._options.calendar_retry_after_seconds),
            give_up_after=CALENDLY_GIVE_UP_AFTER,
        )
        if self._feedback is not None:
            await self._feedback.publish_pending()
        if self._checkpoints is not None:
            await self._checkpoints.prune_checkpoints()
