"""What each scenario measures, from the outside: the customers' ledger, what Twilio accepted (what customers got),
Calendly's bookings and the rows in the database; written as JSON, then checked.

- sent / acknowledged: messages posted, and answered 2xx by the webhook (slowest answer in `ack_max_seconds`).
- stored: of those sent, rows in `inbound_messages`.
- answered_once / duplicated / lost: messages whose marker reached the customer exactly once, twice or more, or
  never (acknowledged or not: Twilio does not resend a message whose webhook failed, by default).
- answer_max_seconds: the longest a message waited for its first answer.
- holding / apologies: the "technical problem, we will answer" and the "write again later" texts received.
- bookings: active at Calendly vs confirmed rows in `appointments`; orphans (a Calendly booking without a row)
  and doubles (one customer booked more than once).
- recovery_seconds: from the end of the fault (or the kill) to the last first answer, or to settled work.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from jinja2 import TemplateNotFound

from prompts import render_localized
from tests.reliability.calendly_double import API, CalendlyDouble
from tests.reliability.customers import Customers, Sent
from tests.reliability.twilio_double import TwilioDouble

RESULTS_ENV = "RELIABILITY_RESULTS_DIR"
DEFAULT_RESULTS = Path(__file__).resolve().parent / "results"


def results_dir() -> Path:
    """Where figures are written: $RELIABILITY_RESULTS_DIR, else tests/reliability/results/ (git-ignored)."""
    return Path(os.environ.get(RESULTS_ENV) or DEFAULT_RESULTS)


def _texts(name: str) -> set[str]:
    # A text the product does not have (yet) matches nothing, so the scenario that expects it fails on its figures.
    try:
        return {render_localized(name, language).strip() for language in ("es", "en")}
    except TemplateNotFound:
        return set()


HOLDING, APOLOGY = _texts("messages/holding"), _texts("messages/agent_unavailable")


def query(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Rows of one query on a short-lived connection (the database may have been restarted meanwhile)."""
    with psycopg.connect(url, connect_timeout=5) as conn:
        return conn.execute(sql, params).fetchall()


def pending_work(url: str) -> int | None:
    """Inbound messages, system events and outbox rows not finished yet (None: the database cannot be read)."""
    try:
        rows = query(
            url,
            "SELECT (SELECT count(*) FROM inbound_messages WHERE status IN ('pending', 'processing'))"
            " + (SELECT count(*) FROM system_events WHERE status IN ('pending', 'processing'))"
            " + (SELECT count(*) FROM outbox WHERE status IN ('pending', 'sending'))",
        )
    except psycopg.Error:
        return None
    return int(rows[0][0])


def answers(twilio: TwilioDouble, sent: Sent) -> list[float]:
    """When each message carrying `sent`'s marker reached its customer (monotonic), after it was sent."""
    return [m.monotonic for m in twilio.to(sent.wa_id) if sent.marker in m.body and m.monotonic >= sent.sent_at]


@dataclass
class Figures:
    """One scenario's outcome."""

    scenario: str
    fault: str
    customers: int = 0
    sent: int = 0
    acknowledged: int = 0
    ack_max_seconds: float = 0.0
    stored: int = 0
    answered_once: int = 0
    duplicated: int = 0
    lost: int = 0
    answer_max_seconds: float | None = None
    holding: int = 0
    apologies: int = 0
    bookings_calendly: int | None = None
    appointments_stored: int | None = None
    orphans: int | None = None
    double_bookings: int | None = None
    recovery_seconds: float | None = None
    duration_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, bool] = field(default_factory=dict)


def measure(
    name: str,
    fault: str,
    *,
    customers: Customers,
    twilio: TwilioDouble,
    database_url: str,
    calendly: CalendlyDouble | None = None,
    started: float,
) -> Figures:
    """Count everything a scenario reports (the database must be up)."""
    sent = list(customers.sent)
    acked = [s for s in sent if s.acknowledged]
    # Over every message a customer sent: one the webhook did not acknowledge is lost unless it was answered anyway
    # (Twilio does not send it again by default).
    counts = [len(answers(twilio, s)) for s in sent]
    firsts = [min(times) - s.sent_at for s in sent if (times := answers(twilio, s))]
    stored = query(
        database_url, "SELECT count(*) FROM inbound_messages WHERE message_sid = ANY(%s)", [s.sid for s in sent]
    )
    bodies = [m.body.strip() for m in twilio.accepted()]
    figures = Figures(
        scenario=name,
        fault=fault,
        customers=len({s.wa_id for s in sent}),
        sent=len(sent),
        acknowledged=len(acked),
        ack_max_seconds=round(max((s.seconds for s in sent), default=0.0), 2),
        stored=int(stored[0][0]),
        answered_once=sum(1 for c in counts if c == 1),
        duplicated=sum(1 for c in counts if c > 1),
        lost=sum(1 for c in counts if c == 0),
        answer_max_seconds=round(max(firsts), 1) if firsts else None,
        holding=sum(1 for b in bodies if b in HOLDING),
        apologies=sum(1 for b in bodies if b in APOLOGY),
        duration_seconds=round(time.monotonic() - started, 1),
    )
    if calendly is not None:
        rows = query(
            database_url,
            "SELECT external_id, client_id FROM appointments WHERE status = 'confirmed' AND calendar = 'calendly'",
        )
        stored_events = {r[0] for r in rows}
        active = calendly.active()
        figures.bookings_calendly = len(active)
        figures.appointments_stored = len(rows)
        figures.orphans = sum(1 for b in active if f"{API}/scheduled_events/{b.event}" not in stored_events)
        per_email = Counter(b.email for b in active)
        per_client = Counter(r[1] for r in rows)
        figures.double_bookings = sum(n - 1 for n in per_email.values() if n > 1) + sum(
            n - 1 for n in per_client.values() if n > 1
        )
    return figures


def last_answer(twilio: TwilioDouble, sent: list[Sent]) -> float | None:
    """When the last of these messages was first answered (monotonic); None if one never was."""
    firsts = [min(times) for s in sent if (times := answers(twilio, s))]
    return max(firsts) if len(firsts) == len(sent) and firsts else None


def report(figures: Figures, checks: dict[str, bool], *, context: str = "") -> None:
    """Write the figures (checks included) to the results directory, then fail on any check that did not hold."""
    figures.checks = dict(checks)
    directory = results_dir()
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{figures.scenario}.json").write_text(
        json.dumps(asdict(figures), indent=2, ensure_ascii=False) + "\n"
    )
    failed = [name for name, held in checks.items() if not held]
    if failed:
        shown = {k: v for k, v in asdict(figures).items() if k != "checks"}
        message = "; ".join(failed) + f"\nfigures: {json.dumps(shown)}"
        raise AssertionError(message + (f"\n{context}" if context else ""))
