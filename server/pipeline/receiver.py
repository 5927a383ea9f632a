"""Taking Twilio's webhooks in within a bound, whatever the database does.

A webhook is stored through the database when it answers within `timeout_seconds`; otherwise (down, hanging, failing)
it goes to the local spool and Twilio still gets its normal answer. Only when neither could keep it does the webhook
answer 503 (Twilio's retry and fallback URL then apply): 200 always means durable. The drainer, running in every
`serve` process, moves spooled webhooks into the database once it answers again, oldest first, deleting each entry
only after its commit. Intake is idempotent on MessageSid, so a message both spooled and stored (a timed-out write
that committed late, a Twilio retry) is stored once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import ValidationError

from core.clock import Clock
from integrations.twilio.models import TwilioInbound, TwilioStatusCallback, without_nul
from server.ops.metrics import ServerMetrics
from server.options import ServerOptions
from server.pipeline.intake import InboundIntake
from server.pipeline.spool import KINDS, SpoolEntry, SpoolKind, SpoolUnavailable, WebhookSpool
from server.pipeline.spool_drain import DrainSchedule
from server.pipeline.wakeup import Wakeup
from store.database import Database
from store.outbox import OutboxRepository

logger = logging.getLogger(__name__)

T = TypeVar("T")

# A spool write is a few milliseconds; a disk that takes longer than this is treated as unusable (answer 503).
SPOOL_WRITE_TIMEOUT_SECONDS = 5.0
# With the spool empty, look again this often anyway (another process may share the directory).
IDLE_POLL_SECONDS = 60.0
STOP_GRACE_SECONDS = 2.0

Outcome = Literal["stored", "spooled"]


class WebhookReceiver:
    """Stores Twilio's webhooks through the database or the spool, and drains the spool into the database."""

    def __init__(
        self,
        intake: InboundIntake,
        outbox_messages: OutboxRepository,
        db: Database,
        spool_dir: Path,
        *,
        clock: Clock,
        metrics: ServerMetrics,
        options: ServerOptions,
    ) -> None:
        """Stores through `intake` / `outbox_messages` within `options.intake_timeout_seconds`, else in `spool_dir`;
        `db` is pinged to tell an outage from a webhook the database refuses."""
        self._intake = intake
        self._outbox = outbox_messages
        self._db = db
        self.spool = WebhookSpool(spool_dir)
        self._clock = clock
        self._metrics = metrics
        self.timeout_seconds = options.intake_timeout_seconds
        # Draining is background work: a slow database gets more time there than a webhook waiting on it.
        self._drain_timeout = 10 * self.timeout_seconds
        self._schedule = DrainSchedule(options.spool_retry_seconds)
        self._wakeup = Wakeup()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._abandoned: set[asyncio.Task[Any]] = set()
        metrics.watch_spool(KINDS, self.spool.depth)

    async def message(self, message: TwilioInbound, form: Mapping[str, str]) -> Outcome:
        """Take in an inbound message; raises `SpoolUnavailable` when it could be kept nowhere (answer 503)."""
        received_at = self._clock.now()
        # While older messages wait in the spool, newer ones queue behind them: stored directly, they would get
        # lower ids than the ones they followed, and the worker answers a conversation's messages in id order.
        if not self.spool.has("inbound"):
            work = self._intake.accept(message, without_nul(form), received_at=received_at)
            if await self._stored_in_time(work, "inbound"):
                return "stored"
        await self._spool_it("inbound", message.message_sid, form, received_at)
        return "spooled"

    async def status(self, callback: TwilioStatusCallback, form: Mapping[str, str]) -> Outcome | None:
        """Record a delivery status callback (None: a status we do not track); raises `SpoolUnavailable` like
        `message`. Order matters less here (a status never moves back down the outbox's ladder), but with callbacks
        already waiting the database is most likely still down: no point making Twilio wait for it again."""
        if callback.outbox_status is None:
            return None
        received_at = self._clock.now()
        if not self.spool.has("status"):
            work = self._apply_status(callback, received_at)
            if await self._stored_in_time(work, "status"):
                return "stored"
        key = f"{callback.message_sid}-{callback.message_status}"
        await self._spool_it("status", key, form, received_at)
        return "spooled"

    def start(self) -> None:
        """Start draining in the background of the current loop: at once (a spool left by a crash or an outage
        before a restart), then whenever a webhook is spooled, and every few seconds while entries remain."""
        self.spool.sweep()
        problem = self.spool.problem()
        if problem is not None:
            logger.error(
                "webhook spool unusable: while the database is down, webhooks will be refused with 503",
                extra={"spool_dir": str(self.spool.directory), "error": problem},
            )
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.create_task(self._drain_loop(), name="asistente-spool-drain")

    async def stop(self) -> None:
        """Stop draining (what is left stays in the spool for the next start) and give up abandoned writes."""
        self._stopping.set()
        self._wakeup.set()
        tasks = list(self._abandoned) + ([self._task] if self._task is not None else [])
        for task in self._abandoned:
            task.cancel()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=STOP_GRACE_SECONDS)
            for task in pending:
                task.cancel()
            if self._task is not None and self._task in pending:
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        self._task = None

    async def drain(self) -> int:
        """Move spooled webhooks into the database, oldest first; returns how many are still waiting."""
        entries = await asyncio.to_thread(self.spool.entries)
        # Asked first, with the short bound: while the database is down each pass is one quick question, and every
        # question is a fresh request for a connection, which makes the pool try again at once.
        if entries and not await self._database_answers():
            self._schedule.outage(len(entries))
            return len(entries)
        drained = waiting = 0
        for index, entry in enumerate(entries):
            if self._stopping.is_set():
                return len(entries) - index + waiting
            if not self._schedule.due(entry.name):
                waiting += 1
                continue
            try:
                work = self._replay(entry)
            except ValidationError:
                # Validated before it was spooled, so only a file edited by hand (or an older format) gets here.
                await asyncio.to_thread(self.spool.reject, entry.path, "no longer a valid Twilio webhook")
                self._metrics.webhook_spool.labels(entry.kind, "rejected").inc()
                continue
            try:
                await self._bounded(work, self._drain_timeout)
            except Exception as exc:
                if not await self._database_answers():
                    self._schedule.outage(len(entries) - index + waiting)
                    return len(entries) - index + waiting
                # The database answers but refuses this entry: retry it later, with a growing delay, and let the
                # entries behind it through (they must not wait for ever behind one that may never go in).
                self._schedule.failed(entry.name, entry.kind, exc)
                waiting += 1
                continue
            await asyncio.to_thread(self.spool.remove, entry)
            self._schedule.drained(entry.name)
            self._metrics.webhook_spool.labels(entry.kind, "drained").inc()
            drained += 1
        if entries:
            self._schedule.pass_done(drained, waiting)
        return waiting

    async def _drain_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                waiting = await self.drain()
            except Exception:
                logger.exception("spool drain pass failed")
                waiting = 1
            if waiting:
                # Entries wait for the database (or for their retry delay): try again after the interval, however
                # many webhooks are spooled meanwhile.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self._schedule.retry_seconds)
            else:
                await self._wakeup.wait(IDLE_POLL_SECONDS)

    def _replay(self, entry: SpoolEntry) -> Coroutine[Any, Any, object]:
        # Parsed before the coroutine is created, so that a ValidationError means the entry, not the database.
        if entry.kind == "inbound":
            message = TwilioInbound.model_validate(entry.form)
            return self._intake.accept(message, without_nul(entry.form), received_at=entry.received_at)
        return self._apply_status(TwilioStatusCallback.model_validate(entry.form), entry.received_at)

    async def _apply_status(self, callback: TwilioStatusCallback, received_at: datetime) -> None:
        outbox_status = callback.outbox_status
        if outbox_status is None:
            return
        row = await self._outbox.apply_status(
            callback.message_sid,
            status=outbox_status,
            now=received_at,
            error_code=callback.error_code,
            error_message=callback.error_message,
        )
        if row is None:
            # Usually the callback beat `mark_sent` (it races Twilio's create response): the status is kept and
            # applied when the SID is recorded; delivery logs a failure then.
            logger.info(
                "status callback before its message's SID was recorded; kept until it is",
                extra={"message_sid": callback.message_sid, "status": outbox_status},
            )
        elif outbox_status == "failed":
            self._metrics.dependency_errors.labels("twilio").inc()
            logger.warning(
                "twilio reported a failed delivery",
                extra={"outbox_id": row.id, "error_code": callback.error_code, "wa_id": row.wa_id},
            )

    async def _stored_in_time(self, work: Coroutine[Any, Any, object], kind: SpoolKind) -> bool:
        try:
            await self._bounded(work, self.timeout_seconds)
        except Exception as exc:
            self._metrics.dependency_errors.labels("database").inc()
            logger.warning(
                "database did not take a webhook in time; spooling it",
                extra={"kind": kind, "error": type(exc).__name__, "timeout_seconds": self.timeout_seconds},
            )
            return False
        return True

    async def _spool_it(self, kind: SpoolKind, key: str, form: Mapping[str, str], received_at: datetime) -> None:
        try:
            fresh = await asyncio.wait_for(
                asyncio.to_thread(self.spool.put, kind, key, dict(form), received_at), SPOOL_WRITE_TIMEOUT_SECONDS
            )
        except (SpoolUnavailable, TimeoutError) as exc:
            self._metrics.webhook_spool.labels(kind, "write_failed").inc()
            logger.error(
                "webhook neither stored nor spooled; answering 503 so that Twilio may retry",
                extra={"kind": kind, "message_sid": form.get("MessageSid"), "error": str(exc) or type(exc).__name__},
            )
            raise SpoolUnavailable(str(exc)) from None
        self._metrics.webhook_spool.labels(kind, "spooled" if fresh else "duplicate").inc()
        self._wakeup.set()

    async def _database_answers(self) -> bool:
        try:
            await self._bounded(self._db.ping(), self.timeout_seconds)
        except Exception:
            return False
        return True

    async def _bounded(self, work: Coroutine[Any, Any, T], seconds: float) -> T:
        """`work`'s result if it finishes within `seconds`, else `TimeoutError` at once.

        Not `asyncio.wait_for`: that waits for the cancelled work to finish, and a database driver may take many
        seconds to give up (psycopg waits up to 10 s for the server to acknowledge a cancel). The work is cancelled
        and left to end on its own; whatever it still commits is recognised by MessageSid when the spool drains.
        """
        task = asyncio.create_task(work)
        try:
            done, _ = await asyncio.wait({task}, timeout=seconds)
        except BaseException:  # this request was cancelled itself: the work must not outlive it unowned
            self._abandon(task)
            raise
        if not done:
            self._abandon(task)
            raise TimeoutError(f"no answer within {seconds:g} s")
        return task.result()

    def _abandon(self, task: asyncio.Task[Any]) -> None:
        task.cancel()
        self._abandoned.add(task)
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[Any]) -> None:
        self._abandoned.discard(task)
        error = None if task.cancelled() else task.exception()
        if error is not None:
            logger.info("abandoned database write ended with an error", extra={"error": type(error).__name__})
