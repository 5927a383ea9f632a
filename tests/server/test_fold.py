"""Folding on silence: a turn starts once the customer has been quiet for a short window, at most a maximum after
their first message, and nothing waits when the customer is quiet already. Time is faked: the waits are recorded."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from agent.api import IncomingText, TurnResult
from core.clock import FixedClock
from server.options import ServerOptions
from server.pipeline.fold import FoldWindow
from store import Database
from store.conversations import ConversationRepository
from store.models import InboundMessage
from store.system_events import SystemEventRepository
from tests.server.helpers import CUSTOMER
from tests.server.scripted_turns import ScriptedTurns, customer_message, make_runner

QUIET = 0.4
MAX_WAIT = 1.0


@dataclass
class FakeTime:
    """Monotonic time that moves only when the runner sleeps; each sleep can let something happen meanwhile."""

    now: float = 100.0
    sleeps: list[float] = field(default_factory=list)
    meanwhile: list[Callable[[], Awaitable[object]]] = field(default_factory=list)

    async def sleep(self, seconds: float) -> None:
        """Record the wait, move time on, then run the next thing that happens during a wait (if any)."""
        self.sleeps.append(seconds)
        self.now += seconds
        if self.meanwhile:
            await self.meanwhile.pop(0)()

    def monotonic(self) -> float:
        """The fake monotonic clock."""
        return self.now

    def window(self, quiet: float = QUIET, max_wait: float = MAX_WAIT) -> FoldWindow:
        """A fold window on this fake time."""
        return FoldWindow(quiet_seconds=quiet, max_wait_seconds=max_wait, sleep=self.sleep, monotonic=self.monotonic)


@dataclass
class RecordingTurns(ScriptedTurns):
    """Scripted turns that also record each customer turn's texts, and can let something happen during a turn."""

    texts: list[list[str]] = field(default_factory=list)
    during_turn: list[Callable[[], Awaitable[object]]] = field(default_factory=list)

    async def customer_turn(
        self,
        wa_id: str,
        messages: Sequence[IncomingText],
        *,
        profile_name: str | None = None,
        run_id: str | None = None,
    ) -> TurnResult:
        """Record the texts, run what happens during this turn, then the scripted turn."""
        self.texts.append([m.body for m in messages])
        if self.during_turn:
            await self.during_turn.pop(0)()
        return await super().customer_turn(wa_id, messages, profile_name=profile_name, run_id=run_id)


async def _statuses(db: Database) -> list[str]:
    return [r["status"] for r in await db.fetch_all("SELECT status FROM inbound_messages ORDER BY id")]


async def test_a_single_message_waits_one_quiet_window_and_nothing_after_its_turn(
    db: Database, clock: FixedClock
) -> None:
    time = FakeTime()
    agent = RecordingTurns()
    first = await customer_message(db, clock, "SM1", "hola")
    defaults = ServerOptions()
    runner = make_runner(
        db, clock, agent, fold=time.window(defaults.fold_quiet_seconds, defaults.fold_max_wait_seconds)
    )

    assert await runner.run(CUSTOMER)

    # The server clock stands still here, so the in-process clock is what bounds the wait: one window, then the
    # turn, then no wait at all (nothing else had arrived).
    assert time.sleeps == [defaults.fold_quiet_seconds]
    assert defaults.fold_quiet_seconds < 1.0 < defaults.fold_max_wait_seconds
    assert agent.texts == [["hola"]]
    assert await db.fetch_all("SELECT body, inbound_message_id FROM outbox") == [
        {"body": "te respondo", "inbound_message_id": first}
    ]


async def test_a_message_during_the_window_extends_the_wait_and_joins_the_turn(db: Database, clock: FixedClock) -> None:
    time = FakeTime(meanwhile=[lambda: customer_message(db, clock, "SM2", "quiero cita")])
    agent = RecordingTurns()
    first = await customer_message(db, clock, "SM1", "hola")
    runner = make_runner(db, clock, agent, fold=time.window())

    assert await runner.run(CUSTOMER)

    assert time.sleeps == [QUIET, QUIET]  # the window starts again from the second message
    assert agent.texts == [["hola", "quiero cita"]]
    assert await db.fetch_all("SELECT inbound_message_id FROM outbox") == [{"inbound_message_id": first}]
    assert await _statuses(db) == ["processed", "processed"]


async def test_a_customer_who_keeps_writing_is_answered_at_the_max_wait(db: Database, clock: FixedClock) -> None:
    def message(n: int) -> Callable[[], Awaitable[int]]:
        return lambda: customer_message(db, clock, f"SM{n}", f"m{n}")

    # A new message during every wait, more than the max wait allows.
    time = FakeTime(meanwhile=[message(n) for n in range(2, 12)])
    agent = RecordingTurns()
    await customer_message(db, clock, "SM1", "m1")
    runner = make_runner(db, clock, agent, fold=time.window())

    assert await runner.run(CUSTOMER)

    assert len(time.sleeps) == 3 and time.sleeps[:2] == [QUIET, QUIET]
    assert abs(sum(time.sleeps) - MAX_WAIT) < 1e-9  # the last wait is cut short at the maximum
    assert agent.texts == [["m1", "m2", "m3", "m4"]]
    assert len(time.meanwhile) == 7  # the stream was still going when the turn started


async def test_a_message_that_has_long_been_quiet_starts_at_once(db: Database, clock: FixedClock) -> None:
    time = FakeTime()
    agent = RecordingTurns()
    await customer_message(db, clock, "SM1", "hola")
    clock.advance(timedelta(seconds=QUIET * 2))  # e.g. stored before a restart
    runner = make_runner(db, clock, agent, fold=time.window())

    assert await runner.run(CUSTOMER)

    assert time.sleeps == []
    assert agent.texts == [["hola"]]


async def test_a_message_stored_during_a_turn_and_quiet_since_starts_the_next_turn_at_once(
    db: Database, clock: FixedClock
) -> None:
    async def written_during_the_turn() -> None:
        await customer_message(db, clock, "SM2", "mañana")
        clock.advance(timedelta(seconds=2))  # the turn (a model call) takes two seconds after it

    time = FakeTime()
    agent = RecordingTurns(during_turn=[written_during_the_turn])
    await customer_message(db, clock, "SM1", "hola")
    runner = make_runner(db, clock, agent, fold=time.window())

    assert await runner.run(CUSTOMER)

    assert time.sleeps == [QUIET]  # the first message's window only
    assert agent.texts == [["hola"], ["mañana"]]


async def test_a_system_event_does_not_wait_and_keeps_its_place_before_later_messages(
    db: Database, clock: FixedClock
) -> None:
    time = FakeTime()
    agent = RecordingTurns()
    await SystemEventRepository(db).enqueue(
        wa_id=CUSTOMER, source="calendly", description="cancelled", dedupe_key="calendly:f", now=clock.now()
    )
    clock.advance(timedelta(milliseconds=1))
    await customer_message(db, clock, "SM1", "hola")
    runner = make_runner(db, clock, agent, fold=time.window())

    assert await runner.run(CUSTOMER)

    assert agent.calls == ["system", "customer"]
    assert time.sleeps == [QUIET]  # the message's window, after the event ran at once


async def test_staff_taking_over_during_the_window_is_honoured(db: Database, clock: FixedClock) -> None:
    conversations = ConversationRepository(db)
    await conversations.record_inbound(CUSTOMER, at=clock.now())
    time = FakeTime(meanwhile=[lambda: conversations.set_paused(CUSTOMER, paused=True, by="staff", now=clock.now())])
    agent = RecordingTurns()
    await customer_message(db, clock, "SM1", "hola")
    runner = make_runner(db, clock, agent, fold=time.window())

    assert await runner.run(CUSTOMER)

    assert agent.calls == []
    assert await _statuses(db) == ["paused"]


def _inbound(message_id: int, received_at: datetime, *, error: str | None = None) -> InboundMessage:
    return InboundMessage(
        id=message_id,
        message_sid=f"SM{message_id}",
        wa_id=CUSTOMER,
        status="pending",
        error=error,
        received_at=received_at,
    )


def test_a_message_retried_after_a_failure_does_not_cut_short_the_burst_after_it(clock: FixedClock) -> None:
    now = clock.now()
    old = now - timedelta(minutes=5)
    window = FakeTime().window()

    retried = [_inbound(1, old, error="RuntimeError: down"), _inbound(2, now)]
    assert window.burst().wait_seconds(retried, now) == QUIET
    # The same old message never tried (a dead worker's, say) has waited past the maximum: the turn starts now.
    untried = [_inbound(1, old), _inbound(2, now)]
    assert window.burst().wait_seconds(untried, now) == 0.0


def test_the_window_is_set_from_the_environment() -> None:
    options = ServerOptions.from_env({"ASISTENTE_FOLD_QUIET_SECONDS": "0.2", "ASISTENTE_FOLD_MAX_WAIT_SECONDS": "5"})
    assert FoldWindow.from_options(options) == FoldWindow(quiet_seconds=0.2, max_wait_seconds=5.0)
