"""The tau-bench criterion: what the store and the outbox hold at the end, whatever was said on the way.

Each check reads the final appointments table, the hand-offs and every message that left, and compares them with the
scenario's `expect`. These are decisive: a scenario passes only when they all pass.
"""

from __future__ import annotations

from evals.record import ScenarioRun
from evals.results import Check
from evals.scenario import AbsentAppointment, ExpectedAppointment
from store.models import Appointment


def _local(run: ScenarioRun, appointment: Appointment) -> str:
    return f"{appointment.start_at.astimezone(run.timezone):%Y-%m-%d %H:%M}"


def _describe(run: ScenarioRun, appointment: Appointment) -> str:
    return f"{appointment.service} {_local(run, appointment)} {appointment.status}"


def _matches(run: ScenarioRun, row: Appointment, wanted: ExpectedAppointment) -> bool:
    return (
        row.service == wanted.service
        and _local(run, row) == f"{wanted.start:%Y-%m-%d %H:%M}"
        and row.status == wanted.status
        and (wanted.id is None or row.id == wanted.id)
    )


def final_appointments(run: ScenarioRun) -> Check:
    """The customer's confirmed appointments are exactly the expected confirmed ones; every listed appointment
    (the customer's or another client's) exists with its status."""
    customer = run.scenario.customer.wa_id
    expected = run.scenario.expect.appointments
    problems: list[str] = []
    for wanted in expected:
        owner = wanted.client or customer
        if not any(_matches(run, row, wanted) for row in run.appointments_of(owner)):
            who = "" if owner == customer else f" for {owner}"
            problems.append(f"missing {wanted.service} {wanted.start:%Y-%m-%d %H:%M} {wanted.status}{who}")
    wanted_confirmed = [w for w in expected if (w.client or customer) == customer and w.status == "confirmed"]
    for row in run.customer_appointments():
        if row.status == "confirmed" and not any(_matches(run, row, w) for w in wanted_confirmed):
            problems.append(f"unexpected {_describe(run, row)}")
    held = ", ".join(_describe(run, a) for a in run.customer_appointments() if a.status == "confirmed") or "none"
    if problems:
        return Check(
            name="final_state", passed=False, decisive=True, reason=f"{'; '.join(problems)} (customer has: {held})"
        )
    return Check(name="final_state", passed=True, decisive=True, reason=f"customer has: {held}")


def _absent_matches(run: ScenarioRun, row: Appointment, absent: AbsentAppointment) -> bool:
    customer = run.scenario.customer.wa_id
    return (
        row.status == "confirmed"
        and run.wa_id_of(row) == (absent.client or customer)
        and (absent.service is None or row.service == absent.service)
        and (absent.start is None or _local(run, row) == f"{absent.start:%Y-%m-%d %H:%M}")
    )


def absent_appointments(run: ScenarioRun) -> Check:
    """No confirmed appointment matches any of the scenario's `absent` patterns."""
    found = [
        f"{_describe(run, row)} exists but must not"
        for absent in run.scenario.expect.absent
        for row in run.appointments
        if _absent_matches(run, row, absent)
    ]
    count = len(run.scenario.expect.absent)
    return Check(
        name="absent", passed=not found, decisive=True, reason="; ".join(found) or f"{count} pattern(s) absent"
    )


def handoff(run: ScenarioRun) -> Check:
    """A hand-off to staff happened exactly when the scenario expects one."""
    wanted = run.scenario.expect.handoff
    done = bool(run.handoffs)
    if wanted == done:
        reason = f"handed off ({len(run.handoffs)})" if done else "no hand-off, as expected"
        return Check(name="handoff", passed=True, decisive=True, reason=reason)
    reason = "expected a hand-off to staff; none happened" if wanted else "handed off to staff without reason to"
    return Check(name="handoff", passed=False, decisive=True, reason=reason)


def nothing_forbidden_sent(run: ScenarioRun) -> Check:
    """No reply and no message to anyone contains a text the scenario forbids (ids, other clients' data)."""
    texts = [reply for turn in run.turns for reply in turn.replies] + [m.body for m in run.sent]
    leaks = [
        f"{forbidden!r} in {text[:60]!r}"
        for forbidden in run.scenario.expect.not_sent
        for text in texts
        if forbidden.casefold() in text.casefold()
    ]
    others = sorted({m.wa_id for m in run.sent if m.wa_id != run.scenario.customer.wa_id})
    if others:
        leaks.append(f"messages sent to other numbers: {len(others)}")
    checked = len(run.scenario.expect.not_sent)
    return Check(
        name="not_sent", passed=not leaks, decisive=True, reason="; ".join(leaks) or f"{checked} text(s) never sent"
    )


def system_messages(run: ScenarioRun) -> Check | None:
    """System turns reach the customer only through `send_whatsapp`: exactly the expected number, and no replies."""
    expected = run.scenario.expect.system_messages
    if expected is None:
        return None
    events = [t for t in run.turns if t.kind == "event"]
    sent = sum(1 for t in events for m in t.sent if m.kind != "reminder")
    replies = sum(len(t.replies) for t in events)
    passed = sent == expected and replies == 0
    reason = (
        f"{sent} sent by system turns" if passed else f"expected {expected} sent, got {sent} (and {replies} replies)"
    )
    return Check(name="system_messages", passed=passed, decisive=True, reason=reason)


def remembered_clients(run: ScenarioRun) -> Check | None:
    """What the store remembers of each listed client (name, email) is exactly what the scenario expects."""
    expected = run.scenario.expect.clients
    if not expected:
        return None
    problems = []
    for wanted in expected:
        wa_id = wanted.wa_id or run.scenario.customer.wa_id
        stored = run.client_profiles.get(wa_id, {})
        for field in ("name", "email"):
            value = getattr(wanted, field)
            if value is not None and (stored.get(field) or "") != value:
                problems.append(f"{wa_id[-4:]} {field}: expected {value!r}, stored {stored.get(field)!r}")
    passed = not problems
    reason = "; ".join(problems) or f"{len(expected)} client profile(s) as expected"
    return Check(name="clients", passed=passed, decisive=True, reason=reason)
