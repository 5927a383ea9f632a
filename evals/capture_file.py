"""The file `asistente eval capture` writes: a captured conversation as a scenario (`evals.scenario`) in YAML.

`seed` is the customer's appointments as they were before the conversation, `script` their turns, `events` the
calendar events a replay can play, and `expect` what happened: the appointments as the conversation left them, the
hand-off, the tools the model called. Every note a developer needs (what to correct, what the database cannot tell)
is a YAML comment next to what it is about, so the file loads with `evals.scenario` as written; what is left to
decide is marked TODO.
"""

from __future__ import annotations

import hashlib
import re
import textwrap
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from core.business import example_business
from core.quoting import one_line
from store.models import Appointment, Client

PROFILE_NAME = "Cliente"
_SCENARIO_ID = re.compile(r"^apt_[0-9a-f]{8}$")
_LANGUAGES = {"es": "Spanish", "en": "English"}
HEADER = """\
# TODO: one line saying what this scenario tests.
# Captured from the database by `asistente eval capture` (masked: fake address, names, phones, e-mails).
# Expectations = what happened; correct them into what SHOULD have happened:
# - `expect` is the store as the conversation left it and `tools` what the model called: review every line, and add
#   `facts` (what any good reply must convey, as any_of alternatives) and `absent` where they matter.
# - `tags`, `persona` and `goal` are guesses or TODO: write them so that a model can play this customer (--simulate).
# - Other clients' appointments are not copied (personal data); replays use the example salon
#   (business.example.yaml): every service must exist there.
# - No cassette yet (`asistente eval` fails this scenario until then): once corrected, record one with
#   `asistente eval --live --record {name}` (needs OPENAI_API_KEY), or write the model's answers in
#   evals/authoring/{name}.yaml and run `asistente eval author {name}`.
"""


@dataclass
class Entry:
    """One list entry of the file (a turn, an event, a seed) with comments above (`notes`) and below (`sent`).

    An entry without `fields` is written as its comments only (an event a replay cannot play)."""

    fields: dict[str, Any]
    at: datetime | None = None
    notes: list[str] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)
    refs: list[str] = field(default_factory=list)  # the ids its messages have in the customer's stored thread


def fake_address(wa_id: str) -> str:
    """A valid WhatsApp address that is not the customer's, the same each time for the same customer.

    Three digits of a hash: too few to tell anything about the number, enough to tell captured customers apart.
    """
    digits = int(hashlib.sha256(wa_id.encode()).hexdigest(), 16) % 1000
    return f"whatsapp:+34600000{digits:03d}"


def scenario_id(appointment_id: str) -> str:
    """The id as scenarios accept it (`apt_` and 8 hex digits): kept when it is one, else a stable stand-in."""
    if _SCENARIO_ID.match(appointment_id):
        return appointment_id
    return "apt_" + hashlib.sha256(appointment_id.encode()).hexdigest()[:8]


def cancelled_by(appointment: Appointment, moment: datetime | None) -> bool:
    """Whether the appointment was cancelled before `moment` (None: by now)."""
    if appointment.status != "cancelled":
        return False
    return moment is None or (appointment.cancelled_at or appointment.updated_at) < moment


def local_time(value: datetime, tz: ZoneInfo) -> str:
    """A wall-clock time in the business timezone, as scenarios write it."""
    return f"{value.astimezone(tz):%Y-%m-%dT%H:%M}"


def texts_of(turn: Entry) -> list[str]:
    """What the customer wrote in a script turn."""
    said = turn.fields.get("customer") or []
    return [said] if isinstance(said, str) else list(said)


def head(
    wa_id: str, start: datetime, tz: ZoneInfo, *, intent: str, language: str, client: Client | None, first: str
) -> dict[str, Any]:
    """Description, clock (the conversation's start in the business timezone), guessed tags, masked customer."""
    local = start.astimezone(tz).replace(microsecond=0)
    pairs = (("name", client.name), ("e-mail", client.email)) if client else ()
    on_file = [what for what, value in pairs if value]
    known = f"writes in {_LANGUAGES[language]}" + (
        f"; the salon had their {' and '.join(on_file)} on file (not copied)" if on_file else ""
    )
    return {
        "description": f"TODO: what this scenario tests (captured from a conversation of {local:%Y-%m-%d %H:%M}; "
        "its expectations are what happened, not what should have).",
        "now": local.isoformat(),
        "tags": {"intent": intent, "language": language, "difficulty": "medium", "extra": ["captured"]},
        "customer": {
            "wa_id": fake_address(wa_id),
            "profile_name": PROFILE_NAME,
            "persona": f"TODO: who they are and how they write, for a model playing them. Known: {known}.",
            "goal": "TODO: what they want, what they reveal only when asked (knows), when they are satisfied. "
            f"Their first message: «{one_line(first, limit=200)}»",
        },
    }


def guess_intent(
    appointments: Sequence[Appointment],
    start: datetime,
    cutoff: datetime | None,
    *,
    tools: Collection[str],
    handoff: bool,
    calendly: Collection[str],
) -> str:
    """The tag: hand-off, else what the conversation changed (or tried to) in the store: reschedule, cancel, book."""
    seeded = [a for a in appointments if a.created_at < start and not cancelled_by(a, start)]
    ours = [a for a in seeded if a.id not in calendly]  # a change made on Calendly is not the conversation's doing
    during = [a for a in ours if a.updated_at >= start and (cutoff is None or a.updated_at < cutoff)]
    if handoff:
        return "handoff"
    if "reschedule_appointment" in tools or any(a.status == "confirmed" for a in during):
        return "reschedule"
    if "cancel_appointment" in tools or any(cancelled_by(a, cutoff) for a in ours):
        return "cancel"
    booked = any(a.created_at >= start and (cutoff is None or a.created_at < cutoff) for a in appointments)
    return "book" if booked or "book_appointment" in tools else "info"


def seed_entries(
    appointments: Sequence[Appointment],
    start: datetime,
    tz: ZoneInfo,
    clean: Callable[[str], str],
    moved_from: Mapping[str, str],
) -> list[Entry]:
    """The appointments as they were before the conversation: those created before it, cancelled if they were then;
    one a captured Calendly move changed starts where it was before that move (`moved_from`)."""
    salon = example_business()
    seeds = []
    for a in (a for a in appointments if a.created_at < start):
        entry = Entry({"id": scenario_id(a.id), "service": a.service, "start": local_time(a.start_at, tz)})
        entry.fields |= {"source": a.source} if a.source != "agent" else {}
        if cancelled_by(a, start):
            entry.fields["status"] = "cancelled"
            entry.fields |= {"cancel_reason": clean(a.cancel_reason)} if a.cancel_reason else {}
        elif a.id in moved_from:
            entry.fields["start"] = moved_from[a.id]
            entry.notes.append("moved on Calendly during the conversation (see events): its start before the move")
        elif a.updated_at >= start and a.status == "confirmed":
            # The row keeps only its current start: a move during (or after) the conversation overwrote the old one.
            entry.notes.append("TODO: changed since the conversation began (moved?): `start` is today's; check it")
        if salon.find_service(a.service) is None:
            entry.notes.append("TODO: not a service of the example salon the replay uses: replace it")
        seeds.append(entry)
    return seeds


def expect_entry(
    appointments: Sequence[Appointment],
    start: datetime,
    cutoff: datetime | None,
    tz: ZoneInfo,
    *,
    handoff: bool,
    tools: list[str] | None,
) -> Entry:
    """What happened: the customer's appointments at their next activity after the window (or now), whether the
    conversation went to staff, and the tools the model called (None: not known)."""
    seeded = {a.id for a in appointments if a.created_at < start}
    changed = [a for a in appointments if not cancelled_by(a, start) and (cutoff is None or a.created_at < cutoff)]
    # Appointments booked during the conversation get new random ids at replay: only seeded ids can be named.
    final = [
        {"service": a.service, "start": local_time(a.start_at, tz)}
        | ({"status": "cancelled"} if cancelled_by(a, cutoff) else {})
        | ({"id": scenario_id(a.id)} if a.id in seeded else {})
        for a in changed
    ]
    expect = Entry({"appointments": final, "handoff": handoff, "not_sent": ["apt_"]})
    expect.notes.append("TODO: what happened, not what should have: correct appointments, handoff and tools")
    expect.notes.append("TODO: facts: [{any_of: [...]}] any good reply conveys; absent: what must not be booked")
    if tools is None:
        expect.notes.append(
            "TODO: tools: [...] (the calls a good model makes, in order): the customer's stored thread does not "
            "hold all these turns (trimmed since, or never stored)"
        )
    else:
        expect.fields["tools"] = tools
    return expect


def _dump(value: object) -> list[str]:
    # Lists at their key's indentation, as the shipped scenario files have them.
    text = yaml.safe_dump(value, allow_unicode=True, sort_keys=False, width=110)
    return text.splitlines()


def _comments(notes: Sequence[str], pad: str) -> list[str]:
    # One comment per note, wrapped to the width of the rest of the file.
    lines = []
    for note in notes:
        lines += textwrap.wrap(
            note, 116, initial_indent=f"{pad}# ", subsequent_indent=f"{pad}#   ", break_on_hyphens=False
        )
    return lines


def _listing(key: str, entries: Sequence[Entry], pad: str = "") -> list[str]:
    lines = [f"{pad}{key}:" if any(e.fields for e in entries) else f"{pad}{key}: []"]
    for entry in entries:
        lines += _comments(entry.notes, pad)
        lines += [f"{pad}{line}" for line in _dump([entry.fields])] if entry.fields else []
        lines += [f"{pad}#   {note}" for note in entry.sent]  # already one line each, cut to a width
    return lines


def render(
    head: dict[str, Any], seed: Sequence[Entry], script: Sequence[Entry], events: Sequence[Entry], expect: Entry
) -> str:
    """The YAML text, with what a developer needs to know as comments next to what it is about."""
    lines = [*_dump(head), "seed:", *_listing("appointments", seed, "  ")]
    lines += _listing("script", script) + _listing("events", events)
    lines += ["expect:", *_comments(expect.notes, "  "), *(f"  {line}" for line in _dump(expect.fields))]
    return "\n".join(lines) + "\n"
