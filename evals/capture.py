"""`asistente eval capture`: a real conversation from the database as a recorded-conversation file to correct.

The file says what happened: the clock at the first message (`now`), the customer's appointments as they were
before it (`seed`), their messages and the calendar events the agent was told about (`turns`), and the appointments
as the conversation left them (`expect`). A developer corrects `expect` into what *should* have happened and records
the cassette; a bad production conversation is then an eval. Nothing personal is written: a fake WhatsApp address,
a generic profile name, every text through `core.masking`, and a file name hashed from the masked content.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from core.addresses import parse_whatsapp_address, phone_of
from core.masking import Masker
from core.quoting import one_line
from evals.capture_file import HEADER, Entry, dataset_id, expect_entry, head, render, seed_entries
from evals.dataset import Conversation
from store.appointments import AppointmentRepository
from store.clients import ClientRepository
from store.database import Database, parse_datetime
from store.models import Client
from store.turn_runs import TurnRunRepository

DEFAULT_SPAN = timedelta(hours=24)
# Messages the agent never read: held while staff had the conversation, or refused by the rate limit.
_UNREAD = ("rate_limited", "paused")
_NOTE_WIDTH = 160
_NOTHING = "no messages from that customer in the window; widen it (--since, --until, --last)"


class CaptureError(Exception):
    """Capture cannot go on (unknown customer or run, nothing in the window); one line, no personal data."""


@dataclass(frozen=True)
class Window:
    """Which part of a customer's history to capture: inclusive bounds, and at most the `last` N turns."""

    since: datetime | None = None
    until: datetime | None = None
    last: int | None = None


@dataclass(frozen=True)
class Captured:
    """A captured conversation: its suggested name, the file's text, and the file as `evals.dataset` reads it."""

    name: str
    text: str
    conversation: Conversation


async def resolve_target(db: Database, target: str, window: Window) -> tuple[str, Window]:
    """The customer's WhatsApp address, and the window (a run id ends it at that run's turn unless --until)."""
    try:
        run_id = uuid.UUID(target.strip())
    except ValueError:
        run_id = None
    if run_id is not None:
        run = await TurnRunRepository(db).get(str(run_id))
        if run is None:
            raise CaptureError(f"no turn with run id {run_id} in the database (table turn_runs)")
        # A run is recorded as its turn starts, after the worker read the turn's messages: they are all before it.
        return run.wa_id, replace(window, until=window.until or run.created_at)
    try:
        return parse_whatsapp_address(target, require_plus=False), window
    except ValueError:
        raise CaptureError(
            "TARGET must be a customer's WhatsApp number (whatsapp:+34…, +34… or 34…) or a LangSmith run id (a UUID)"
        ) from None


async def capture(db: Database, target: str, *, tz: ZoneInfo, window: Window | None = None) -> Captured:
    """The target's conversation in the window as a dataset file, validated by `evals.dataset` before returning.

    By default the window is the 24 hours before the customer's last message (or before the run's turn).
    """
    wa_id, window = await resolve_target(db, target, window or Window())
    client = await ClientRepository(db).get(wa_id)
    end = await _activity(db, wa_id, "MAX", "{col} <= :at", window.until)
    if end is None:
        raise CaptureError("no customer with that WhatsApp number in the database" if client is None else _NOTHING)
    since = window.since if window.since is not None or window.last else end - DEFAULT_SPAN
    masker = Masker()
    masker.remember_names(*(client.name, client.profile_name) if client else ())
    appointments = await AppointmentRepository(db).for_client(client.id, include_cancelled=True) if client else []
    clean = _cleaner(masker, {a.id: dataset_id(a.id) for a in appointments})
    turns = (await _turns(db, wa_id, since, end, masker, clean))[-(window.last or 0) :]
    if not turns:
        raise CaptureError(_NOTHING)
    start = _at(turns[0])
    cutoff = await _activity(db, wa_id, "MIN", "{col} > :at", end)
    await _attach_sent(db, wa_id, turns, cutoff, clean)
    body = render(
        head(wa_id, start, tz),
        seed_entries(appointments, start, tz, clean),
        turns,
        expect_entry(client, appointments, start, cutoff, tz),
    )
    _refuse_leaks(body, wa_id, client)
    name = "captured_" + hashlib.sha256(body.encode()).hexdigest()[:8]
    text = HEADER.format(name=name) + body
    return Captured(name, text, Conversation.model_validate({"name": name, **yaml.safe_load(text)}))


async def _activity(db: Database, wa_id: str, pick: str, condition: str, at: datetime | None) -> datetime | None:
    """The latest (MAX) or earliest (MIN) time a message or event of the customer arrived, matching `condition`."""
    found = []
    for table, col in (("inbound_messages", "received_at"), ("system_events", "created_at")):
        where = f" AND {condition.format(col=col)}" if at is not None else ""
        value = await db.fetch_value(
            f"SELECT {pick}({col}) FROM {table} WHERE wa_id = :wa_id{where}", {"wa_id": wa_id, "at": at}
        )
        found.append(parse_datetime(value))
    moments = [m for m in found if m is not None]
    return (max if pick == "MAX" else min)(moments) if moments else None


async def _turns(
    db: Database, wa_id: str, since: datetime | None, end: datetime, masker: Masker, clean: Callable[[str], str]
) -> list[Entry]:
    """Messages the agent read and system events, in the order the worker runs them (an event first on a tie)."""
    params = {"wa_id": wa_id, "since": since, "end": end}
    lower = " AND {col} >= :since" if since is not None else ""
    messages = await db.fetch_all(
        "SELECT id, profile_name, body, button_payload, media, status, received_at AS at FROM inbound_messages "
        "WHERE wa_id = :wa_id AND received_at <= :end" + lower.format(col="received_at"),
        params,
    )
    events = await db.fetch_all(
        "SELECT id, description, created_at AS at FROM system_events WHERE wa_id = :wa_id AND created_at <= :end"
        + lower.format(col="created_at"),
        params,
    )
    # Every name the customer went by, before any text is masked.
    masker.remember_names(*(str(m["profile_name"]) for m in messages if m["profile_name"]))
    ordered: list[tuple[datetime, int, int, Entry]] = []
    for event in events:
        at = _moment(event["at"])
        ordered.append((at, 0, int(event["id"]), Entry({"system": clean(str(event["description"]))}, at)))
    for message in messages:
        if message["status"] not in _UNREAD:
            at = _moment(message["at"])
            ordered.append((at, 1, int(message["id"]), _message(at, message, clean)))
    return [entry for *_, entry in sorted(ordered, key=lambda row: row[:3])]


def _message(at: datetime, message: dict[str, Any], clean: Callable[[str], str]) -> Entry:
    body = clean(str(message["body"] or ""))
    payload = message["button_payload"]
    entry = Entry({"customer": body} if body or not payload else {}, at)
    if payload:
        # Quick-reply payloads are ours (the buttons we sent), never typed by the customer: kept as they are.
        entry.fields["button"] = str(payload)
        if str(payload).startswith("confirm:"):
            entry.notes.append(
                "TODO: this button confirms a production question; a replay asks under another id, so it will not "
                'confirm: write the customer\'s words instead (customer: "Sí") if the confirmation matters'
            )
    if message["media"] not in (None, "", "[]", []):
        entry.notes.append("the customer attached media here (not captured)")
    return entry


async def _attach_sent(
    db: Database, wa_id: str, turns: list[Entry], cutoff: datetime | None, clean: Callable[[str], str]
) -> None:
    """What went out to the customer, masked, as comments under the turn it followed: what went wrong is there."""
    bound = " AND created_at < :cutoff" if cutoff is not None else ""
    rows = await db.fetch_all(
        f"SELECT body, kind, created_at AS at FROM outbox WHERE wa_id = :wa_id AND created_at >= :start{bound} "
        "ORDER BY created_at, id",
        {"wa_id": wa_id, "start": _at(turns[0]), "cutoff": cutoff},
    )
    for row in rows:
        owner = [turn for turn in turns if _at(turn) <= _moment(row["at"])][-1]
        owner.sent.append(f"sent ({row['kind']}): {one_line(clean(str(row['body'])), limit=_NOTE_WIDTH)}")


def _cleaner(masker: Masker, ids: dict[str, str]) -> Callable[[str], str]:
    """Texts as written to the file: appointment ids as in the seed, personal data masked."""
    renamed = {original: kept for original, kept in ids.items() if original != kept}

    def clean(value: str) -> str:
        for original, kept in renamed.items():
            value = value.replace(original, kept)
        return masker.mask_text(value)

    return clean


def _moment(value: object) -> datetime:
    parsed = parse_datetime(value)
    assert parsed is not None  # every column read with it is NOT NULL
    return parsed


def _at(entry: Entry) -> datetime:
    assert entry.at is not None  # turns always carry their time
    return entry.at


def _refuse_leaks(text: str, wa_id: str, client: Client | None) -> None:
    """A last check that masking caught the customer's own number and e-mail; the file is not written otherwise."""
    number = phone_of(wa_id).removeprefix("+")
    national = number[2:] if number.startswith("34") else number
    email = (client.email or "").strip().lower() if client else ""
    if national in re.sub(r"[\s.\-()]", "", text) or (email and email in text.lower()):
        raise CaptureError("the customer's number or e-mail survived masking; nothing written (please report this)")
