"""Scenarios as typed data: who the customer is and wants, what the calendar holds, and what the store must hold at
the end. One scenario runs three ways (replayed script, live script, simulated customer); see evals/README.md."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal, Self

import yaml
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

EVALS_DIR = Path(__file__).resolve().parent
SCENARIOS_DIR = EVALS_DIR / "scenarios"
CASSETTES_DIR = EVALS_DIR / "cassettes"
AUTHORING_DIR = EVALS_DIR / "authoring"

WaId = Annotated[str, Field(pattern=r"^whatsapp:\+\d{6,15}$")]
AppointmentId = Annotated[str, Field(pattern=r"^apt_[0-9a-f]{8}$")]
LocalTime = Annotated[datetime, Field(description="Local wall-clock time in the business timezone, no offset.")]
Language = Literal["es", "en"]


class _Strict(BaseModel):
    # A misspelt key in a scenario must fail loudly, never be an expectation silently not checked.
    model_config = ConfigDict(extra="forbid", frozen=True)


class Customer(_Strict):
    """The WhatsApp customer of the scenario: identity from the channel, and what a simulated customer plays."""

    wa_id: WaId
    profile_name: str | None = None
    persona: str = Field(min_length=1, description="Who they are and how they write (for the simulated customer).")
    goal: str = Field(min_length=1, description="What they want from this conversation.")
    knows: list[str] = Field(default=[], description="Facts they reveal only when asked (email, preferences, ...).")


class SeedClient(_Strict):
    """A client the salon already knows (another customer, or the scenario's customer with a remembered profile)."""

    wa_id: WaId
    profile_name: str | None = None
    name: str | None = None
    email: str | None = None
    language: Language | None = None


class SeedAppointment(_Strict):
    """An appointment in the calendar before the conversation starts; `client` defaults to the scenario customer."""

    id: AppointmentId
    service: str
    start: LocalTime
    client: WaId | None = None
    status: Literal["confirmed", "cancelled"] = "confirmed"
    source: Literal["agent", "calendly", "staff"] = "agent"
    cancel_reason: str | None = None


class Seed(_Strict):
    """The store before the first message."""

    clients: list[SeedClient] = []
    appointments: list[SeedAppointment] = []


class Message(_Strict):
    """One customer message: text and/or a quick-reply button payload."""

    text: str = ""
    button: str | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if not self.text.strip() and not self.button:
            raise ValueError("a message needs `text` or `button`")
        return self


class ScriptTurn(_Strict):
    """What the customer sends before the assistant answers: one message, or several in a row (double texting)."""

    customer: str | list[str] | None = None
    button: str | None = None

    @model_validator(mode="after")
    def _something(self) -> Self:
        if self.customer in (None, "", []) and not self.button:
            raise ValueError("a script turn needs `customer` text (or a list of texts) or a `button`")
        return self

    @property
    def messages(self) -> list[Message]:
        """The turn's messages, in the order the customer sent them."""
        texts = self.customer if isinstance(self.customer, list) else [self.customer or ""]
        found = [Message(text=t) for t in texts if t.strip()]
        if self.button:
            found.append(Message(text="", button=self.button))
        return found


class CalendlyCancelled(_Strict):
    """The booking is cancelled on Calendly (by the invitee or the salon), with an untrusted free-text reason."""

    kind: Literal["calendly_cancelled"]
    appointment: AppointmentId
    reason: str | None = None
    canceled_by: str | None = None
    canceler_type: Literal["invitee", "host"] = "host"


class CalendlyMoved(_Strict):
    """The booking is moved to another time on Calendly."""

    kind: Literal["calendly_moved"]
    appointment: AppointmentId
    to: LocalTime


class SlotTaken(_Strict):
    """Someone else books a slot meanwhile (on the calendar, not in this conversation)."""

    kind: Literal["slot_taken"]
    id: AppointmentId
    service: str
    start: LocalTime
    client: WaId


class ReminderSent(_Strict):
    """The server's reminder for an appointment reaches the customer (a message the model did not write)."""

    kind: Literal["reminder"]
    appointment: AppointmentId


EventKind = Annotated[CalendlyCancelled | CalendlyMoved | SlotTaken | ReminderSent, Field(discriminator="kind")]


class Event(_Strict):
    """A calendar event arriving mid-way: after the given number of customer turns (0: before the first)."""

    after_turn: int = Field(ge=0)
    event: EventKind


class ExpectedAppointment(_Strict):
    """An appointment that must exist at the end (the customer's unless `client` names another)."""

    service: str
    start: LocalTime
    status: Literal["confirmed", "cancelled"] = "confirmed"
    id: AppointmentId | None = None
    client: WaId | None = None


class AbsentAppointment(_Strict):
    """A confirmed appointment that must NOT exist at the end; omitted fields match anything."""

    service: str | None = None
    start: LocalTime | None = None
    client: WaId | None = None


class ExpectedClient(_Strict):
    """What the store remembers of a client at the end (the customer unless `wa_id`); "" means nothing stored."""

    wa_id: WaId | None = None
    name: str | None = None
    email: str | None = None


class Fact(_Strict):
    """Something the replies must convey: any one of the texts (case-insensitive) in any reply of the scenario."""

    any_of: list[str] = Field(min_length=1)
    why: str = ""


class Expect(_Strict):
    """The end state that decides pass/fail, and what the replies must (not) carry.

    `appointments` is complete for the customer: their confirmed appointments at the end must be exactly the
    confirmed ones listed (an extra booking fails), and each listed cancelled one must be cancelled. Appointments of
    other clients are checked only where listed (`client:`).
    """

    appointments: list[ExpectedAppointment] = []
    absent: list[AbsentAppointment] = []
    handoff: bool = False
    clients: list[ExpectedClient] = []
    not_sent: list[str] = Field(default=[], description="Texts no message to anyone may contain.")
    facts: list[Fact] = []
    tools: list[str] | None = Field(default=None, description="The reference tool trajectory (names, in order).")
    system_messages: int | None = Field(default=None, ge=0, description="Messages sent by system turns.")


class Tags(_Strict):
    """How reports group scenarios."""

    intent: Literal[
        "book", "cancel", "reschedule", "info", "handoff", "out_of_scope", "attack", "calendar_event", "reminder"
    ]
    language: Language
    difficulty: Literal["easy", "medium", "hard"]
    extra: list[str] = []

    def labels(self) -> list[str]:
        """`intent:book`, `language:es`, `difficulty:easy` and the extra tags, for per-tag pass^k."""
        return [f"intent:{self.intent}", f"language:{self.language}", f"difficulty:{self.difficulty}", *self.extra]


class Scenario(_Strict):
    """One evaluation scenario; its replayed model answers live in `evals/cassettes/<name>.yaml`."""

    name: str
    description: str
    now: AwareDatetime
    business: str | None = Field(default=None, description="Business file relative to evals/; default: the example.")
    tags: Tags
    customer: Customer
    seed: Seed = Seed()
    script: list[ScriptTurn] | None = None
    events: list[Event] = []
    max_turns: int = Field(default=10, ge=1, le=40, description="Cap on simulated customer turns.")
    expect: Expect

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        seeded = {a.id for a in self.seed.appointments}
        added = {e.event.id for e in self.events if isinstance(e.event, SlotTaken)}
        for event in self.events:
            target = getattr(event.event, "appointment", None)
            if target is not None and target not in seeded:
                raise ValueError(f"event after turn {event.after_turn}: appointment {target} is not seeded")
        if self.script is not None:
            for event in self.events:
                if event.after_turn > len(self.script):
                    raise ValueError(f"event after turn {event.after_turn}: the script has {len(self.script)} turns")
        duplicated = seeded & added
        if duplicated:
            raise ValueError(f"appointment id(s) both seeded and added by an event: {sorted(duplicated)}")
        return self

    @property
    def cassette(self) -> Path:
        """The cassette shipped with the scenario (only scenarios with a script have one)."""
        return CASSETTES_DIR / f"{self.name}.yaml"

    @property
    def language(self) -> Language:
        """The customer's language (the tag)."""
        return self.tags.language


def load_scenario(path: Path) -> Scenario:
    """Parse one scenario file; its name is the file name without `.yaml`."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a scenario is a YAML mapping")
    return Scenario.model_validate({"name": path.stem, **data})


def scenario_names(directory: Path = SCENARIOS_DIR) -> list[str]:
    """Every scenario in `directory`, by name."""
    return sorted(p.stem for p in directory.glob("*.yaml"))


def load_scenarios(
    names: list[str] | None = None, directory: Path = SCENARIOS_DIR, *, tags: list[str] | None = None
) -> list[Scenario]:
    """The named scenarios (all when `names` is empty), optionally only those with every tag in `tags`."""
    available = scenario_names(directory)
    chosen = names or available
    unknown = [n for n in chosen if n not in available]
    if unknown:
        raise KeyError(f"unknown scenario(s): {', '.join(unknown)}; available: {', '.join(available)}")
    scenarios = [load_scenario(directory / f"{name}.yaml") for name in chosen]
    if tags:
        scenarios = [s for s in scenarios if set(tags) <= set(s.tags.labels())]
    return scenarios
