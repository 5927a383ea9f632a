"""Each run of a turn, as traced: which LangSmith run answered which customer messages or system event.

A turn is ('customer', id of the first inbound message it folded) or ('system', system_events.id). A turn that
failed is run again from the start, as a new run under a new run id; of a turn's runs, the latest one that did not
fail is "the turn's run" (the latest failed one when all failed). Staff name a turn by what they see: a customer's
message (its MessageSid) or a message the turn sent (its outbox id); the lookups here turn either into that run.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator

from store.database import Connection, Database, parse_json

TurnKind = Literal["customer", "system"]

_COLUMNS = "run_id, trace_id, wa_id, kind, turn_ref, message_sids, outcome, appointment_ids, created_at"
# A turn's preferred run first: one that did not fail, then the latest.
_PREFERRED_FIRST = "ORDER BY CASE WHEN outcome = 'failed' THEN 1 ELSE 0 END, created_at DESC, run_id DESC"
# What `server.pipeline.outbox.TurnScope` and `store.outbox_insert` key a turn's n-th message (i-th part) with.
_TURN_DEDUPE_KEY = re.compile(r"^turn:(customer|system):(\d+):\d+#\d+$")


class TurnRun(BaseModel):
    """One run of a turn, recorded with the id of its LangSmith root run."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    trace_id: str
    wa_id: str
    kind: TurnKind
    turn_ref: int
    message_sids: list[str] = []
    outcome: str
    appointment_ids: list[str] = []
    created_at: datetime

    @field_validator("run_id", "trace_id", mode="before")
    @classmethod
    def _uuid(cls, value: object) -> object:
        # One spelling (lower case, hyphens) so a run id pasted from LangSmith's UI or given as a UUID matches.
        return str(uuid.UUID(str(value))) if isinstance(value, str | uuid.UUID) else value

    @field_validator("message_sids", "appointment_ids", mode="before")
    @classmethod
    def _json(cls, value: object) -> object:
        return parse_json(value) if value is not None else []


def turn_of_dedupe_key(dedupe_key: str | None) -> tuple[TurnKind, int] | None:
    """The turn an outbox dedupe key names (`turn:<kind>:<ref>:<n>#<i>`), or None for any other key."""
    match = _TURN_DEDUPE_KEY.match(dedupe_key or "")
    if match is None:
        return None
    kind: TurnKind = "customer" if match.group(1) == "customer" else "system"
    return kind, int(match.group(2))


class TurnRunRepository:
    """Reads and writes `turn_runs`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def record(self, run: TurnRun) -> TurnRun:
        """Store `run`; recording the same run id again (a run recorded as it starts and again as it ends) updates
        its outcome, messages and appointments and keeps the rest as first written. Returns the stored run."""
        params = run.model_dump()
        params["message_sids"] = list(run.message_sids)
        params["appointment_ids"] = list(run.appointment_ids)
        row = await self._db.fetch_one(
            f"INSERT INTO turn_runs ({_COLUMNS}) VALUES (:run_id, :trace_id, :wa_id, :kind, :turn_ref, "
            ":message_sids, :outcome, :appointment_ids, :created_at) ON CONFLICT (run_id) DO UPDATE SET "
            "outcome = excluded.outcome, message_sids = excluded.message_sids, "
            f"appointment_ids = excluded.appointment_ids RETURNING {_COLUMNS}",
            params,
        )
        assert row is not None
        return TurnRun.model_validate(row)

    async def get(self, run_id: str) -> TurnRun | None:
        """The run recorded under `run_id` (any spelling of the UUID), if any."""
        try:
            canonical = str(uuid.UUID(run_id))
        except ValueError:
            return None
        row = await self._db.fetch_one(
            f"SELECT {_COLUMNS} FROM turn_runs WHERE run_id = :run_id", {"run_id": canonical}
        )
        return TurnRun.model_validate(row) if row else None

    async def for_turn(self, kind: TurnKind, ref: int) -> TurnRun | None:
        """The turn's run: of its runs, the latest that did not fail (the latest failed one when all failed)."""
        async with self._db.transaction() as conn:
            return await _preferred(conn, kind, ref)

    async def for_message_sid(self, message_sid: str) -> TurnRun | None:
        """The run of the customer turn that folded the inbound message `message_sid`, if it was traced.

        Turns of one customer fold consecutive messages, so the only turn that can hold message M is the one that
        starts at the greatest turn ref at or below M's id; it holds M when it starts with M or lists M's sid
        (checked here in Python, not with a JSON match, so both engines agree). None when M's turn was not traced.
        """
        async with self._db.transaction() as conn:
            message = await conn.fetch_one(
                "SELECT id, wa_id FROM inbound_messages WHERE message_sid = :sid", {"sid": message_sid}
            )
            if message is None:
                return None
            return await _folding(conn, int(message["id"]), str(message["wa_id"]), message_sid)

    async def for_outbox(self, outbox_id: int) -> TurnRun | None:
        """The run of the turn that queued outbox row `outbox_id`: named by its dedupe key; for a row queued outside
        a turn in answer to a customer message (a holding or failure notice), the turn that folded that message."""
        async with self._db.transaction() as conn:
            row = await conn.fetch_one(
                "SELECT o.dedupe_key, o.inbound_message_id, m.wa_id, m.message_sid FROM outbox AS o "
                "LEFT JOIN inbound_messages AS m ON m.id = o.inbound_message_id WHERE o.id = :id",
                {"id": outbox_id},
            )
            if row is None:
                return None
            turn = turn_of_dedupe_key(row["dedupe_key"])
            if turn is not None:
                return await _preferred(conn, *turn)
            if row["inbound_message_id"] is None:
                return None
            return await _folding(conn, int(row["inbound_message_id"]), str(row["wa_id"]), str(row["message_sid"]))

    async def latest_for(self, wa_id: str) -> TurnRun | None:
        """The customer's most recent run (of any turn, failed or not)."""
        runs = await self.for_customer(wa_id, limit=1)
        return runs[0] if runs else None

    async def for_customer(self, wa_id: str, *, limit: int = 50) -> list[TurnRun]:
        """The customer's most recent runs, newest first."""
        rows = await self._db.fetch_all(
            f"SELECT {_COLUMNS} FROM turn_runs WHERE wa_id = :wa_id ORDER BY created_at DESC, run_id DESC LIMIT :limit",
            {"wa_id": wa_id, "limit": limit},
        )
        return [TurnRun.model_validate(r) for r in rows]


async def _preferred(conn: Connection, kind: TurnKind, ref: int) -> TurnRun | None:
    row = await conn.fetch_one(
        f"SELECT {_COLUMNS} FROM turn_runs WHERE kind = :kind AND turn_ref = :ref {_PREFERRED_FIRST} LIMIT 1",
        {"kind": kind, "ref": ref},
    )
    return TurnRun.model_validate(row) if row else None


async def _folding(conn: Connection, message_id: int, wa_id: str, message_sid: str) -> TurnRun | None:
    """The preferred run of the customer turn that folded message `message_id` (see `for_message_sid`)."""
    rows = await conn.fetch_all(
        f"SELECT {_COLUMNS} FROM turn_runs WHERE kind = 'customer' AND wa_id = :wa_id AND turn_ref = ("
        "SELECT MAX(turn_ref) FROM turn_runs WHERE kind = 'customer' AND wa_id = :wa_id AND turn_ref <= :id"
        f") {_PREFERRED_FIRST}",
        {"wa_id": wa_id, "id": message_id},
    )
    runs = [TurnRun.model_validate(r) for r in rows]
    if not any(run.turn_ref == message_id or message_sid in run.message_sids for run in runs):
        return None
    return runs[0]
