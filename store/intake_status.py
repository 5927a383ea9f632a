"""The status a new WhatsApp message is stored with, decided in the transaction that stores it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from store.database import Connection


@dataclass(frozen=True)
class IntakeRules:
    """A message is held ('paused') while staff has the conversation, refused an answer ('rate_limited') once its
    sender has sent `limit` messages since `since`, and otherwise waits for the worker ('pending')."""

    limit: int
    since: datetime


async def intake_status_in(conn: Connection, wa_id: str, rules: IntakeRules) -> str:
    """Inside the caller's transaction (before the new message is written): the status `rules` give it."""
    row = await conn.fetch_one(
        "SELECT (SELECT paused FROM conversations WHERE wa_id = :wa_id) AS paused, "
        "(SELECT COUNT(*) FROM inbound_messages WHERE wa_id = :wa_id AND received_at >= :since) AS recent",
        {"wa_id": wa_id, "since": rules.since},
    )
    assert row is not None  # a SELECT without FROM always returns its one row
    if row["paused"]:
        return "paused"
    return "rate_limited" if int(row["recent"]) >= rules.limit else "pending"
