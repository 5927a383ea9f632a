"""Running a conversation's turns under a lease: one worker at a time, messages folded in arrival order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import get_args

from agent.api import ConversationAgent, IncomingText
from core.clock import Clock
from server.metrics import ServerMetrics
from server.outbox import Outbox, TurnScope, turn_scope
from server.splitting import split_message
from store.conversations import ConversationRepository
from store.inbound import InboundRepository
from store.models import InboundMessage
from store.system_events import SystemEvent, SystemEventRepository
from tools.whatsapp import OutboundKind

logger = logging.getLogger(__name__)

_OUTBOUND_KINDS: dict[str, OutboundKind] = {kind: kind for kind in get_args(OutboundKind)}


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
        debounce_seconds: float,
        lease_seconds: float,
    ) -> None:
        self._agent = agent
        self._inbound = inbound
        self._system_events = system_events
        self._conversations = conversations
        self._outbox = outbox
        self._clock = clock
        self._metrics = metrics
        self._owner = owner
        self._debounce = debounce_seconds
        self._lease = timedelta(seconds=lease_seconds)

    async def run(self, wa_id: str, *, stopping: asyncio.Event | None = None) -> bool:
        """Process everything pending for `wa_id` (or until `stopping` is set between turns); False when another
        worker holds the conversation."""
        now = self._clock.now()
        if not await self._conversations.acquire_lease(wa_id, owner=self._owner, now=now, until=now + self._lease):
            return False
        drain = asyncio.create_task(self._drain(wa_id, stopping or asyncio.Event()))
        lost = asyncio.Event()
        heartbeat = asyncio.create_task(self._keep_lease(wa_id, drain, lost))
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

    async def _keep_lease(self, wa_id: str, drain: asyncio.Task[None], lost: asyncio.Event) -> None:
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
                # A database hiccup: try again at the next beat; the lease still has two beats to run.
                logger.exception("lease renewal failed", extra={"wa_id": wa_id})
                continue
            if not renewed:
                lost.set()
                drain.cancel()
                return

    async def _drain(self, wa_id: str, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            # The debounce lets "hola" / "quiero cita" / "mañana" arrive before the turn reads them.
            await asyncio.sleep(self._debounce)
            conversation = await self._conversations.get(wa_id)
            if conversation is not None and conversation.paused:
                await self._hold_for_staff(wa_id)
                return
            messages = await self._inbound.open_for_conversation(wa_id)
            events = await self._system_events.open_for_conversation(wa_id)
            if not messages and not events:
                return
            if events and (not messages or events[0].created_at <= messages[0].received_at):
                await self._system_turn(events[0])
            else:
                await self._customer_turn(wa_id, messages)

    async def _hold_for_staff(self, wa_id: str) -> None:
        now = self._clock.now()
        held = await self._inbound.mark_open(wa_id, "paused", now=now)
        held += await self._system_events.mark_open(wa_id, "paused", now=now)
        if held:
            logger.info("conversation paused by staff; not answering", extra={"wa_id": wa_id, "held": held})

    async def _customer_turn(self, wa_id: str, messages: Sequence[InboundMessage]) -> None:
        ids = [m.id for m in messages]
        await self._inbound.mark(ids, "processing")
        texts = [
            IncomingText(body=m.body, button_payload=m.button_payload, message_sid=m.message_sid) for m in messages
        ]
        profile_name = next((m.profile_name for m in reversed(messages) if m.profile_name), None)
        # Replies are linked to the earliest message of the turn: latency is the longest a customer waited.
        first = messages[0].id
        started = time.perf_counter()
        try:
            with turn_scope(TurnScope(wa_id=wa_id, inbound_message_id=first)):
                result = await self._agent.customer_turn(wa_id, texts, profile_name=profile_name)
        except Exception as exc:
            await self._inbound.mark(ids, "failed", now=self._clock.now(), error=f"{type(exc).__name__}: {exc}")
            self._metrics.turns.labels("customer", "error").inc()
            self._metrics.dependency_errors.labels("agent").inc()
            logger.exception("customer turn failed", extra={"wa_id": wa_id, "messages": len(ids)})
            return
        self._metrics.turn_seconds.labels("customer").observe(time.perf_counter() - started)
        replies = [parts for parts in (split_message(r) for r in result.replies) if parts]
        await self._inbound.answer(ids, wa_id=wa_id, replies=replies, reply_to=first, now=self._clock.now())
        self._outbox.notify()
        self._metrics.turns.labels("customer", "ok").inc()
        logger.info("customer turn done", extra={"wa_id": wa_id, "messages": len(ids), "replies": len(replies)})

    async def _system_turn(self, event: SystemEvent) -> None:
        await self._system_events.mark(event.id, "processing", now=self._clock.now())
        hint = _OUTBOUND_KINDS.get(event.kind_hint or "")
        scope = TurnScope(wa_id=event.wa_id, kind_hint=hint, template_variables=event.template_variables)
        started = time.perf_counter()
        try:
            with turn_scope(scope):
                result = await self._agent.system_turn(event.wa_id, event.description)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            await self._system_events.mark(event.id, "failed", now=self._clock.now(), error=error)
            self._metrics.turns.labels("system", "error").inc()
            self._metrics.dependency_errors.labels("agent").inc()
            logger.exception("system turn failed", extra={"wa_id": event.wa_id, "event_id": event.id})
            return
        self._metrics.turn_seconds.labels("system").observe(time.perf_counter() - started)
        if result.replies:
            # By contract a system turn speaks only through `send_whatsapp`; stray replies are not sent.
            logger.warning("system turn returned replies; ignored", extra={"event_id": event.id})
        await self._system_events.mark(event.id, "processed", now=self._clock.now())
        self._metrics.turns.labels("system", "ok").inc()
