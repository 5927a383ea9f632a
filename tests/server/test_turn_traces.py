"""Which signals a finished or failed turn raises, and on which run (the stores are real, the sink records)."""

from __future__ import annotations

import uuid
from datetime import datetime

from agent.api import TurnResult
from core.clock import FixedClock
from server.pipeline.feedback import FeedbackPublisher
from server.pipeline.turn_traces import TurnTraces
from store import Database
from store.feedback import FeedbackEntry, FeedbackRepository
from store.turn_runs import TurnRunRepository

WA_ID = "whatsapp:+34600123456"


class RecordingSink:
    def __init__(self) -> None:
        self.sent: list[FeedbackEntry] = []

    def send(self, entry: FeedbackEntry) -> None:
        self.sent.append(entry)


def run_id() -> str:
    return str(uuid.uuid4())


async def signals(db: Database) -> set[tuple[str, str]]:
    rows = await db.fetch_all("SELECT run_id, key FROM turn_feedback WHERE source = 'system'")
    return {(str(r["run_id"]), str(r["key"])) for r in rows}


async def test_each_signal_lands_on_the_run_it_is_about(db: Database, now: datetime) -> None:
    clock = FixedClock(now)
    runs = TurnRunRepository(db)
    sink = RecordingSink()
    traces = TurnTraces(runs, FeedbackPublisher(FeedbackRepository(db), runs, sink, clock), clock)

    answered = run_id()
    await traces.finished(WA_ID, "customer", 1, TurnResult(replies=("Abrimos a las 10.",), run_id=answered))
    # The next turn fails once, then succeeds: the customer repeated themselves and then said no to the question.
    failed = run_id()
    await traces.failed(WA_ID, "customer", 2, failed, message_sids=["SM2"])
    retried = run_id()
    result = TurnResult(
        run_id=retried, repeated=True, rejected_confirmation=True, budget_exhausted="model_calls", outcome="cut_short"
    )
    await traces.finished(WA_ID, "customer", 2, result, message_sids=["SM2"])
    handed = run_id()
    await traces.finished(WA_ID, "customer", 3, TurnResult(run_id=handed, outcome="handed_off"))

    assert await signals(db) == {
        (failed, "turn_failed"),
        (answered, "customer_repeated"),  # the answer before, not the failed attempt of the same turn
        (retried, "rejected_confirmation"),
        (retried, "budget_exhausted"),
        (handed, "handoff"),
    }
    assert sink.sent == []  # stored for the maintenance pass: a turn never waits on LangSmith
    assert await FeedbackPublisher(FeedbackRepository(db), runs, sink, clock).publish_pending() == 5
    stored = {r["run_id"]: r["outcome"] for r in await db.fetch_all("SELECT run_id, outcome FROM turn_runs")}
    assert stored == {answered: "answered", failed: "failed", retried: "cut_short", handed: "handed_off"}


async def test_an_untraced_turn_records_nothing(db: Database, now: datetime) -> None:
    clock = FixedClock(now)
    runs = TurnRunRepository(db)
    traces = TurnTraces(runs, FeedbackPublisher(FeedbackRepository(db), runs, None, clock), clock)
    await traces.finished(WA_ID, "customer", 1, TurnResult(outcome="handed_off"))
    await traces.failed(WA_ID, "customer", 1, None)
    assert await db.fetch_value("SELECT count(*) FROM turn_runs") == 0
