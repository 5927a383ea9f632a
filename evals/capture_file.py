"""The file `asistente eval capture` writes: what a captured conversation looks like in the dataset's YAML.

`seed` is the customer's appointments as they were before the first turn, `expect` as the conversation left them;
every note a developer needs (what to check, what the database cannot tell) is a YAML comment next to what it is
about, so the file still loads with `evals.dataset` as written, and what is left to decide is marked TODO.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from core.business import example_business
from store.models import Appointment, Client

PROFILE_NAME = "Cliente"
_DATASET_ID = re.compile(r"^apt_[0-9a-f]{8}$")
HEADER = """\
# Captured from the database by `asistente eval capture` (masked: fake address, names, phones, e-mails).
# expected state = what happened; correct it to what SHOULD have happened.
# - `expect` is the appointments as the conversation left them, not as they should be: review every line.
# - tool_calls, replies and send_whatsapp are not in the database: add them (see the TODO below) if they matter.
# - Each message is one turn here, even when production folded several into one turn.
# - No cassette yet: once corrected, record one with `asistente eval {name} --record` (needs OPENAI_API_KEY);
#   until then `asistente eval` fails this conversation.
# - Replays use the example salon (business.example.yaml): every service must exist there.
"""


@dataclass
class Entry:
    """One list entry of the file (a turn or a seed) with comments above (`notes`) and below (`sent`)."""

    fields: dict[str, Any]
    at: datetime | None = None
    notes: list[str] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)


def fake_address(wa_id: str) -> str:
    """A valid WhatsApp address that is not the customer's, the same each time for the same customer.

    Three digits of a hash: too few to tell anything about the number, enough to tell captured customers apart.
    """
    digits = int(hashlib.sha256(wa_id.encode()).hexdigest(), 16) % 1000
    return f"whatsapp:+34600000{digits:03d}"


def dataset_id(appointment_id: str) -> str:
    """The id as the dataset accepts it (`apt_` and 8 hex digits): kept when it is one, else a stable stand-in."""
    if _DATASET_ID.match(appointment_id):
        return appointment_id
    return "apt_" + hashlib.sha256(appointment_id.encode()).hexdigest()[:8]


def cancelled_by(appointment: Appointment, moment: datetime | None) -> bool:
    """Whether the appointment was cancelled before `moment` (None: by now)."""
    if appointment.status != "cancelled":
        return False
    return moment is None or (appointment.cancelled_at or appointment.updated_at) < moment


def local_time(value: datetime, tz: ZoneInfo) -> str:
    """A wall-clock time in the business timezone, as the dataset writes it."""
    return f"{value.astimezone(tz):%Y-%m-%dT%H:%M}"


def head(wa_id: str, start: datetime, tz: ZoneInfo) -> dict[str, Any]:
    """The description, the clock (the first turn's time, in the business timezone) and the masked customer."""
    local = start.astimezone(tz).replace(microsecond=0)
    return {
        "description": f"Captured conversation of {local:%Y-%m-%d %H:%M}: expected state = what happened, "
        "to be corrected into what should have happened.",
        "now": local.isoformat(),
        "customer": {"wa_id": fake_address(wa_id), "profile_name": PROFILE_NAME},
    }


def seed_entries(
    appointments: Sequence[Appointment], start: datetime, tz: ZoneInfo, clean: Callable[[str], str]
) -> list[Entry]:
    """The appointments as they were before the first turn: those created before it, cancelled if they were then."""
    salon = example_business()
    seeds = []
    for a in (a for a in appointments if a.created_at < start):
        entry = Entry({"id": dataset_id(a.id), "service": a.service, "start": local_time(a.start_at, tz)})
        entry.fields |= {"source": a.source} if a.source != "agent" else {}
        if cancelled_by(a, start):
            entry.fields["status"] = "cancelled"
            entry.fields |= {"cancel_reason": clean(a.cancel_reason)} if a.cancel_reason else {}
        elif a.updated_at >= start and a.status == "confirmed":
            # The row keeps only its current start: a move during (or after) the conversation overwrote the old one.
            entry.notes.append("TODO: changed since the conversation began (moved?): `start` is today's; check it")
        if salon.find_service(a.service) is None:
            entry.notes.append("TODO: not a service of the example salon the replay uses: replace it")
        seeds.append(entry)
    return seeds


def expect_entry(
    client: Client | None, appointments: Sequence[Appointment], start: datetime, cutoff: datetime | None, tz: ZoneInfo
) -> Entry:
    """The appointments as the conversation left them: at the customer's next activity after the window, or now."""
    final = [a for a in appointments if cutoff is None or a.created_at < cutoff]
    seeded = {a.id for a in appointments if a.created_at < start}
    confirmed = [
        {"service": a.service, "start": local_time(a.start_at, tz)}
        | ({"id": dataset_id(a.id)} if a.id in seeded else {})
        for a in final
        if not cancelled_by(a, cutoff)
    ]
    expect = Entry({"confirmed": confirmed})
    expect.notes.append("TODO: tool_calls: [...]  (the tools the agent should call, in order; not in the database)")
    # Appointments booked during the conversation get new random ids at replay: only seeded ids can be named.
    if any(cancelled_by(a, cutoff) and a.id not in seeded for a in final):
        expect.notes.append(
            "TODO: an appointment booked and then cancelled here gets a new id at replay, so `cancelled` is left "
            "out; add it back (seeded ids only) if it matters"
        )
    else:
        expect.fields["cancelled"] = [dataset_id(a.id) for a in final if cancelled_by(a, cutoff)]
    expect.fields["confirmation_before_write"] = True
    language = client.language if client else None
    expect.fields |= {"language": language} if language in ("es", "en") else {}
    return expect


class _Dumper(yaml.SafeDumper):
    """Lists indented under their key, as the hand-written conversation files have them."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _dump(value: object) -> list[str]:
    text = yaml.dump(value, Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=110)
    return text.splitlines()


def _listing(key: str, entries: Sequence[Entry]) -> list[str]:
    lines = [f"{key}:" if entries else f"{key}: []"]
    for entry in entries:
        lines += [f"  # {note}" for note in entry.notes]
        lines += [f"  {line}" for line in _dump([entry.fields])]
        lines += [f"  #   {note}" for note in entry.sent]
    return lines


def render(head: dict[str, Any], seed: Sequence[Entry], turns: Sequence[Entry], expect: Entry) -> str:
    """The YAML text, with what a developer needs to know as comments next to what it is about."""
    lines = _dump(head) + _listing("seed", seed) + _listing("turns", turns)
    lines += ["expect:", *(f"  # {note}" for note in expect.notes), *(f"  {line}" for line in _dump(expect.fields))]
    return "\n".join(lines) + "\n"
