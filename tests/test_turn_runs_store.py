"""Turn runs and feedback rows on both engines: which run a message or an outgoing message belongs to, and feedback
that is stored before it is sent."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import psycopg
import pytest

from store import Database, IntegrityConflict
from store.feedback import FeedbackRepository
from store.inbound import InboundRepository
from store.outbox_insert import insert_outbox
from store.turn_runs import TurnKind, TurnRun, TurnRunRepository, turn_of_dedupe_key

ANA = "whatsapp:+34600000001"
LUIS = "whatsapp:+34600000002"


def run(
    kind: TurnKind,
    ref: int,
    at: datetime,
    *,
    wa_id: str = ANA,
    sids: list[str] | None = None,
    outcome: str = "answered",
) -> TurnRun:
    return TurnRun(
        run_id=str(uuid.uuid4()),
        trace_id=str(uuid.uuid4()),
        wa_id=wa_id,
        kind=kind,
        turn_ref=ref,
        message_sids=sids or [],
        outcome=outcome,
        appointment_ids=[],
        created_at=at,
    )


async def message(db: Database, sid: str, at: datetime, wa_id: str = ANA) -> int:
    stored = await InboundRepository(db).receive(message_sid=sid, wa_id=wa_id, body="hola", received_at=at)
    assert stored is not None
    return stored.id


async def queued(db: Database, now: datetime, *, key: str | None = None, inbound: int | None = None) -> int:
    async with db.transaction() as conn:
        [row_id] = await insert_outbox(
            conn, wa_id=ANA, parts=["Hecho"], kind="reply", now=now, inbound_message_id=inbound, dedupe_key=key
        )
    return row_id


async def test_a_run_round_trips_and_recording_it_again_updates_only_its_outcome(db: Database, now: datetime) -> None:
    runs = TurnRunRepository(db)
    first = run("customer", 7, now, sids=["SM1", "SM2"], outcome="asked_to_confirm")
    stored = await runs.record(first)
    assert stored == first
    # Recorded again as it ends (later, with what it did): outcome and appointments change, the rest stays.
    ended = first.model_copy(
        update={"outcome": "booked", "appointment_ids": ["apt-1"], "created_at": now + timedelta(1)}
    )
    again = await runs.record(ended)
    assert again.outcome == "booked" and again.appointment_ids == ["apt-1"] and again.created_at == now
    assert await db.fetch_value("SELECT COUNT(*) AS n FROM turn_runs") == 1
    # Any spelling of the UUID finds it; anything else finds nothing (and never reaches the database as garbage).
    assert await runs.get(first.run_id.upper()) == again
    assert await runs.get("not-a-uuid") is None
    assert await runs.get(str(uuid.uuid4())) is None


async def test_a_retried_turn_is_its_latest_run_that_did_not_fail(db: Database, now: datetime) -> None:
    runs = TurnRunRepository(db)
    failed = await runs.record(run("customer", 5, now, outcome="failed"))
    assert await runs.for_turn("customer", 5) == failed  # all runs failed: the latest failed one
    answered = await runs.record(run("customer", 5, now + timedelta(minutes=1), outcome="answered"))
    # A later failed run (cut off after the turn had answered) does not displace the run that answered.
    await runs.record(run("customer", 5, now + timedelta(minutes=2), outcome="failed"))
    assert await runs.for_turn("customer", 5) == answered
    assert await runs.for_turn("system", 5) is None


async def test_a_message_belongs_to_the_traced_turn_that_folded_it_and_to_no_other(db: Database, now: datetime) -> None:
    runs = TurnRunRepository(db)
    m1 = await message(db, "SMa1", now)
    await message(db, "SMa2", now + timedelta(seconds=1))  # folded into m1's turn
    other = await message(db, "SMb1", now + timedelta(seconds=2), wa_id=LUIS)
    m3 = await message(db, "SMa3", now + timedelta(seconds=3))
    m4 = await message(db, "SMa4", now + timedelta(seconds=4))  # its turn was never traced
    await runs.record(run("customer", m1, now, sids=["SMa1"], outcome="failed"))
    first_turn = await runs.record(run("customer", m1, now + timedelta(seconds=5), sids=["SMa1", "SMa2"]))
    third_turn = await runs.record(run("customer", m3, now + timedelta(seconds=6), sids=["SMa3"]))
    luis_turn = await runs.record(run("customer", other, now, wa_id=LUIS, sids=["SMb1"]))

    assert await runs.for_message_sid("SMa1") == first_turn
    assert await runs.for_message_sid("SMa2") == first_turn
    assert await runs.for_message_sid("SMb1") == luis_turn  # between Ana's turns, but Luis's
    assert await runs.for_message_sid("SMa3") == third_turn
    # The turn starting nearest below m4 is m3's, but it does not hold m4: the check on its messages is what stops
    # m4's rating landing on the wrong turn.
    assert third_turn.turn_ref < m4
    assert await runs.for_message_sid("SMa4") is None
    assert await runs.for_message_sid("SMunknown") is None


async def test_a_run_with_no_message_list_still_owns_the_message_it_started_with(db: Database, now: datetime) -> None:
    runs = TurnRunRepository(db)
    m1 = await message(db, "SMc1", now)
    started = await runs.record(run("customer", m1, now))
    assert await runs.for_message_sid("SMc1") == started


async def test_an_outgoing_message_belongs_to_the_turn_that_queued_it(db: Database, now: datetime) -> None:
    runs = TurnRunRepository(db)
    m1 = await message(db, "SMd1", now)
    m2 = await message(db, "SMd2", now + timedelta(seconds=1))
    customer_turn = await runs.record(run("customer", m1, now, sids=["SMd1", "SMd2"]))
    system_turn = await runs.record(run("system", 42, now))
    reply = await queued(db, now, key=f"turn:customer:{m1}:1", inbound=m1)
    notice = await queued(db, now, key="turn:system:42:0")
    holding = await queued(db, now, inbound=m2)  # no turn key: a notice answering m2, outside any turn
    admin = await queued(db, now)

    assert await runs.for_outbox(reply) == customer_turn
    assert await runs.for_outbox(notice) == system_turn
    assert await runs.for_outbox(holding) == customer_turn
    assert await runs.for_outbox(admin) is None
    assert await runs.for_outbox(999_999) is None


def test_only_turn_keys_name_a_turn() -> None:
    assert turn_of_dedupe_key("turn:customer:12:0#1") == ("customer", 12)
    assert turn_of_dedupe_key("turn:system:3:2#0") == ("system", 3)
    for other in (None, "", "reminder:apt-1:24", "turn:staff:1:0#0", "turn:customer:x:0#0", "turn:customer:1:0"):
        assert turn_of_dedupe_key(other) is None


async def test_a_customers_runs_newest_first(db: Database, now: datetime) -> None:
    runs = TurnRunRepository(db)
    older = await runs.record(run("customer", 1, now))
    newer = await runs.record(run("system", 2, now + timedelta(minutes=1)))
    await runs.record(run("customer", 3, now + timedelta(minutes=2), wa_id=LUIS))
    assert await runs.for_customer(ANA, limit=10) == [newer, older]
    assert await runs.for_customer(ANA, limit=1) == [newer]
    assert await runs.latest_for(ANA) == newer
    assert await runs.latest_for("whatsapp:+34699999999") is None


async def test_feedback_is_stored_unsent_and_claimed_by_one_sender_at_a_time(db: Database, now: datetime) -> None:
    runs, feedback = TurnRunRepository(db), FeedbackRepository(db)
    traced = await runs.record(run("customer", 1, now))
    entry = await feedback.add(
        run_id=traced.run_id, key="staff_rating", score=0.5, comment="Bien", source="staff", author="ana", now=now
    )
    assert (entry.score, entry.comment, entry.author, entry.sent, entry.attempts) == (0.5, "Bien", "ana", False, 0)
    assert uuid.UUID(entry.feedback_id)
    assert await feedback.unsent() == [entry]

    hold = now + timedelta(minutes=1)
    assert await feedback.claim(entry, hold_until=hold) is True
    assert await feedback.claim(entry, hold_until=hold) is False  # read before the first claim: someone else has it
    # In flight until `hold`: not due for another sender before then.
    assert await feedback.unsent(due_at=now + timedelta(seconds=59)) == []
    await feedback.mark_failed(entry.id, "ConnectError: " + "x" * 2000, retry_at=now + timedelta(minutes=5))
    assert await feedback.unsent(due_at=now + timedelta(minutes=4)) == []
    [failed] = await feedback.unsent(due_at=now + timedelta(minutes=5))
    assert failed.attempts == 1 and failed.last_error is not None and len(failed.last_error) == 500
    assert await feedback.unsent(max_attempts=1) == []  # given up after one attempt

    assert await feedback.claim(failed, hold_until=hold) is True
    await feedback.mark_sent(entry.id, now + timedelta(minutes=2))
    sent = await feedback.get(entry.id)
    assert sent is not None and sent.sent and sent.last_error is None and sent.attempts == 2
    assert sent.next_attempt_at is None
    assert await feedback.unsent() == []
    assert await feedback.for_run(traced.run_id) == [sent]


async def test_feedback_under_a_known_id_is_kept_once_and_only_for_a_recorded_run(db: Database, now: datetime) -> None:
    runs, feedback = TurnRunRepository(db), FeedbackRepository(db)
    traced = await runs.record(run("customer", 1, now))
    fid = str(uuid.uuid4())
    first = await feedback.add(
        run_id=traced.run_id,
        key="handoff",
        score=0.0,
        comment=None,
        source="system",
        author=None,
        now=now,
        feedback_id=fid,
    )
    again = await feedback.add(
        run_id=traced.run_id,
        key="handoff",
        score=0.0,
        comment=None,
        source="system",
        author=None,
        now=now,
        feedback_id=fid,
    )
    assert again == first
    assert await db.fetch_value("SELECT COUNT(*) AS n FROM turn_feedback") == 1
    # Refused by the foreign key (SQLite reports it as a conflict, PostgreSQL as what it is).
    with pytest.raises((IntegrityConflict, psycopg.errors.ForeignKeyViolation)):
        await feedback.add(
            run_id=str(uuid.uuid4()), key="handoff", score=0.0, comment=None, source="system", author=None, now=now
        )
