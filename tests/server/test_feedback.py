"""Feedback on turns is stored before it is sent: a LangSmith outage, a hung send or a missing sink loses nothing,
and nothing is sent twice (on both engines)."""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from datetime import timedelta
from typing import Any

import pytest

from core.clock import FixedClock
from server.pipeline.feedback import FeedbackPublisher, PublishPolicy, UnknownTurn
from store import Database, open_database
from store.feedback import FeedbackEntry, FeedbackRepository
from store.inbound import InboundRepository
from store.outbox_insert import insert_outbox
from store.turn_runs import TurnRun, TurnRunRepository

ANA = "whatsapp:+34600000001"


class Sink:
    """A stand-in for LangSmith: records what it is given, refusing the first `failures` sends."""

    def __init__(self, failures: int = 0) -> None:
        self.calls: list[FeedbackEntry] = []
        self.failures = failures

    def send(self, entry: FeedbackEntry) -> None:
        self.calls.append(entry)
        if self.failures:
            self.failures -= 1
            raise ConnectionError("LangSmith unreachable")


def publisher(db: Database, sink: Sink | None, clock: FixedClock, **policy: object) -> FeedbackPublisher:
    return FeedbackPublisher(
        FeedbackRepository(db),
        TurnRunRepository(db),
        sink,
        clock,
        policy=PublishPolicy(**policy),  # type: ignore[arg-type]
    )


async def traced_turn(db: Database, clock: FixedClock, *, ref: int = 1, outcome: str = "answered") -> TurnRun:
    return await TurnRunRepository(db).record(
        TurnRun(
            run_id=str(uuid.uuid4()),
            trace_id=str(uuid.uuid4()),
            wa_id=ANA,
            kind="customer",
            turn_ref=ref,
            outcome=outcome,
            created_at=clock.now(),
        )
    )


async def rows(db: Database) -> list[dict[str, object]]:
    return await db.fetch_all("SELECT run_id, key, score, sent_at, attempts FROM turn_feedback ORDER BY id")


async def test_a_rating_is_stored_and_sent_at_once_under_its_own_id(db: Database, clock: FixedClock) -> None:
    sink = Sink()
    feedback = publisher(db, sink, clock)
    traced = await traced_turn(db, clock)
    entry = await feedback.rate(run_id=traced.run_id, score=1.0, comment="Perfecto", author="ana")
    assert entry.sent and entry.sent_at == clock.now() and entry.attempts == 1
    [sent] = sink.calls
    assert (sent.run_id, sent.key, sent.score, sent.comment, sent.source) == (
        traced.run_id,
        "staff_rating",
        1.0,
        "Perfecto",
        "staff",
    )
    assert sent.feedback_id == entry.feedback_id
    clock.advance(timedelta(hours=1))
    assert await feedback.publish_pending() == 0
    assert len(sink.calls) == 1


async def test_feedback_langsmith_refused_is_kept_and_sent_exactly_once_later(
    db: Database, clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    sink = Sink(failures=1)
    feedback = publisher(db, sink, clock, retry_after=timedelta(minutes=1))
    traced = await traced_turn(db, clock)
    with caplog.at_level(logging.WARNING, logger="server.pipeline.feedback"):
        entry = await feedback.rate(run_id=traced.run_id, score=0.0, comment=None, author="ana")
    assert not entry.sent and entry.attempts == 1
    assert entry.last_error == "ConnectionError: LangSmith unreachable"
    assert [r.message for r in caplog.records] == ["feedback not sent, will retry"]
    assert await rows(db) == [
        {"run_id": traced.run_id, "key": "staff_rating", "score": 0.0, "sent_at": None, "attempts": 1}
    ]

    assert await feedback.publish_pending() == 0  # too soon after the failed attempt
    clock.advance(timedelta(minutes=2))
    assert await feedback.publish_pending() == 1
    assert await feedback.publish_pending() == 0
    clock.advance(timedelta(hours=1))
    assert await feedback.publish_pending() == 0
    assert [c.feedback_id for c in sink.calls] == [entry.feedback_id] * 2  # the retry names the same feedback
    stored = await FeedbackRepository(db).get(entry.id)
    assert stored is not None and stored.sent and stored.last_error is None and stored.attempts == 2


async def test_feedback_is_given_up_after_the_attempt_limit(
    db: Database, clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    sink = Sink(failures=100)
    feedback = publisher(db, sink, clock, max_attempts=3, retry_after=timedelta(minutes=1))
    traced = await traced_turn(db, clock)
    with caplog.at_level(logging.WARNING, logger="server.pipeline.feedback"):
        await feedback.rate(run_id=traced.run_id, score=0.5, comment=None, author="ana")
        for _ in range(5):
            clock.advance(timedelta(minutes=2))
            assert await feedback.publish_pending() == 0
    assert len(sink.calls) == 3
    assert [(r.levelname, r.message) for r in caplog.records] == [
        ("WARNING", "feedback not sent, will retry"),
        ("WARNING", "feedback not sent, will retry"),
        ("ERROR", "feedback not sent, given up"),
    ]
    assert [row["attempts"] for row in await rows(db)] == [3]


def test_the_wait_between_attempts_doubles_up_to_an_hour() -> None:
    waits = [PublishPolicy().wait_after(n) for n in range(1, 12)]
    assert [w // timedelta(minutes=1) for w in waits] == [1, 2, 4, 8, 16, 32, 60, 60, 60, 60, 60]


async def test_feedback_outlasts_an_hour_long_outage(db: Database, clock: FixedClock) -> None:
    sink = Sink(failures=1000)
    feedback = publisher(db, sink, clock)  # the default policy, as wired
    traced = await traced_turn(db, clock)
    entry = await feedback.rate(run_id=traced.run_id, score=1.0, comment=None, author="ana")
    delivered = 0
    for minute in range(1, 91):  # a maintenance pass every minute; LangSmith back after an hour
        clock.advance(timedelta(minutes=1))
        if minute == 60:
            sink.failures = 0
        delivered += await feedback.publish_pending()
    assert delivered == 1
    # Tried at 0, 1, 3, 7, 15, 31 minutes while down (not every minute), then at 63, when it was back.
    assert len(sink.calls) == 7 and {c.feedback_id for c in sink.calls} == {entry.feedback_id}


async def test_without_a_sink_feedback_is_stored_and_sent_by_a_process_that_has_one(
    db: Database, clock: FixedClock
) -> None:
    untraced = publisher(db, None, clock)
    assert untraced.tracing is False
    traced = await traced_turn(db, clock)
    entry = await untraced.rate(run_id=traced.run_id, score=1.0, comment=None, author="ana")
    assert not entry.sent and entry.attempts == 0 and entry.last_error is None
    assert await untraced.publish_pending() == 0
    sink = Sink()
    assert await publisher(db, sink, clock).publish_pending() == 1
    assert [c.id for c in sink.calls] == [entry.id]


async def test_two_senders_at_once_send_a_row_once(db: Database, database_url: str, clock: FixedClock) -> None:
    traced = await traced_turn(db, clock)
    await publisher(db, None, clock).rate(run_id=traced.run_id, score=1.0, comment=None, author="ana")
    both_read = asyncio.Barrier(2)

    class ReadTogether(FeedbackRepository):
        """Both senders have read the row as unsent before either goes on: only the claim can keep them apart."""

        async def unsent(self, *args: Any, **kwargs: Any) -> list[FeedbackEntry]:
            found = await super().unsent(*args, **kwargs)
            await both_read.wait()
            return found

    sink = Sink()
    other = open_database(database_url)  # a second process's connection
    try:
        senders = [FeedbackPublisher(ReadTogether(d), TurnRunRepository(d), sink, clock) for d in (db, other)]
        sent = await asyncio.gather(*(s.publish_pending() for s in senders))
    finally:
        await other.close()
    assert sorted(sent) == [0, 1]
    assert len(sink.calls) == 1


async def test_a_signal_is_kept_and_sent_once_per_run_and_key(db: Database, clock: FixedClock) -> None:
    sink = Sink()
    feedback = publisher(db, sink, clock)
    traced = await traced_turn(db, clock, outcome="handed_off")
    first = await feedback.signal(traced.run_id, "handoff", 0.0)
    again = await feedback.signal(traced.run_id, "handoff", 0.0)
    assert first.sent and again.id == first.id and first.source == "system" and first.author is None
    later = await feedback.signal(traced.run_id, "customer_repeated", 0.0, send_now=False)
    assert not later.sent
    assert [c.key for c in sink.calls] == ["handoff"]
    assert await feedback.publish_pending() == 1
    assert [c.key for c in sink.calls] == ["handoff", "customer_repeated"]
    assert [e.key for e in await feedback.feedback_for(traced.run_id)] == ["handoff", "customer_repeated"]


async def test_staff_name_a_turn_by_a_customer_message_or_an_outgoing_message(db: Database, clock: FixedClock) -> None:
    sink = Sink()
    feedback = publisher(db, sink, clock)
    inbound = await InboundRepository(db).receive(message_sid="SMx1", wa_id=ANA, body="hola", received_at=clock.now())
    assert inbound is not None
    traced = await traced_turn(db, clock, ref=inbound.id)
    async with db.transaction() as conn:
        [reply] = await insert_outbox(
            conn, wa_id=ANA, parts=["Hola"], kind="reply", now=clock.now(), dedupe_key=f"turn:customer:{inbound.id}:0"
        )
    by_message = await feedback.rate(message_sid="SMx1", score=1.0, comment=None, author="ana")
    by_reply = await feedback.rate(outbox_id=reply, score=0.0, comment=None, author="ana")
    assert by_message.run_id == by_reply.run_id == traced.run_id


async def test_nothing_is_stored_for_a_turn_that_was_not_traced(db: Database, clock: FixedClock) -> None:
    sink = Sink()
    feedback = publisher(db, sink, clock)
    for target in ({"run_id": str(uuid.uuid4())}, {"message_sid": "SMnone"}, {"outbox_id": 999}):
        with pytest.raises(UnknownTurn):
            await feedback.rate(**target, score=1.0, comment=None, author="ana")
    with pytest.raises(UnknownTurn):
        await feedback.signal(str(uuid.uuid4()), "turn_failed", 0.0)
    traced = await traced_turn(db, clock)
    with pytest.raises(ValueError, match="exactly one"):
        await feedback.rate(run_id=traced.run_id, outbox_id=1, score=1.0, comment=None, author="ana")
    with pytest.raises(ValueError, match="key"):
        await feedback.signal(traced.run_id, "Not A Key", 0.0)
    assert await rows(db) == [] and sink.calls == []


async def test_a_hung_send_is_abandoned_and_the_row_waits_for_a_retry(db: Database, clock: FixedClock) -> None:
    release = threading.Event()

    class HungSink(Sink):
        def send(self, entry: FeedbackEntry) -> None:
            super().send(entry)
            release.wait(timeout=10)

    sink = HungSink()
    feedback = publisher(db, sink, clock, send_timeout_seconds=0.05)
    traced = await traced_turn(db, clock)
    try:
        entry = await feedback.rate(run_id=traced.run_id, score=1.0, comment=None, author="ana")
    finally:
        release.set()
    assert len(sink.calls) == 1  # it did start
    assert not entry.sent and entry.attempts == 1 and entry.last_error == "TimeoutError"
