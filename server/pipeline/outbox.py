"""Queuing outgoing messages: the outbox writer, and the `MessageSender` the agent's tools use in production."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Literal

from core.clock import Clock
from integrations.twilio.splitting import split_message
from store.outbox import OutboxRepository
from tools.whatsapp import OutboundKind

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TurnScope:
    """The turn the worker is running, so messages the agent sends during it are linked and typed correctly."""

    wa_id: str
    inbound_message_id: int | None = None
    # In a system turn about, say, a cancellation, what the agent sends is a cancellation notice: outside the
    # 24-hour window that kind may still go out as an approved template, a plain 'system' message may not.
    kind_hint: OutboundKind | None = None
    template_variables: Mapping[str, str] | None = None
    # Which turn this is: ('system', event id) or ('customer', first inbound message id of the folded turn). A turn
    # interrupted (crash, lost lease, agent failure) is run again from the start; numbering what it sends makes the
    # n-th message of the re-run a duplicate of the n-th message already queued, so the customer gets it once.
    turn: tuple[Literal["customer", "system"], int] | None = None
    _sent: Iterator[int] = field(default_factory=itertools.count, repr=False, compare=False)

    def next_dedupe_key(self) -> str | None:
        """The dedupe key of the next message sent during this turn (None outside an identified turn)."""
        if self.turn is None:
            return None
        kind, turn_id = self.turn
        return f"turn:{kind}:{turn_id}:{next(self._sent)}"


# A context variable (not an argument) because the agent calls `MessageSender.send` without knowing about turns;
# it follows the worker's task into everything the agent awaits.
_current_turn: ContextVar[TurnScope | None] = ContextVar("current_turn", default=None)


@contextmanager
def turn_scope(scope: TurnScope) -> Iterator[TurnScope]:
    """Run a block as part of `scope`'s turn."""
    token = _current_turn.set(scope)
    try:
        yield scope
    finally:
        _current_turn.reset(token)


def current_turn() -> TurnScope | None:
    """The turn being run in this task, if any."""
    return _current_turn.get()


class Outbox:
    """Writes messages to the outbox (split to WhatsApp's size) and nudges delivery."""

    def __init__(self, repository: OutboxRepository, clock: Clock, *, on_enqueued: Callable[[], None] | None = None):
        self._repository = repository
        self._clock = clock
        self._on_enqueued = on_enqueued

    async def enqueue(
        self,
        wa_id: str,
        body: str,
        *,
        kind: OutboundKind,
        inbound_message_id: int | None = None,
        template_variables: Mapping[str, str] | None = None,
        dedupe_key: str | None = None,
    ) -> list[int]:
        """Queue `body` (several rows if longer than 1600 characters); returns the outbox ids written.

        With `dedupe_key`, a message already queued under that key is not queued again (returns no ids).
        """
        parts = split_message(body)
        if not parts:
            return []
        ids = await self._repository.enqueue(
            wa_id=wa_id,
            parts=parts,
            kind=kind,
            now=self._clock.now(),
            inbound_message_id=inbound_message_id,
            template_variables=template_variables,
            dedupe_key=dedupe_key,
        )
        if not ids:
            # The unique dedupe key hit: a re-run of the same turn (or retried work) queuing it again.
            logger.info("message already queued", extra={"wa_id": wa_id, "dedupe_key": dedupe_key})
            return ids
        self.notify()
        return ids

    def notify(self) -> None:
        """Tell delivery that rows are waiting (rows written in other transactions, e.g. a turn's replies)."""
        if self._on_enqueued is not None:
            self._on_enqueued()


class OutboxSender:
    """The production `tools.whatsapp.MessageSender`: every message goes to the outbox first."""

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox

    async def send(self, wa_id: str, body: str, *, kind: OutboundKind = "reply") -> None:
        """Queue `body` for `wa_id`, linked to the current turn's message when sent during one."""
        scope = current_turn()
        inbound_id: int | None = None
        variables: Mapping[str, str] | None = None
        dedupe_key: str | None = None
        if scope is not None:
            # Numbered for every send of the turn (to the staff number too), so the numbering is stable on a re-run.
            dedupe_key = scope.next_dedupe_key()
        if scope is not None and scope.wa_id == wa_id:
            inbound_id = scope.inbound_message_id
            if scope.kind_hint is not None and kind in ("reply", "system"):
                kind = scope.kind_hint
            if kind == scope.kind_hint:
                variables = scope.template_variables
        await self._outbox.enqueue(
            wa_id, body, kind=kind, inbound_message_id=inbound_id, template_variables=variables, dedupe_key=dedupe_key
        )
