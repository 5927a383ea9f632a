"""Running a conversation's turns under a lease: one worker at a time, messages folded in arrival order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import get_args

from agent.api import ConversationAgent, IncomingText
from core.clock import Clock
from integrations.calendly.transport import rate_limit_budget
from integrations.twilio.splitting import split_message
from prompts import render_localized
from server.ops.metrics import ServerMetrics
from server.pipeline.fold import FoldWindow
from server.pipeline.outbox import Outbox, TurnScope, turn_scope
from server.pipeline.turn_traces import TurnTraces
from store.clients import ClientRepository
from store.conversations import ConversationRepository, LeaseLost
from store.inbound import InboundRepository
from store.models import InboundMessage
from store.system_events import SystemEvent, SystemEventRepository
from tools.whatsapp import OutboundKind

logger = logging.getLogger(__name__)

_OUTBOUND_KINDS: dict[str, OutboundKind] = {kind: kind for kind in get_args(OutboundKind)}

# A failed turn (model provider down, a timeout) is tried again after these pauses (about 50 minutes in all), then
# given up with an apology: an outage costs the customer a delay, not an answer. The customer hears a holding
# message after a minute (`holding.py`), and the first turn that succeeds again re-drives the rest at once.
TURN_RETRY_BACKOFF = tuple(timedelta(seconds=s) for s in (15, 30, 60, 120, 300, 600, 900, 900))
TURN_MAX_ATTEMPTS = len(TURN_RETRY_BACKOFF) + 1

# Calendly rate limits: a whole turn waits at most this long for resets, however many calls it makes; past it the
# tools report "try again shortly" at once (a customer must not wait a minute for a reply).
TURN_CALENDLY_WAIT_SECONDS = 8.0


class ConversationRunner:
    """Drains one conversation at a time: takes its lease, runs turns until nothing is pending, gives it back."""

    def __init__(
        self,
        *,
        agent: ConversationAgent,
        inbound: InboundRepository,
        system_events: SystemEventRepository,
        conversations: ConversationRepository,
        outbox: Outbox,
        clock: Clock,
        metrics: ServerMetrics,
        owner: str,
        fold: FoldWindow,
        lease_seconds: float,
        retry_backoff: Sequence[timedelta] = TURN_RETRY_BACKOFF,
        max_attempts: int = TURN_MAX_ATTEMPTS,
        language: str = "es",
        clients: ClientRepository | None = None,
        traces: TurnTraces | None = None,
    ) -> None:
        """`retry_backoff` / `max_attempts` govern failed turns; the apology for a turn given up is in the
        customer's language (from `clients`), else in `language` (the business's). With `traces` (tracing on)
        each turn's run is stored with the turn. `fold` decides when a customer's messages are complete."""
        self._clients = clients
        self._traces = traces
        self._agent = agent
        self._inbound = inbound
        self._system_events = system_events
        self._conversations = conversations
        self._outbox = outbox
        self._clock = clock
        self._metrics = metrics
        self._owner = owner
        self._fold = fold
        self._lease = timedelta(seconds=lease_seconds)
        self._backoff = tuple(retry_backoff)
        self._max_attempts = max_attempts
        self._language = language
        # Set by a failed turn, cleared by the re-drive after the next success (so a healthy worker pays nothing).
        self._failing = False

    async def run(self, wa_id: str, *, stopping: asyncio.Event | None = None) -> bool:
        """Process everything pending for `wa_id` (or until `stopping` is set between turns); False when another
        worker holds the conversation."""
        now = self._clock.now()
        if not await self._conversations.acquire_lease(wa_id, owner=self._owner, now=now, until=now + self._lease):
            return False
        drain = asyncio.create_task(self._drain(wa_id, stopping or asyncio.Event()))
        lost = asyncio.Event()
        heartbeat = asyncio.create_task(self._keep_lease(wa_id, drain, lost, renewed_at=now))
        try:
            await drain
        except asyncio.CancelledError:
            if not lost.is_set():
                raise  # the worker is stopping; the lease is released below
            logger.warning("conversation lease lost; turn abandoned", extra={"wa_id": wa_id})
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            await self._conversations.release_lease(wa_id, owner=self._owner, now=self._clock.now())
        return True

    async def _keep_lease(
        self, wa_id: str, drain: asyncio.Task[None], lost: asyncio.Event, *, renewed_at: datetime
    ) -> None:
        # Renew well before expiry; if renewal fails another worker may take over, so this one must stop at once.
        interval = self._lease.total_seconds() / 3
        while True:
            await asyncio.sleep(interval)
            now = self._clock.now()
            try:
                renewed = await self._conversations.renew_lease(
                    wa_id, owner=self._owner, now=now, until=now + self._lease
                )
            except Exception:
                # A database hiccup: try again at the next beat while the lease still covers it. Once it would run
                # out before the next beat, stop: past `lease_until` another worker may take the conversation.
                logger.exception("lease renewal failed", extra={"wa_id": wa_id})
                if now + timedelta(seconds=interval) < renewed_at + self._lease:
                    continue
                renewed = False
            if not renewed:
                lost.set()
                drain.cancel()
                return
            renewed_at = now

    async def _drain(self, wa_id: str, stopping: asyncio.Event) -> None:
        burst = self._fold.burst()
        while not stopping.is_set():
            conversation = await self._conversations.get(wa_id)
            if conversation is not None and conversation.paused and await self._hold_for_staff(wa_id):
                return
            # Only what is due: a turn waiting out its retry backoff is left to a later run.
            now = self._clock.now()
            messages = await self._inbound.open_for_conversation(wa_id, due_at=now)
            events = await self._system_events.open_for_conversation(wa_id, due_at=now)
            if not messages and not events:
                return
            try:
                if events and (not messages or events[0].created_at <= messages[0].received_at):
                    await self._system_turn(events[0])
                elif wait := burst.wait_seconds(messages, now):
                    # The customer may still be writing: look again once they could have been quiet long enough
                    # (everything is read again then, so a pause by staff meanwhile is honoured).
                    await self._fold.sleep(wait)
                else:
                    await self._customer_turn(wa_id, messages)
            except LeaseLost:
                # Another worker holds the conversation now; it runs (or re-runs) this turn, so stop without a trace.
                logger.warning("conversation lease lost; turn result discarded", extra={"wa_id": wa_id})
                return

    async def _hold_for_staff(self, wa_id: str) -> bool:
        """Hold everything open while staff has the conversation; False when it was resumed meanwhile."""
        held = await self._conversations.hold_for_staff(wa_id, now=self._clock.now())
        if held:
            logger.info("conversation paused by staff; not answering", extra={"wa_id": wa_id, "held": held})
        return held is not None

    async def _customer_turn(self, wa_id: str, messages: Sequence[InboundMessage]) -> None:
        ids = [m.id for m in messages]
        # `processed_at` of a message being processed is when its turn started (the holding message counts from it).
        await self._inbound.mark(ids, "processing", now=self._clock.now())
        texts = [
            IncomingText(body=m.body, button_payload=m.button_payload, message_sid=m.message_sid) for m in messages
        ]
        profile_name = next((m.profile_name for m in reversed(messages) if m.profile_name), None)
        # Replies are linked to the earliest message of the turn: latency is the longest a customer waited.
        first = messages[0].id
        sids = [m.message_sid for m in messages if m.message_sid]
        run_id = self._new_run_id()
        started = time.perf_counter()
        try:
            scope = TurnScope(wa_id=wa_id, inbound_message_id=first, turn=("customer", first))
            with turn_scope(scope), rate_limit_budget(TURN_CALENDLY_WAIT_SECONDS):
                result = await self._agent.customer_turn(wa_id, texts, profile_name=profile_name, run_id=run_id)
        except Exception as exc:
            if self._traces is not None:
                await self._traces.failed(wa_id, "customer", first, run_id, message_sids=sids)
            self._failing = True
            self._metrics.turns.labels("customer", "error").inc()
            self._metrics.dependency_errors.labels("agent").inc()
            logger.exception("customer turn failed", extra={"wa_id": wa_id, "messages": len(ids)})
            client = await self._clients.get(wa_id) if self._clients is not None else None
            language = (client.language if client else None) or self._language
            apology = split_message(render_localized("messages/agent_unavailable", language))
            failed = await self._inbound.retry_or_fail(
                ids,
                wa_id=wa_id,
                now=self._clock.now(),
                error=f"{type(exc).__name__}: {exc}",
                backoff=self._backoff,
                max_attempts=self._max_attempts,
                apology=apology,
                reply_to=first,
                owner=self._owner,
            )
            if failed:
                self._outbox.notify()
                logger.error("customer turn given up; apology queued", extra={"wa_id": wa_id, "messages": failed})
            return
        self._metrics.turn_seconds.labels("customer").observe(time.perf_counter() - started)
        self._note_budget("customer", wa_id, result.budget_exhausted)
        replies = [parts for parts in (split_message(r) for r in result.replies) if parts]
        await self._inbound.answer(
            ids,
            wa_id=wa_id,
            replies=replies,
            reply_to=first,
            now=self._clock.now(),
            owner=self._owner,
            question_id=result.confirmation_id if result.awaiting_confirmation else None,
        )
        self._outbox.notify()
        if self._traces is not None:
            await self._traces.finished(wa_id, "customer", first, result, message_sids=sids)
        self._metrics.turns.labels("customer", "ok").inc()
        await self._redrive_after_outage()
        logger.info("customer turn done", extra={"wa_id": wa_id, "messages": len(ids), "replies": len(replies)})

    async def _system_turn(self, event: SystemEvent) -> None:
        await self._system_events.mark(event.id, "processing", now=self._clock.now())
        hint = _OUTBOUND_KINDS.get(event.kind_hint or "")
        scope = TurnScope(
            wa_id=event.wa_id,
            kind_hint=hint,
            template_variables=event.template_variables,
            turn=("system", event.id),
        )
        run_id = self._new_run_id()
        started = time.perf_counter()
        try:
            with turn_scope(scope), rate_limit_budget(TURN_CALENDLY_WAIT_SECONDS):
                result = await self._agent.system_turn(
                    event.wa_id, event.description, event_id=str(event.id), run_id=run_id
                )
        except Exception as exc:
            if self._traces is not None:
                await self._traces.failed(event.wa_id, "system", event.id, run_id)
            self._failing = True
            self._metrics.turns.labels("system", "error").inc()
            self._metrics.dependency_errors.labels("agent").inc()
            logger.exception("system turn failed", extra={"wa_id": event.wa_id, "event_id": event.id})
            # No apology here: the customer did not ask anything, and the event stays visible to staff as 'failed'.
            await self._system_events.retry_or_fail(
                event,
                now=self._clock.now(),
                error=f"{type(exc).__name__}: {exc}",
                backoff=self._backoff,
                max_attempts=self._max_attempts,
                owner=self._owner,
            )
            return
        self._metrics.turn_seconds.labels("system").observe(time.perf_counter() - started)
        self._note_budget("system", event.wa_id, result.budget_exhausted)
        if result.replies:
            # By contract a system turn speaks only through `send_whatsapp`; stray replies are not sent.
            logger.warning("system turn returned replies; ignored", extra={"event_id": event.id})
        await self._system_events.finish(event, now=self._clock.now(), owner=self._owner)
        if self._traces is not None:
            await self._traces.finished(event.wa_id, "system", event.id, result)
        self._metrics.turns.labels("system", "ok").inc()
        await self._redrive_after_outage()

    def _new_run_id(self) -> str | None:
        # Named here, not by the tracer, so that a failed attempt's run can be stored (and rated) too.
        return str(uuid.uuid4()) if self._traces is not None else None

    async def _redrive_after_outage(self) -> None:
        # A turn succeeded after failures: whatever else failed meanwhile need not wait out its backoff.
        if not self._failing:
            return
        self._failing = False
        moved = await self._inbound.redrive_failed(now=self._clock.now())
        if moved:
            logger.info("turns succeed again; failed turns re-driven", extra={"re_driven": moved})

    def _note_budget(self, kind: str, wa_id: str, reason: str | None) -> None:
        # A runaway turn was cut short by the agent's budget: it completed (no retry), but staff should know.
        if reason is None:
            return
        self._metrics.turn_budget_exhausted.labels(kind, reason).inc()
        logger.warning("turn cut short by its budget", extra={"wa_id": wa_id, "turn": kind, "reason": reason})
