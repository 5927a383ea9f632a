"""Feedback on a turn's run (staff ratings, automatic signals), stored before it is sent to LangSmith.

A row is written first and sent afterwards, so nothing is lost while LangSmith is unreachable or the process dies
mid-send. Each row carries the id LangSmith is given (`feedback_id`): sending it again after a lost answer names the
same feedback instead of adding a second one. A sender claims a row (counting the attempt, and holding it from other
senders for a while) before sending it, so two processes never send one row at the same time.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from store.database import Database

FeedbackSource = Literal["staff", "system"]

_COLUMNS = (
    "id, run_id, key, score, comment, source, author, feedback_id, created_at, sent_at, attempts, next_attempt_at, "
    "last_error"
)
# The longest error text kept (a client's message can hold a whole response body).
MAX_ERROR_CHARS = 500


class FeedbackEntry(BaseModel):
    """One piece of feedback on a run, and whether LangSmith has it yet."""

    model_config = ConfigDict(frozen=True)

    id: int
    run_id: str
    key: str
    score: float | None = None
    comment: str | None = None
    source: FeedbackSource
    author: str | None = None
    feedback_id: str
    created_at: datetime
    sent_at: datetime | None = None
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = None

    @property
    def sent(self) -> bool:
        """Whether LangSmith accepted it."""
        return self.sent_at is not None


class FeedbackRepository:
    """Reads and writes `turn_feedback`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(
        self,
        *,
        run_id: str,
        key: str,
        score: float | None,
        comment: str | None,
        source: FeedbackSource,
        author: str | None,
        now: datetime,
        feedback_id: str | None = None,
        not_before: datetime | None = None,
    ) -> FeedbackEntry:
        """Store feedback on `run_id` (a recorded run), unsent. With `feedback_id` (default: a new UUID), adding
        feedback under an id already stored changes nothing and returns the stored row: a signal raised twice for
        one run, under an id derived from both, is kept once. `not_before` keeps maintenance passes from sending it
        before then (the caller is about to send it itself)."""
        fid = feedback_id or str(uuid.uuid4())
        async with self._db.transaction() as conn:
            await conn.execute(
                "INSERT INTO turn_feedback (run_id, key, score, comment, source, author, feedback_id, created_at, "
                "next_attempt_at) VALUES (:run_id, :key, :score, :comment, :source, :author, :fid, :now, :not_before) "
                "ON CONFLICT (feedback_id) DO NOTHING",
                {
                    "run_id": run_id,
                    "key": key,
                    "score": score,
                    "comment": comment,
                    "source": source,
                    "author": author,
                    "fid": fid,
                    "now": now,
                    "not_before": not_before,
                },
            )
            row = await conn.fetch_one(f"SELECT {_COLUMNS} FROM turn_feedback WHERE feedback_id = :fid", {"fid": fid})
        assert row is not None
        return FeedbackEntry.model_validate(row)

    async def get(self, entry_id: int) -> FeedbackEntry | None:
        """The row `entry_id`, if any."""
        row = await self._db.fetch_one(f"SELECT {_COLUMNS} FROM turn_feedback WHERE id = :id", {"id": entry_id})
        return FeedbackEntry.model_validate(row) if row else None

    async def for_run(self, run_id: str) -> list[FeedbackEntry]:
        """Every piece of feedback on `run_id`, oldest first."""
        rows = await self._db.fetch_all(
            f"SELECT {_COLUMNS} FROM turn_feedback WHERE run_id = :run_id ORDER BY id", {"run_id": run_id}
        )
        return [FeedbackEntry.model_validate(r) for r in rows]

    async def unsent(
        self, limit: int = 50, *, max_attempts: int | None = None, due_at: datetime | None = None
    ) -> list[FeedbackEntry]:
        """Rows not sent yet, oldest first: with `max_attempts`, only those tried fewer times (the rest were given
        up); with `due_at`, only those whose next attempt is due by then (not waiting, not in flight elsewhere)."""
        conditions = ["sent_at IS NULL"]
        params: dict[str, object] = {"limit": limit}
        if max_attempts is not None:
            conditions.append("attempts < :max_attempts")
            params["max_attempts"] = max_attempts
        if due_at is not None:
            conditions.append("(next_attempt_at IS NULL OR next_attempt_at <= :due)")
            params["due"] = due_at
        rows = await self._db.fetch_all(
            f"SELECT {_COLUMNS} FROM turn_feedback WHERE {' AND '.join(conditions)} ORDER BY id LIMIT :limit", params
        )
        return [FeedbackEntry.model_validate(r) for r in rows]

    async def claim(self, entry: FeedbackEntry, *, hold_until: datetime) -> bool:
        """Take `entry` for one send attempt, counted now (so a process dying mid-send still uses one up) and kept
        from other senders until `hold_until`; False when it was sent or claimed by someone else since it was read."""
        changed = await self._db.execute(
            "UPDATE turn_feedback SET attempts = attempts + 1, next_attempt_at = :hold "
            "WHERE id = :id AND sent_at IS NULL AND attempts = :seen",
            {"id": entry.id, "hold": hold_until, "seen": entry.attempts},
        )
        return changed > 0

    async def mark_sent(self, entry_id: int, now: datetime) -> None:
        """LangSmith accepted the row."""
        await self._db.execute(
            "UPDATE turn_feedback SET sent_at = :now, next_attempt_at = NULL, last_error = NULL WHERE id = :id",
            {"id": entry_id, "now": now},
        )

    async def mark_failed(self, entry_id: int, error: str, *, retry_at: datetime) -> None:
        """A send attempt failed with `error` (kept, shortened); the next one is due at `retry_at`."""
        await self._db.execute(
            "UPDATE turn_feedback SET last_error = :error, next_attempt_at = :retry WHERE id = :id AND sent_at IS NULL",
            {"id": entry_id, "error": error[:MAX_ERROR_CHARS], "retry": retry_at},
        )
