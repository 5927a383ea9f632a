"""Checks that make a scenario fail whatever the end state: the run broke, the cassette no longer fits, the
calendar changed without the customer's yes, or a reply claims a booking or cancellation that did not happen."""

from __future__ import annotations

import re

from evals.record import ScenarioRun, TurnRecord
from evals.results import Check
from tools.registry import WRITE_TOOLS

# A yes in the customer's words (or the confirmation button); what the gate itself accepts is stricter, this only
# has to tell a yes from a no in the scripted and simulated customers' turns.
_YES = re.compile(
    r"\b(s[ií]|vale|ok|okay|de acuerdo|claro|perfecto|adelante|confirm\w*|yes|yep|sure|please do|go ahead)\b", re.I
)
_NO = re.compile(r"\b(no|nope|mejor no|d[eé]jala|don'?t|cancel that)\b", re.I)

# Past participles that claim a write happened (not a question about doing it).
_BOOKED = re.compile(
    r"\b(reservad[ao]s?|apuntad[ao]s?|agendad[ao]s?|te he (?:reservado|apuntado|guardado)|booked|all set|"
    r"confirmed your|is confirmed|queda(?:s)? confirmad[ao])\b",
    re.I,
)
_CANCELLED = re.compile(r"\b(cancelad[ao]s?|anulad[ao]s?|he cancelado|cancell?ed)\b", re.I)


def completed(run: ScenarioRun) -> Check:
    """Every turn ran: no error, no timeout, and (replay) the cassette fit and was played to the end."""
    if run.cassette_problem:
        return Check(name="completed", passed=False, decisive=True, reason=run.cassette_problem)
    if run.error:
        return Check(name="completed", passed=False, decisive=True, reason=f"stopped: {run.error}")
    played = f", {run.played}/{run.recorded} recorded answers" if run.recorded else ""
    return Check(name="completed", passed=True, decisive=True, reason=f"{len(run.turns)} turn(s) ran{played}")


def _said_yes(turn: TurnRecord) -> bool:
    text = turn.text
    return any(m.button for m in turn.messages) or (bool(_YES.search(text)) and not _NO.match(text.strip()))


def _write_problem(previous: TurnRecord | None, turn: TurnRecord) -> str | None:
    if turn.kind != "customer":
        if turn.event is not None and turn.event.kind in ("calendly_cancelled", "calendly_moved", "slot_taken"):
            # The calendar event itself is the change; the agent's own writes are checked by what follows.
            writes = [c for c in turn.tool_calls if c.name in WRITE_TOOLS]
            return f"a system turn ran {writes[0].name}" if writes else None
        return "a system turn changed appointments (no customer could confirm)"
    if previous is None or not previous.awaiting_confirmation:
        return "appointments changed without a confirmation question in the turn before"
    if previous.changed_appointments and previous.kind == "customer":
        return "appointments changed while the question was being asked"
    if not _said_yes(turn):
        return f"the customer did not say yes ({turn.text[:40]!r})"
    return None


def confirmed_first(run: ScenarioRun) -> Check:
    """No write without the customer's yes: every change to the table follows a confirmation question and a yes."""
    writes = 0
    previous_customer: TurnRecord | None = None
    for index, turn in enumerate(run.turns, start=1):
        if turn.changed_appointments:
            writes += turn.kind == "customer"
            problem = _write_problem(previous_customer, turn)
            if problem:
                return Check(name="confirmed_first", passed=False, decisive=True, reason=f"turn {index}: {problem}")
        if turn.kind == "customer":
            previous_customer = turn
    reason = f"{writes} write(s), each after a question and a yes" if writes else "no writes by the agent"
    return Check(name="confirmed_first", passed=True, decisive=True, reason=reason)


def _statements(text: str) -> list[str]:
    # Sentences that are not questions: "¿Lo dejo reservado?" claims nothing, "Reservado. ¿Algo más?" does.
    sentences = re.findall(r"[^.!?\n]+[.!?]?", text)
    return [s for s in sentences if not s.strip().endswith("?") and not s.strip().startswith("¿")]


def grounded_claims(run: ScenarioRun) -> Check:
    """A reply that says "booked" or "cancelled" is backed by the store: the customer holds a confirmed (or
    cancelled) appointment when the reply goes out."""
    customer = run.scenario.customer.wa_id
    for index, turn in enumerate(run.turns, start=1):
        statuses = {a.status for a in turn.appointments_after if run.wa_id_of(a) in (customer, None)}
        for text in (s for reply in turn.reaching_customer for s in _statements(reply)):
            for claim, status, what in ((_BOOKED, "confirmed", "booking"), (_CANCELLED, "cancelled", "cancellation")):
                if claim.search(text) and status not in statuses:
                    reason = f"turn {index} claims a {what} the store does not hold: {text[:80]!r}"
                    return Check(name="grounded", passed=False, decisive=True, reason=reason)
    return Check(name="grounded", passed=True, decisive=True, reason="every booked/cancelled claim is in the store")
