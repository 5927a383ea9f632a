"""Queueing outgoing messages inside a caller's transaction (the one way rows enter the outbox), and closing the
rows a template send covered."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from store.database import Connection, Work, in_list


async def insert_outbox(
    conn: Connection,
    *,
    wa_id: str,
    parts: Sequence[str],
    kind: str,
    now: datetime,
    inbound_message_id: int | None = None,
    template_variables: Mapping[str, str] | None = None,
    dedupe_key: str | None = None,
) -> list[int]:
    """Queue the parts of one message inside a caller's transaction; returns the new ids.

    With `dedupe_key`, a second insert of the same message is a no-op (returns no ids): retried work never sends
    twice.
    """
    if not parts:
        return []
    # One statement for every part: rows get their ids in the order of VALUES, which is the order they are sent in.
    params: dict[str, object] = {
        "wa_id": wa_id,
        "kind": kind,
        "variables": dict(template_variables) if template_variables is not None else None,
        "now": now,
        "inbound": inbound_message_id,
    }
    values = []
    for index, part in enumerate(parts):
        params[f"body{index}"] = part
        params[f"key{index}"] = None if dedupe_key is None else f"{dedupe_key}#{index}"
        values.append(
            f"(:wa_id, :body{index}, :kind, :variables, 'pending', 0, :now, :key{index}, :inbound, :now, :now)"
        )
    rows = await conn.fetch_all(
        "INSERT INTO outbox (wa_id, body, kind, template_variables, status, attempts, next_attempt_at, "
        f"dedupe_key, inbound_message_id, created_at, updated_at) VALUES {', '.join(values)} "
        "ON CONFLICT (dedupe_key) DO NOTHING RETURNING id",
        params,
    )
    ids = sorted(int(row["id"]) for row in rows)  # RETURNING promises no order
    if ids:
        await conn.notify(Work.DELIVERY)  # every worker's delivery loop looks at once, not at its next poll
    return ids


async def mark_covered(
    conn: Connection, covering: Sequence[int], *, by: int, template_sid: str | None, now: datetime
) -> None:
    """Inside a caller's transaction: the rows of a template group whose one send (row `by`) stood for them end
    'undeliverable' (their own text cannot go out), with a note naming that row. Only rows still waiting: one that
    somehow moved on keeps its own outcome."""
    note = f"covered by the template sent for row {by}"
    if not covering:
        return
    members, params = in_list(covering, "member")
    await conn.execute(
        "UPDATE outbox SET status = 'undeliverable', template_sid = :template, error_code = NULL, "
        f"error_message = :message, updated_at = :now WHERE id IN ({members}) AND status = 'pending'",
        {**params, "template": template_sid, "message": note, "now": now},
    )
