"""Calendar happenings of a captured conversation (the customer's system turns, the reminders sent to them) as
scenario events: a Calendly cancellation or move of a seeded appointment, or a reminder of one. Anything else (a
booking made on Calendly, a change of an appointment booked during the conversation, a system turn no event kind
expresses) becomes a TODO comment instead.

The Calendly system turn is read back from its text, which the webhook rendered from `prompts/events/*.j2`; the
templates are matched as they are rendered today, so a changed wording is still recognised.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from agent.event_texts import calendly_event_description
from core.quoting import one_line
from evals.capture_file import Entry, scenario_id
from store.database import Database, in_list, parse_datetime

# The facts we write into each Calendly system turn ourselves (agent/event_texts.py): the rest is its data block.
_CALENDLY_FACTS = {
    "calendly_cancelled": ("appointment_id", "when"),
    "calendly_moved": ("appointment_id", "old_when", "when"),
    "calendly_booked": ("appointment_id", "when"),
}


@dataclass(frozen=True)
class Occurrence:
    """Something that reached the conversation besides the customer: a system turn (`description`, the text the
    model read; `ref`, its id in the thread) or a reminder sent for the appointment `reminded`."""

    at: datetime
    description: str | None = None
    reminded: str | None = None
    ref: str | None = None


async def happenings(
    db: Database, wa_id: str, appointment_ids: Sequence[str], since: datetime | None, end: datetime
) -> list[Occurrence]:
    """The customer's system turns (Calendly changes) and the reminders sent for their appointments, in order."""
    params: dict[str, object] = {"wa_id": wa_id, "since": since, "end": end}
    lower = " AND {col} >= :since" if since is not None else ""
    events = await db.fetch_all(
        "SELECT id, description, created_at AS at FROM system_events WHERE wa_id = :wa_id AND created_at <= :end"
        + lower.format(col="created_at")
        + " ORDER BY created_at, id",
        params,
    )
    found = [Occurrence(_when(e["at"]), description=str(e["description"]), ref=f"event:{e['id']}") for e in events]
    if appointment_ids:
        marks, ids = in_list(appointment_ids)
        reminders = await db.fetch_all(
            f"SELECT appointment_id, sent_at AS at FROM reminders WHERE appointment_id IN ({marks}) "
            "AND status = 'sent' AND sent_at <= :end" + lower.format(col="sent_at"),
            {**params, **ids},
        )
        found += [Occurrence(_when(r["at"]), reminded=str(r["appointment_id"])) for r in reminders]
    return sorted(found, key=lambda happened: happened.at)


def _when(value: object) -> datetime:
    parsed = parse_datetime(value)
    assert parsed is not None  # every column read with it is NOT NULL
    return parsed


@cache
def _calendly_pattern(template: str) -> re.Pattern[str]:
    # The template rendered with markers where our facts go, and an empty data block: the text each event has.
    facts = _CALENDLY_FACTS[template]
    pattern = re.escape(calendly_event_description(template, **{k: f"@@{k}@@" for k in facts}))
    pattern = pattern.replace(re.escape("{}"), r"(?P<data>\{.*\})")
    for key in facts:
        pattern = pattern.replace(re.escape(f"@@{key}@@"), f"(?P<{key}>.+?)")
    return re.compile(pattern + r"\Z", re.DOTALL)


def parse_calendly(description: str) -> tuple[str, dict[str, str], dict[str, Any]] | None:
    """A Calendly system turn's template, our facts (appointment id, times) and its data block; None for another
    text."""
    for template, own in _CALENDLY_FACTS.items():
        match = _calendly_pattern(template).match(description)
        if match is not None:
            data = json.loads(match.group("data"))
            facts = {key: match.group(key) for key in own}
            return template, facts, data if isinstance(data, dict) else {}
    return None


def calendly_local(when: str) -> str:
    """'2026-11-26 10:00 (Europe/Madrid)', as the webhook words a time, as scenarios write it."""
    # The wall-clock time the webhook wrote in the business timezone (named after it): no offset, as scenarios want.
    return f"{datetime.fromisoformat(when[:16]):%Y-%m-%dT%H:%M}"


def event_entry(happened: Occurrence, after_turn: int, seeded: Collection[str], clean: Callable[[str], str]) -> Entry:
    """The scenario event a replay plays for it, or (when the schema cannot express it) a TODO comment only."""
    entry = Entry({}, happened.at, refs=[happened.ref] if happened.ref else [])
    event, dropped = _event(happened, seeded, clean)
    if event is not None:
        entry.fields = {"after_turn": after_turn, "event": event}
    else:
        entry.notes.append(f"TODO: not replayed (after turn {after_turn}): {dropped}")
    return entry


def _event(
    happened: Occurrence, seeded: Collection[str], clean: Callable[[str], str]
) -> tuple[dict[str, Any] | None, str]:
    if happened.reminded is not None:
        if happened.reminded in seeded:
            return {"kind": "reminder", "appointment": scenario_id(happened.reminded)}, ""
        return None, "a reminder of an appointment made after the scenario starts (a replay gives it another id)"
    parsed = parse_calendly(happened.description or "")
    if parsed is None:
        text = one_line(clean(happened.description or ""), limit=120)
        return None, f"a system turn that no scenario event expresses: {text}"
    template, facts, data = parsed
    appointment = facts["appointment_id"]
    if template == "calendly_booked":
        return None, (
            "a booking made on Calendly, which no scenario event expresses (seed it, or add a slot_taken event if "
            "only the slot matters)"
        )
    if appointment not in seeded:
        return None, "a Calendly change of an appointment made after the scenario starts (a replay gives it another id)"
    if template == "calendly_moved":
        return {
            "kind": "calendly_moved",
            "appointment": scenario_id(appointment),
            "to": calendly_local(facts["when"]),
        }, ""
    reason = {"reason": clean(str(data["reason"]))} if data.get("reason") else {}
    # Who cancelled is a name someone typed on Calendly: not copied, only whether it was the customer.
    who = "invitee" if data.get("who") == "invitee" else "host"
    return {"kind": "calendly_cancelled", "appointment": scenario_id(appointment), **reason, "canceler_type": who}, ""


def moved_from(happenings: Sequence[Occurrence], seeded: Collection[str]) -> dict[str, str]:
    """Where each seeded appointment a captured Calendly move changed was before its first such move (the row
    keeps only where it is now)."""
    before: dict[str, str] = {}
    for happened in happenings:
        parsed = parse_calendly(happened.description or "")
        if parsed is not None and parsed[0] == "calendly_moved" and parsed[1]["appointment_id"] in seeded:
            before.setdefault(parsed[1]["appointment_id"], calendly_local(parsed[1]["old_when"]))
    return before


def changed_on_calendly(happenings: Sequence[Occurrence]) -> set[str]:
    """The appointments Calendly events changed in the window: those changes are not the conversation's doing."""
    parsed = (parse_calendly(happened.description or "") for happened in happenings)
    return {found[1]["appointment_id"] for found in parsed if found is not None}
