"""A scripted agent for runner-level tests: turns that send, hang or fail on cue, and the runner around it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from agent.api import IncomingText, TurnResult
from core.clock import FixedClock
from server.ops.metrics import ServerMetrics
from server.pipeline.fold import FoldWindow
from server.pipeline.outbox import Outbox, OutboxSender
from server.pipeline.turns import ConversationRunner
from store import Database
from store.conversations import ConversationRepository
from store.inbound import InboundRepository
from store.outbox import OutboxRepository
from store.system_events import SystemEventRepository
from tests.server.helpers import CUSTOMER
from tools.whatsapp import MessageSender


@dataclass
class ScriptedTurns:
    """A `ConversationAgent` whose turns send through `sender` (as `send_whatsapp` does), then follow a script.

    Each entry of `script` decides one turn: "hang" (wait until cancelled, like a worker killed mid-turn), "raise"
    (an agent failure such as an OpenAI outage) or "ok". Turns past the end of the script are "ok".
    """

    sender: MessageSender | None = None
    send_text: str | None = None
    script: list[str] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    sent: asyncio.Event = field(default_factory=asyncio.Event)

    async def _turn(self, kind: str, wa_id: str) -> TurnResult:
        self.calls.append(kind)
        if self.sender is not None and self.send_text is not None:
            await self.sender.send(wa_id, self.send_text, kind="system" if kind == "system" else "reply")
            self.sent.set()
        step = self.script.pop(0) if self.script else "ok"
        if step == "hang":
            await asyncio.Event().wait()
        if step == "raise":
            raise RuntimeError("APIConnectionError: the model provider is down")
        return TurnResult(replies=("te respondo",) if kind == "customer" else ())

    async def customer_turn(
        self,
        wa_id: str,
        messages: Sequence[IncomingText],
        *,
        profile_name: str | None = None,
        run_id: str | None = None,
    ) -> TurnResult:
        """One scripted customer turn."""
        return await self._turn("customer", wa_id)

    async def system_turn(
        self, wa_id: str, event: str, *, event_id: str | None = None, run_id: str | None = None
    ) -> TurnResult:
        """One scripted system turn."""
        return await self._turn("system", wa_id)


def make_runner(
    db: Database,
    clock: FixedClock,
    agent: ScriptedTurns,
    *,
    owner: str = "worker-1",
    lease_seconds: float = 30.0,
    conversations: ConversationRepository | None = None,
    fold: FoldWindow | None = None,
) -> ConversationRunner:
    """A runner over `db` driving `agent`; without `fold`, turns start at once (no waiting for quiet)."""
    outbox = Outbox(OutboxRepository(db), clock)
    agent.sender = OutboxSender(outbox)
    return ConversationRunner(
        agent=agent,
        inbound=InboundRepository(db),
        system_events=SystemEventRepository(db),
        conversations=conversations or ConversationRepository(db),
        outbox=outbox,
        clock=clock,
        metrics=ServerMetrics(),
        owner=owner,
        fold=fold or FoldWindow(quiet_seconds=0.0, max_wait_seconds=0.0),
        lease_seconds=lease_seconds,
    )


async def customer_message(
    db: Database, clock: FixedClock, sid: str = "SMr", body: str = "hola", *, wa_id: str = CUSTOMER
) -> int:
    """Store one customer message received now; its id."""
    stored = await InboundRepository(db).receive(message_sid=sid, wa_id=wa_id, body=body, received_at=clock.now())
    assert stored is not None
    return stored.id
