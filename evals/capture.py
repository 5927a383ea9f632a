"""`asistente eval capture`: a real conversation from the database as a scenario (`evals.scenario`) to correct.

The file says what happened: the clock at the start (`now`), the customer's appointments as they were before it
(`seed`), their turns (`script`, messages the worker folded into one turn as one list), the calendar events a replay
can play (`events`), and `expect`: the appointments as the conversation left them, whether it went to staff, and the
tools the model called (read from the customer's stored thread). A developer corrects `expect` into what *should*
have happened and records the cassette; a bad production conversation is then an eval. Nothing personal is written:
a fake WhatsApp address, a generic profile name, every text through `core.masking`, no other client's appointments,
and a file name hashed from the masked content.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from agent.language import detect_language
from core.addresses import parse_whatsapp_address, phone_of
from core.masking import Masker
from core.quoting import one_line
from evals.capture_events import changed_on_calendly, event_entry, happenings, moved_from
from evals.capture_file import (
    HEADER,
    Entry,
    expect_entry,
    guess_intent,
    head,
    render,
    scenario_id,
    seed_entries,
    texts_of,
)
from evals.capture_thread import handed_off, thread_tools
from evals.scenario import Scenario
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
    """A captured conversation: its suggested name, the file's text, and the file as `evals.scenario` reads it."""

    name: str
    text: str
    scenario: Scenario


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
    """The target's conversation in the window as a scenario file, validated by `evals.scenario` before returning.

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
    # The customer's own appointments only: other clients' are personal data, and are not copied.
    appointments = await AppointmentRepository(db).for_client(client.id, include_cancelled=True) if client else []
    clean = _cleaner(masker, {a.id: scenario_id(a.id) for a in appointments})
    turns = (await _turns(db, wa_id, since, end, masker, clean))[-(window.last or 0) :]
    if not turns:
        raise CaptureError(_NOTHING)
    happened = await happenings(db, wa_id, [a.id for a in appointments], _at(turns[0]) if window.last else since, end)
    start = min([_at(turns[0]), *(h.at for h in happened)])
    cutoff = await _activity(db, wa_id, "MIN", "{col} > :at", end)
    seeded = {a.id for a in appointments if a.created_at < start}
    # An event arriving with a message runs first (the worker's order): it follows only the turns begun before it.
    events = [event_entry(h, sum(_at(t) < h.at for t in turns), seeded, clean) for h in happened]
    await _attach_sent(db, wa_id, sorted([*events, *turns], key=_at), start, cutoff, clean)
    tools = await thread_tools(db, wa_id, [*turns, *(e for e in events if e.fields)])
    handoff = await handed_off(db, wa_id, start, cutoff) or "handoff_to_staff" in (tools or [])
    said = [text for turn in turns for text in texts_of(turn)]
    known = client.language if client and client.language in ("es", "en") else detect_language(" ".join(said))
    intent = guess_intent(
        appointments, start, cutoff, tools=tools or [], handoff=handoff, calendly=changed_on_calendly(happened)
    )
    first = "\n".join(texts_of(turns[0])) or str(turns[0].fields.get("button", ""))
    body = render(
        head(wa_id, start, tz, intent=intent, language=known or "es", client=client, first=first),
        seed_entries(appointments, start, tz, clean, moved_from(happened, seeded)),
        turns,
        events,
        expect_entry(appointments, start, cutoff, tz, handoff=handoff, tools=tools),
    )
    _refuse_leaks(body, wa_id, client)
    name = "captured_" + hashlib.sha256(body.encode()).hexdigest()[:8]
    text = HEADER.format(name=name) + body
    return Captured(name, text, Scenario.model_validate({"name": name, **yaml.safe_load(text)}))


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
    """The customer's turns as the worker ran them: the messages it read, those of one turn folded together."""
    lower = " AND received_at >= :since" if since is not None else ""
    rows = await db.fetch_all(
        "SELECT message_sid, profile_name, body, button_payload, media, status, received_at AS at, processed_at "
        f"FROM inbound_messages WHERE wa_id = :wa_id AND received_at <= :end{lower} ORDER BY received_at, id",
        {"wa_id": wa_id, "since": since, "end": end},
    )
    # Every name the customer went by, before any text is masked.
    masker.remember_names(*(str(m["profile_name"]) for m in rows if m["profile_name"]))
    groups: list[list[dict[str, Any]]] = []
    for row in (r for r in rows if r["status"] not in _UNREAD):
        # The worker marks the messages it folded into one turn processed together, at one moment.
        folded = parse_datetime(row["processed_at"])
        if groups and folded is not None and folded == parse_datetime(groups[-1][-1]["processed_at"]):
            groups[-1].append(row)
        else:
            groups.append([row])
    turns: list[Entry] = []
    carried: list[str] = []  # notes of a turn with nothing a replay can send (media only), for the next one
    for group in groups:
        turn = _turn(group, clean)
        if turn.fields:
            turn.notes[:0], carried = carried, []
            turns.append(turn)
        else:
            carried += turn.notes
    return turns


def _turn(group: Sequence[dict[str, Any]], clean: Callable[[str], str]) -> Entry:
    texts: list[str] = []
    notes: list[str] = []
    button: str | None = None
    for message in group:
        body, payload = clean(str(message["body"] or "")), message["button_payload"]
        if body.strip():
            texts.append(body)
        if payload and body.strip():
            # The payload names a production question, which a replay asks under another id: the label is what
            # the gate reads when no payload matches, as it would for typed words.
            notes.append(f"a quick-reply button ({str(payload).partition(':')[0]}) in production: written as its label")
        elif payload:
            button = str(payload)  # ours (the buttons we sent), never typed by the customer: kept as it is
            if button.startswith("confirm:"):
                notes.append(
                    "TODO: this button confirms a production question; a replay asks under another id, so it will "
                    'not confirm: write the customer\'s words instead (customer: "Sí") if the confirmation matters'
                )
        if message["media"] not in (None, "", "[]", []):
            notes.append("the customer attached media here (not captured)")
    said: dict[str, Any] = {"customer": texts[0] if len(texts) == 1 else texts} if texts else {}
    fields = said | ({"button": button} if button else {})
    return Entry(fields, _moment(group[0]["at"]), notes, refs=[f"wa:{m['message_sid']}" for m in group])


async def _attach_sent(
    db: Database,
    wa_id: str,
    items: Sequence[Entry],
    start: datetime,
    cutoff: datetime | None,
    clean: Callable[[str], str],
) -> None:
    """What went out to the customer, masked, as comments under the turn or event it followed: what went wrong is
    there."""
    bound = " AND created_at < :cutoff" if cutoff is not None else ""
    rows = await db.fetch_all(
        f"SELECT body, kind, created_at AS at FROM outbox WHERE wa_id = :wa_id AND created_at >= :start{bound} "
        "ORDER BY created_at, id",
        {"wa_id": wa_id, "start": start, "cutoff": cutoff},
    )
    for row in rows:
        owner = [item for item in items if _at(item) <= _moment(row["at"])][-1]
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
    assert entry.at is not None  # turns and events always carry their time
    return entry.at


def _refuse_leaks(text: str, wa_id: str, client: Client | None) -> None:
    """A last check that masking caught the customer's own number and e-mail; the file is not written otherwise."""
    number = phone_of(wa_id).removeprefix("+")
    national = number[2:] if number.startswith("34") else number
    email = (client.email or "").strip().lower() if client else ""
    if national in re.sub(r"[\s.\-()]", "", text) or (email and email in text.lower()):
        raise CaptureError("the customer's number or e-mail survived masking; nothing written (please report this)")
