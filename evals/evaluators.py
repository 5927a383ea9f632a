"""Typed evaluators: each judges a `ConversationRun` (database rows, outbox, turns) and says why it passed or failed."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from evals.dataset import Expectations, ExpectedAppointment, ReplyCheck
from evals.session import ConversationRun, TurnRecord
from tools.registry import WRITE_TOOLS


@dataclass(frozen=True)
class EvaluationResult:
    """One evaluator's verdict on one run."""

    evaluator: str
    passed: bool
    reason: str


class Evaluator(Protocol):
    """Judges one aspect of a conversation run."""

    @property
    def name(self) -> str:
        """Short name shown in reports."""
        ...

    def evaluate(self, run: ConversationRun) -> EvaluationResult:
        """Pass or fail, with a reason a developer can act on."""
        ...


def _result(name: str, passed: bool, ok: str, failure: str) -> EvaluationResult:
    return EvaluationResult(name, passed, ok if passed else failure)


@dataclass(frozen=True)
class CompletedWithoutError:
    """Every turn ran: no request the cassette could not answer, no exception from a tool or the graph."""

    name: str = "completed"

    def evaluate(self, run: ConversationRun) -> EvaluationResult:
        """Fail when the run stopped on an error."""
        turns = len(run.conversation.turns)
        return _result(self.name, run.error is None, f"{turns} turn(s) ran", f"stopped: {run.error}")


@dataclass(frozen=True)
class CassetteFullyPlayed:
    """Every recorded model answer was used: the conversation took the recorded path, no shorter."""

    name: str = "cassette_played"

    def evaluate(self, run: ConversationRun) -> EvaluationResult:
        """Fail when answers were left unused."""
        detail = f"{run.played}/{run.recorded} model answers played"
        return _result(self.name, run.fully_played, detail, f"only {detail}")


def _key(service: str, start: str, appointment_id: str | None) -> str:
    return f"{appointment_id + ' ' if appointment_id else ''}{service} {start}"


@dataclass(frozen=True)
class AppointmentsConfirmed:
    """The customer's confirmed appointments in the database are exactly the expected ones (service, local start)."""

    expected: tuple[ExpectedAppointment, ...]
    name: str = "confirmed"

    def evaluate(self, run: ConversationRun) -> EvaluationResult:
        """Compare database rows, by local start time in the business timezone."""
        tz = run.timezone
        rows = [a for a in run.customer_appointments() if a.status == "confirmed"]
        with_ids = {e.id for e in self.expected if e.id}
        found = sorted(
            _key(a.service, f"{a.start_at.astimezone(tz):%Y-%m-%dT%H:%M}", a.id if a.id in with_ids else None)
            for a in rows
        )
        wanted = sorted(_key(e.service, f"{e.start:%Y-%m-%dT%H:%M}", e.id) for e in self.expected)
        return _result(self.name, found == wanted, f"{found or 'none'}", f"expected {wanted}, database has {found}")


@dataclass(frozen=True)
class AppointmentsCancelled:
    """The customer's cancelled appointments in the database are exactly the expected ids."""

    expected: tuple[str, ...]
    name: str = "cancelled"

    def evaluate(self, run: ConversationRun) -> EvaluationResult:
        """Compare cancelled rows by id."""
        found = sorted(a.id for a in run.customer_appointments() if a.status == "cancelled")
        wanted = sorted(self.expected)
        return _result(self.name, found == wanted, f"{found or 'none'}", f"expected {wanted}, database has {found}")


@dataclass(frozen=True)
class ToolCallsInOrder:
    """The model called exactly these tools, in this order, over the whole conversation."""

    expected: tuple[str, ...]
    name: str = "tool_calls"

    def evaluate(self, run: ConversationRun) -> EvaluationResult:
        """Compare tool names in call order."""
        found = tuple(call.name for call in run.tool_calls)
        return _result(
            self.name, found == self.expected, " > ".join(found) or "none", f"expected {self.expected}, got {found}"
        )


def _write_problem(previous: TurnRecord | None, turn: TurnRecord) -> str | None:
    if turn.turn.kind != "customer":
        return "a system turn changed appointments (no customer could confirm)"
    if previous is None or not previous.awaiting_confirmation:
        return "appointments changed without a confirmation question in the turn before"
    if not any(call.name in WRITE_TOOLS for call in previous.tool_calls):
        return "the question before the change did not come from a write tool call"
    if previous.appointments_before != previous.appointments_after:
        return "appointments changed while the question was being asked"
    if not any("?" in reply for reply in previous.replies):
        return "the customer was not asked a question"
    return None


@dataclass(frozen=True)
class ConfirmationBeforeWrite:
    """No appointment changes unless the turn before asked the customer to confirm that write (and changed nothing)."""

    name: str = "confirm_first"

    def evaluate(self, run: ConversationRun) -> EvaluationResult:
        """Walk the turns and check every one that changed the appointments table."""
        writes = 0
        for index, turn in enumerate(run.turns):
            if not turn.changed_appointments:
                continue
            writes += 1
            problem = _write_problem(run.turns[index - 1] if index else None, turn)
            if problem:
                return EvaluationResult(self.name, False, f"turn {index + 1}: {problem}")
        return EvaluationResult(self.name, True, f"{writes} write(s), each confirmed first" if writes else "no writes")


# Common words of short salon messages: enough to tell Spanish from English, which is all the evals need.
_SPANISH_WORDS = (
    "el la los las de del que y en un una por para con tu te tus tienes tengo es está hola gracias cita "
    "hueco quieres sí hecho queda cuando qué cómo mañana tarde hoy nos vemos puedo aquí"
)
_ENGLISH_WORDS = (
    "the a an of and to in for with you your is are at on it hi hello thanks booked book would like what "
    "time tomorrow today see just me if here all set any we have"
)
_STOPWORDS = {"es": frozenset(_SPANISH_WORDS.split()), "en": frozenset(_ENGLISH_WORDS.split())}


def detect_language(text: str) -> Literal["es", "en"] | None:
    """'es' or 'en' by common words (and Spanish-only punctuation); None when there is nothing to go on."""
    words = re.findall(r"[a-záéíóúñü]+", text.casefold())
    scores = {lang: sum(w in stop for w in words) for lang, stop in _STOPWORDS.items()}
    scores["es"] += 2 * sum(text.count(mark) for mark in "¿¡")
    if scores["es"] == scores["en"]:
        return None
    return "es" if scores["es"] > scores["en"] else "en"


def _reaching_customer(turn: TurnRecord) -> list[str]:
    # Replies of customer turns, and messages the agent sent itself (system turns).
    return [*turn.replies, *(message.body for message in turn.sent)]


@dataclass(frozen=True)
class ReplyLanguage:
    """Everything that reached the customer is in their language."""

    expected: Literal["es", "en"]
    name: str = "language"

    def evaluate(self, run: ConversationRun) -> EvaluationResult:
        """Detect the language of every reply and sent message."""
        texts = [text for turn in run.turns for text in _reaching_customer(turn)]
        wrong = [t for t in texts if detect_language(t) not in (self.expected, None)]
        if not texts:
            return EvaluationResult(self.name, False, "nothing reached the customer")
        if wrong:
            return EvaluationResult(self.name, False, f"not in {self.expected}: {wrong[0]!r}")
        return EvaluationResult(self.name, True, f"{len(texts)} message(s) in {self.expected}")


@dataclass(frozen=True)
class SendWhatsappCount:
    """System turns reach the customer only through `send_whatsapp`: exactly `expected` messages, and no replies."""

    expected: int
    name: str = "send_whatsapp"

    def evaluate(self, run: ConversationRun) -> EvaluationResult:
        """Count the messages the sender received during system turns."""
        system_turns = [t for t in run.turns if t.turn.kind == "system"]
        sent = sum(len(t.sent) for t in system_turns)
        replies = sum(len(t.replies) for t in system_turns)
        passed = sent == self.expected and replies == 0
        failure = f"expected {self.expected} sent, got {sent} sent and {replies} replies in system turns"
        return _result(self.name, passed, f"{sent} sent in system turns", failure)


@dataclass(frozen=True)
class ReplyText:
    """What reached the customer in one turn contains (and does not contain) the given texts, ignoring case."""

    check: ReplyCheck
    name: str = "reply_text"

    def _turn(self, run: ConversationRun) -> tuple[int, TurnRecord] | None:
        if self.check.turn is not None:
            index = self.check.turn - 1
            return (index, run.turns[index]) if index < len(run.turns) else None
        customer = [(i, t) for i, t in enumerate(run.turns) if t.turn.kind == "customer"]
        return customer[-1] if customer else None

    def evaluate(self, run: ConversationRun) -> EvaluationResult:
        """Look for each text in the turn's replies and sent messages."""
        name = f"{self.name}[{self.check.turn or 'last'}]"
        found = self._turn(run)
        if found is None:
            return EvaluationResult(name, False, "that turn did not run")
        index, turn = found
        text = "\n".join(_reaching_customer(turn)).casefold()
        missing = [s for s in self.check.contains if s.casefold() not in text]
        present = [s for s in self.check.excludes if s.casefold() in text]
        failure = f"turn {index + 1}: missing {missing}, unexpected {present}"
        return _result(name, not missing and not present, f"turn {index + 1} ok", failure)


def evaluators_for(expect: Expectations) -> list[Evaluator]:
    """The evaluators a conversation's expectations call for, after the two that every run must pass."""
    chosen: list[Evaluator] = [CompletedWithoutError(), CassetteFullyPlayed()]
    if expect.confirmed is not None:
        chosen.append(AppointmentsConfirmed(tuple(expect.confirmed)))
    if expect.cancelled is not None:
        chosen.append(AppointmentsCancelled(tuple(expect.cancelled)))
    if expect.tool_calls is not None:
        chosen.append(ToolCallsInOrder(tuple(expect.tool_calls)))
    if expect.confirmation_before_write:
        chosen.append(ConfirmationBeforeWrite())
    if expect.language is not None:
        chosen.append(ReplyLanguage(expect.language))
    if expect.send_whatsapp is not None:
        chosen.append(SendWhatsappCount(expect.send_whatsapp))
    chosen.extend(ReplyText(check) for check in expect.replies)
    return chosen


def evaluate_run(run: ConversationRun, evaluators: Sequence[Evaluator] | None = None) -> list[EvaluationResult]:
    """Run the conversation's evaluators (or the given ones) on `run`."""
    return [e.evaluate(run) for e in (evaluators or evaluators_for(run.conversation.expect))]
