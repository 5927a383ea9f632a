"""The outbox: every outgoing WhatsApp message is written here first, then delivered (and retried) by a worker."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta

from store.database import Database
from store.outbox_insert import insert_outbox, mark_covered
from store.outbox_message import OUTBOX_COLUMNS, OutboxMessage
from store.outbox_sending import (
    await_check,
    recorded_sids,
    redrive_waiting,
    requeue_stuck,
    settle_found,
    stuck_rows,
)
from store.outbox_status import apply_early_statuses, record_status


class OutboxRepository:
    """Reads and writes `outbox`. Claims are conditional updates, so several workers never send one row twice."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def enqueue(
        self,
        *,
        wa_id: str,
        parts: Sequence[str],
        kind: str,
        now: datetime,
        inbound_message_id: int | None = None,
        template_variables: Mapping[str, str] | None = None,
        dedupe_key: str | None = None,
    ) -> list[int]:
        """Queue the parts of one message in their own transaction; returns the new ids."""
        async with self._db.transaction() as conn:
            return await insert_outbox(
                conn,
                wa_id=wa_id,
                parts=parts,
                kind=kind,
                now=now,
                inbound_message_id=inbound_message_id,
                template_variables=template_variables,
                dedupe_key=dedupe_key,
            )

    async def get(self, outbox_id: int) -> OutboxMessage | None:
        """One outbox row."""
        row = await self._db.fetch_one(f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE id = :id", {"id": outbox_id})
        return OutboxMessage.model_validate(row) if row else None

    async def for_conversation(self, wa_id: str, *, limit: int = 200) -> list[OutboxMessage]:
        """A customer's most recent outgoing messages, oldest first."""
        rows = await self._db.fetch_all(
            f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE wa_id = :wa_id ORDER BY id DESC LIMIT :limit",
            {"wa_id": wa_id, "limit": limit},
        )
        return [OutboxMessage.model_validate(r) for r in reversed(rows)]

    async def created_since(self, since: datetime) -> list[OutboxMessage]:
        """Every row created since a moment (for statistics)."""
        rows = await self._db.fetch_all(
            f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE created_at >= :since ORDER BY id", {"since": since}
        )
        return [OutboxMessage.model_validate(r) for r in rows]

    async def due(self, *, now: datetime, limit: int = 50) -> list[OutboxMessage]:
        """Rows ready to send: pending, due, and the oldest open row of their customer (so parts keep their order)."""
        rows = await self._db.fetch_all(
            f"SELECT {OUTBOX_COLUMNS} FROM outbox o WHERE o.status = 'pending' AND o.next_attempt_at <= :now "
            "AND NOT EXISTS (SELECT 1 FROM outbox e WHERE e.wa_id = o.wa_id AND e.id < o.id "
            "AND e.status IN ('pending', 'sending')) ORDER BY o.id LIMIT :limit",
            {"now": now, "limit": limit},
        )
        return [OutboxMessage.model_validate(r) for r in rows]

    async def claim(self, outbox_id: int, *, now: datetime) -> bool:
        """Take a pending row for sending, recording when (before the request: recovery looks the message up from
        then on); false when another worker took it first."""
        changed = await self._db.execute(
            "UPDATE outbox SET status = 'sending', claimed_at = :now, updated_at = :now "
            "WHERE id = :id AND status = 'pending'",
            {"id": outbox_id, "now": now},
        )
        return changed == 1

    async def same_template_rows(self, row: OutboxMessage, *, within: timedelta) -> list[OutboxMessage]:
        """Other rows queued within `within` of `row` that would become exactly the same template request, by id.

        Outside the 24-hour window a row's text is replaced by its kind's template and the row's variables, so the
        parts of one split message, or two messages of one kind sent in one turn, all become the same request: same
        customer, kind, variables and originating turn (`inbound_message_id`). The time bound keeps a later message
        with the same variables (the next reminder of one appointment, hours later) out of the group.
        """
        inbound = "inbound_message_id IS NULL" if row.inbound_message_id is None else "inbound_message_id = :inbound"
        rows = await self._db.fetch_all(
            f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE wa_id = :wa_id AND kind = :kind AND id <> :id AND {inbound} "
            "AND created_at >= :start AND created_at <= :end ORDER BY id",
            {
                "wa_id": row.wa_id,
                "kind": row.kind,
                "id": row.id,
                "inbound": row.inbound_message_id,
                "start": row.created_at - within,
                "end": row.created_at + within,
            },
        )
        others = [OutboxMessage.model_validate(r) for r in rows]
        return [o for o in others if o.template_variables == row.template_variables]

    async def mark_sent(
        self,
        outbox_id: int,
        *,
        twilio_sid: str,
        now: datetime,
        template_sid: str | None = None,
        covering: Sequence[int] = (),
    ) -> OutboxMessage | None:
        """Twilio accepted the message (one more attempt recorded); apply any status callback that came first.

        Returns the row when such early callbacks were applied (so the caller can report, say, a failure), else None.

        Normally the row is 'sending'. If `requeue_stuck` reset it meanwhile (a slow send taken for a dead worker),
        the message still went out: a 'pending' row becomes 'sent' too, so it is not sent again, while a row already
        further on (another worker sent it again and its outcome is recorded) keeps its status and its own SID; the
        SID is stored only if the row has none. `covering` are the rows of the template group this one send stands
        for: they end 'undeliverable' (their own text cannot go out) with a note naming this row.
        """
        sent = (
            "UPDATE outbox SET "
            "status = CASE WHEN status IN ('pending', 'sending') THEN 'sent' ELSE status END, "
            "error_code = CASE WHEN status IN ('pending', 'sending') THEN NULL ELSE error_code END, "
            "error_message = CASE WHEN status IN ('pending', 'sending') THEN NULL ELSE error_message END, "
            "twilio_sid = COALESCE(twilio_sid, :sid), template_sid = COALESCE(:template, template_sid), "
            "attempts = attempts + 1, sent_at = COALESCE(sent_at, :now), updated_at = :now WHERE id = :id",
            {"id": outbox_id, "sid": twilio_sid, "template": template_sid, "now": now},
        )
        if not covering:
            await self._db.execute(*sent)  # one statement on its own: no transaction to open
        else:
            async with self._db.transaction() as conn:
                await conn.execute(*sent)
                await mark_covered(conn, covering, by=outbox_id, template_sid=template_sid, now=now)
        # After the commit, so a callback stored concurrently is seen either here or by `apply_status`'s re-check.
        return await apply_early_statuses(self._db, twilio_sid, now=now)

    async def schedule_retry(
        self,
        outbox_id: int,
        *,
        now: datetime,
        next_attempt_at: datetime,
        error_code: str | None,
        error_message: str,
        not_before: datetime | None = None,
    ) -> None:
        """A transient failure: back to pending, due again at `next_attempt_at` (one more attempt recorded).

        `not_before` is the moment Twilio's Retry-After named: a re-drive never brings the row forward past it.
        """
        await self._db.execute(
            "UPDATE outbox SET status = 'pending', attempts = attempts + 1, next_attempt_at = :next, "
            "retry_not_before = :not_before, error_code = :code, error_message = :message, updated_at = :now "
            "WHERE id = :id",
            {
                "id": outbox_id,
                "now": now,
                "next": next_attempt_at,
                "not_before": not_before,
                "code": error_code,
                "message": error_message,
            },
        )

    async def mark_failed(
        self,
        outbox_id: int,
        *,
        now: datetime,
        error_code: str | None,
        error_message: str,
        status: str = "failed",
        attempted: bool = True,
        covering: Sequence[int] = (),
    ) -> None:
        """A final failure ('failed'), or 'undeliverable' when WhatsApp's rules forbid sending it at all.

        `covering` are the rows of the template group whose one send failed for good: they fail with it (trying the
        same request once per row would only fail again).
        """
        async with self._db.transaction() as conn:
            await conn.execute(
                "UPDATE outbox SET status = :status, attempts = attempts + :attempted, error_code = :code, "
                "error_message = :message, updated_at = :now WHERE id = :id",
                {
                    "id": outbox_id,
                    "status": status,
                    "attempted": 1 if attempted else 0,
                    "code": error_code,
                    "message": error_message,
                    "now": now,
                },
            )
            for member in covering:
                await conn.execute(
                    "UPDATE outbox SET status = :status, error_code = :code, error_message = :message, "
                    "updated_at = :now WHERE id = :member AND status = 'pending'",
                    {
                        "member": member,
                        "status": status,
                        "code": error_code,
                        "message": f"the template for row {outbox_id} failed: {error_message}",
                        "now": now,
                    },
                )

    async def stuck(self, *, claimed_before: datetime) -> list[OutboxMessage]:
        """Rows still 'sending' under a claim older than `claimed_before` (a dead worker's, or an unanswered send)."""
        return await stuck_rows(self._db, claimed_before=claimed_before)

    async def settle_found(
        self,
        row: OutboxMessage,
        *,
        twilio_sid: str,
        now: datetime,
        template_sid: str | None = None,
        covering: Sequence[int] = (),
    ) -> OutboxMessage | None:
        """A stuck row whose message Twilio holds: sent, with that SID. Returns the row as it is afterwards (early
        status callbacks applied), or None when the row had moved on and nothing was changed."""
        settled = await settle_found(
            self._db, row, twilio_sid=twilio_sid, now=now, template_sid=template_sid, covering=covering
        )
        if not settled:
            return None
        # Twilio may have reported on the message while no row knew its SID (the worker had died).
        return await apply_early_statuses(self._db, twilio_sid, now=now) or await self.get(row.id)

    async def requeue_stuck(self, row: OutboxMessage, *, now: datetime) -> bool:
        """A stuck row whose message Twilio does not hold (or cannot tell): pending again, due now."""
        return await requeue_stuck(self._db, row, now=now)

    async def await_check(self, outbox_id: int, *, now: datetime, error_code: str | None, message: str) -> None:
        """A send with no answer: the row stays 'sending', so recovery asks Twilio before it goes again."""
        await await_check(self._db, outbox_id, now=now, error_code=error_code, message=message)

    async def recorded_sids(self, sids: Collection[str]) -> set[str]:
        """Which of these Twilio SIDs some row records."""
        return await recorded_sids(self._db, sids)

    async def redrive(self, *, now: datetime) -> int:
        """Rows waiting out a transient backoff become due now (not past a Retry-After); how many."""
        return await redrive_waiting(self._db, now=now)

    async def apply_status(
        self, twilio_sid: str, *, status: str, now: datetime, error_code: str | None, error_message: str | None
    ) -> OutboxMessage | None:
        """Record a delivery status reported by Twilio. Never downgrades a status.

        Twilio can call back before `mark_sent` has stored the SID (the callback races the create response). Such a
        callback is kept in `outbox_early_status` and applied when the SID is recorded; None is returned then.
        """
        return await record_status(
            self._db, twilio_sid, status=status, now=now, error_code=error_code, error_message=error_message
        )
