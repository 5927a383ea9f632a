"""The outbox: every outgoing WhatsApp message is written here first, then delivered (and retried) by a worker."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from store.database import Database
from store.outbox_insert import insert_outbox
from store.outbox_message import OUTBOX_COLUMNS, OutboxMessage
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
        """Take a pending row for sending; false when another worker took it first."""
        changed = await self._db.execute(
            "UPDATE outbox SET status = 'sending', updated_at = :now WHERE id = :id AND status = 'pending'",
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

        Normally the row is 'sending'. If `recover_stuck` reset it meanwhile (a slow send taken for a dead worker),
        the message still went out: a 'pending' row becomes 'sent' too, so it is not sent again, while a row already
        further on (another worker sent it again and its outcome is recorded) keeps its status and its own SID; the
        SID is stored only if the row has none. `covering` are the rows of the template group this one send stands
        for: they end 'undeliverable' (their own text cannot go out) with a note naming this row.
        """
        async with self._db.transaction() as conn:
            await conn.execute(
                "UPDATE outbox SET "
                "status = CASE WHEN status IN ('pending', 'sending') THEN 'sent' ELSE status END, "
                "error_code = CASE WHEN status IN ('pending', 'sending') THEN NULL ELSE error_code END, "
                "error_message = CASE WHEN status IN ('pending', 'sending') THEN NULL ELSE error_message END, "
                "twilio_sid = COALESCE(twilio_sid, :sid), template_sid = COALESCE(:template, template_sid), "
                "attempts = attempts + 1, sent_at = COALESCE(sent_at, :now), updated_at = :now WHERE id = :id",
                {"id": outbox_id, "sid": twilio_sid, "template": template_sid, "now": now},
            )
            for member in covering:
                # Only rows still waiting: one that somehow moved on keeps its own outcome.
                await conn.execute(
                    "UPDATE outbox SET status = 'undeliverable', template_sid = :template, error_code = NULL, "
                    "error_message = :message, updated_at = :now WHERE id = :member AND status = 'pending'",
                    {
                        "member": member,
                        "template": template_sid,
                        "message": f"covered by the template sent for row {outbox_id}",
                        "now": now,
                    },
                )
        # After the commit, so a callback stored concurrently is seen either here or by `apply_status`'s re-check.
        return await apply_early_statuses(self._db, twilio_sid, now=now)

    async def schedule_retry(
        self, outbox_id: int, *, now: datetime, next_attempt_at: datetime, error_code: str | None, error_message: str
    ) -> None:
        """A transient failure: back to pending, due again at `next_attempt_at` (one more attempt recorded)."""
        await self._db.execute(
            "UPDATE outbox SET status = 'pending', attempts = attempts + 1, next_attempt_at = :next, "
            "error_code = :code, error_message = :message, updated_at = :now WHERE id = :id",
            {"id": outbox_id, "now": now, "next": next_attempt_at, "code": error_code, "message": error_message},
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

    async def recover_stuck(self, *, before: datetime, now: datetime) -> int:
        """Rows left 'sending' by a worker that died before recording the outcome go back to pending."""
        return await self._db.execute(
            "UPDATE outbox SET status = 'pending', next_attempt_at = :now, updated_at = :now "
            "WHERE status = 'sending' AND updated_at < :before",
            {"before": before, "now": now},
        )

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
