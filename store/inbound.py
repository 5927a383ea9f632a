"""Inbound WhatsApp messages: stored first, deduplicated on Twilio's MessageSid, then processed by a worker."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from store.conversations import fence_lease, record_inbound_in, release_when_done_in
from store.database import Connection, Database, Work, in_list
from store.intake_status import IntakeRules, intake_status_in
from store.models import InboundMessage
from store.outbox_insert import insert_outbox
from store.waiting import redrive_failed_turns

_COLUMNS = (
    "id, message_sid, wa_id, profile_name, body, button_payload, media, raw, status, error, received_at, processed_at"
)


@dataclass(frozen=True)
class Answered:
    """What `InboundRepository.answer` recorded: the outbox rows queued, and whether the lease was given back."""

    outbox_ids: list[int]
    released: bool = False


class InboundRepository:
    """Reads and writes `inbound_messages`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def receive(
        self,
        *,
        message_sid: str,
        wa_id: str,
        body: str,
        received_at: datetime,
        profile_name: str | None = None,
        button_payload: str | None = None,
        media: list[dict[str, Any]] | None = None,
        raw: dict[str, Any] | None = None,
        status: str = "pending",
        rules: IntakeRules | None = None,
    ) -> InboundMessage | None:
        """Store a message and open the sender's 24-hour window in one transaction; None for a Twilio retry.

        Together, so a crash can never leave a stored message whose window was not recorded (the outbox would then
        refuse to answer it as free text). With `rules`, they decide the status in the same transaction (webhook
        intake: one transaction per message).
        """
        async with self._db.transaction() as conn:
            if rules is not None:
                status = await intake_status_in(conn, wa_id, rules)
            stored = await _insert(
                conn,
                message_sid=message_sid,
                wa_id=wa_id,
                body=body,
                received_at=received_at,
                profile_name=profile_name,
                button_payload=button_payload,
                media=media,
                raw=raw,
                status=status,
            )
            if stored is not None:
                await record_inbound_in(conn, wa_id, at=received_at)
        return stored

    async def get_by_sid(self, message_sid: str) -> InboundMessage | None:
        """The stored message with this MessageSid."""
        row = await self._db.fetch_one(
            f"SELECT {_COLUMNS} FROM inbound_messages WHERE message_sid = :sid", {"sid": message_sid}
        )
        return InboundMessage.model_validate(row) if row else None

    async def count_since(self, wa_id: str, since: datetime) -> int:
        """How many messages a sender has sent since a moment (for the per-sender rate limit)."""
        value = await self._db.fetch_value(
            "SELECT COUNT(*) AS n FROM inbound_messages WHERE wa_id = :wa_id AND received_at >= :since",
            {"wa_id": wa_id, "since": since},
        )
        return int(value or 0)

    async def for_conversation(self, wa_id: str, *, limit: int = 100) -> list[InboundMessage]:
        """A sender's most recent messages, oldest first."""
        rows = await self._db.fetch_all(
            f"SELECT {_COLUMNS} FROM inbound_messages WHERE wa_id = :wa_id ORDER BY id DESC LIMIT :limit",
            {"wa_id": wa_id, "limit": limit},
        )
        return [InboundMessage.model_validate(r) for r in reversed(rows)]

    async def open_for_conversation(self, wa_id: str, *, due_at: datetime | None = None) -> list[InboundMessage]:
        """Messages of one sender still to answer ('pending', or 'processing' left by a dead worker), oldest first.

        With `due_at`, none unless at least one is due then: messages waiting out a retry backoff are not retried
        early on their own, but a new message brings them into its turn (the customer is waiting anyway).
        Only call this while holding the conversation's lease: then no live worker owns a 'processing' row.
        """
        due = ""
        if due_at is not None:
            due = (
                "AND EXISTS (SELECT 1 FROM inbound_messages d WHERE d.wa_id = :wa_id "
                "AND d.status IN ('pending', 'processing') "
                "AND (d.next_attempt_at IS NULL OR d.next_attempt_at <= :due)) "
            )
        rows = await self._db.fetch_all(
            f"SELECT {_COLUMNS} FROM inbound_messages WHERE wa_id = :wa_id AND status IN ('pending', 'processing') "
            f"{due}ORDER BY id",
            {"wa_id": wa_id, "due": due_at} if due_at is not None else {"wa_id": wa_id},
        )
        return [InboundMessage.model_validate(r) for r in rows]

    async def mark(
        self, ids: Sequence[int], status: str, *, now: datetime | None = None, error: str | None = None
    ) -> int:
        """Move messages to `status` (with `processed_at` = now when given); returns how many changed."""
        if not ids:
            return 0
        placeholders, params = in_list(ids)
        return await self._db.execute(
            f"UPDATE inbound_messages SET status = :status, error = :error, "
            f"processed_at = COALESCE(:now, processed_at) WHERE id IN ({placeholders})",
            {**params, "status": status, "error": error, "now": now},
        )

    async def answer(
        self,
        ids: Sequence[int],
        *,
        wa_id: str,
        replies: Sequence[Sequence[str]],
        reply_to: int,
        now: datetime,
        owner: str | None = None,
        question_id: str | None = None,
        release_when_done: bool = False,
    ) -> Answered:
        """Queue a turn's replies and mark its messages processed in one transaction; returns the outbox ids, and
        whether `owner`'s lease was given back with them (`release_when_done`: when nothing else is due to run).

        With `question_id`, the last reply is the confirmation question: a single-part one is queued as kind
        'question' with the variables its quick-reply buttons need ({{1}} text, {{2}} the question's id).

        Either both happen or neither: a worker dying before the commit leaves the messages to be answered again,
        never answered twice (the dedupe key also stops a second commit for the same turn). With `owner`, the
        conversation's lease must still be that worker's, else nothing is written and `LeaseLost` is raised: a
        worker that lost its lease mid-turn must not answer over the one that took the conversation.
        """
        placeholders, params = in_list(ids)
        outbox_ids: list[int] = []
        async with self._db.transaction() as conn:
            if owner is not None:
                await fence_lease(conn, wa_id, owner=owner, now=now)
            for index, parts in enumerate(replies):
                is_question = question_id is not None and index == len(replies) - 1 and len(parts) == 1
                outbox_ids += await insert_outbox(
                    conn,
                    wa_id=wa_id,
                    parts=parts,
                    kind="question" if is_question else "reply",
                    now=now,
                    inbound_message_id=reply_to,
                    template_variables={"1": parts[0], "2": question_id or ""} if is_question else None,
                    dedupe_key=f"reply:{reply_to}:{index}",
                )
            await conn.execute(
                "UPDATE inbound_messages SET status = 'processed', error = NULL, processed_at = :now "
                f"WHERE id IN ({placeholders}) AND status IN ('pending', 'processing')",
                {**params, "now": now},
            )
            released = False
            if release_when_done and owner is not None:
                released = await release_when_done_in(conn, wa_id, owner=owner, now=now)
        return Answered(outbox_ids, released)

    async def retry_or_fail(
        self,
        ids: Sequence[int],
        *,
        wa_id: str,
        now: datetime,
        error: str,
        backoff: Sequence[timedelta],
        max_attempts: int,
        apology: Sequence[str],
        reply_to: int,
        owner: str | None = None,
    ) -> list[int]:
        """A turn over `ids` failed (e.g. the model provider is down): count the attempt and decide what comes next.

        Each message goes back to 'pending', due again after the backoff for its attempt count, until it has been in
        `max_attempts` failed turns; then it is 'failed' and `apology` (split parts; may be empty) is queued once for
        the turn, in the same transaction, so the customer is not left without any answer. Returns the ids failed for
        good. With `owner`, nothing is written unless the lease is still that worker's (`LeaseLost`).
        """
        if not ids:
            return []
        placeholders, params = in_list(ids)
        failed: list[int] = []
        async with self._db.transaction() as conn:
            if owner is not None:
                await fence_lease(conn, wa_id, owner=owner, now=now)
            rows = await conn.fetch_all(
                f"SELECT id, attempts FROM inbound_messages WHERE id IN ({placeholders}) "
                "AND status IN ('pending', 'processing')",
                params,
            )
            for row in rows:
                attempts = int(row["attempts"]) + 1
                if attempts >= max_attempts or not backoff:
                    failed.append(int(row["id"]))
                    await _set_retry_state(conn, int(row["id"]), "failed", attempts, None, error, now)
                else:
                    delay = backoff[min(attempts, len(backoff)) - 1]
                    await _set_retry_state(conn, int(row["id"]), "pending", attempts, now + delay, error, now)
            if failed and apology:
                await insert_outbox(
                    conn,
                    wa_id=wa_id,
                    parts=apology,
                    kind="system",
                    now=now,
                    inbound_message_id=reply_to,
                    dedupe_key=f"turn:customer:{reply_to}:unavailable",
                )
        return failed

    async def redrive_failed(self, *, now: datetime) -> int:
        """Make the turns waiting out a failure backoff due now (messages and system events); how many moved."""
        return await redrive_failed_turns(self._db, now=now)

    async def received_since(self, since: datetime) -> list[InboundMessage]:
        """Every message received since a moment, oldest first (for statistics)."""
        rows = await self._db.fetch_all(
            f"SELECT {_COLUMNS} FROM inbound_messages WHERE received_at >= :since ORDER BY id", {"since": since}
        )
        return [InboundMessage.model_validate(r) for r in rows]


async def _insert(
    conn: Connection,
    *,
    message_sid: str,
    wa_id: str,
    body: str,
    received_at: datetime,
    profile_name: str | None,
    button_payload: str | None,
    media: list[dict[str, Any]] | None,
    raw: dict[str, Any] | None,
    status: str,
) -> InboundMessage | None:
    row = await conn.fetch_one(
        "INSERT INTO inbound_messages "
        "(message_sid, wa_id, profile_name, body, button_payload, media, raw, status, received_at) "
        "VALUES (:sid, :wa_id, :profile_name, :body, :button_payload, :media, :raw, :status, :received_at) "
        f"ON CONFLICT (message_sid) DO NOTHING RETURNING {_COLUMNS}",
        {
            "sid": message_sid,
            "wa_id": wa_id,
            "profile_name": profile_name,
            "body": body,
            "button_payload": button_payload,
            "media": media or [],
            "raw": raw or {},
            "status": status,
            "received_at": received_at,
        },
    )
    if row is not None and status == "pending":
        await conn.notify(Work.TURN)  # a worker in another process runs it at once, not at its next poll
    return InboundMessage.model_validate(row) if row else None


async def _set_retry_state(
    conn: Connection, message_id: int, status: str, attempts: int, next_at: datetime | None, error: str, now: datetime
) -> None:
    await conn.execute(
        "UPDATE inbound_messages SET status = :status, attempts = :attempts, next_attempt_at = :next, "
        "error = :error, processed_at = :processed WHERE id = :id",
        {
            "id": message_id,
            "status": status,
            "attempts": attempts,
            "next": next_at,
            "error": error,
            # Only a final outcome is 'processed'; a message due for another try is still open.
            "processed": now if status == "failed" else None,
        },
    )
