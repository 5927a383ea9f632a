"""What one scenario run leaves behind for the evaluators: every turn (customer or event), what reached whom, the
tool calls and results, the appointments table before and after each turn, hand-offs, usage and timings."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal
from zoneinfo import ZoneInfo

from evals.scenario import EventKind, Message, Scenario
from store.models import Appointment
from tools.whatsapp import OutboundKind


@dataclass(frozen=True)
class ToolCallRecord:
    """A tool call the model made, and what the tool answered (None: it did not run, e.g. awaiting a yes)."""

    name: str
    args: dict[str, Any]
    result: str | None = None

    def describe(self) -> str:
        """`name(arg=value, ...)` for transcripts and reports."""
        args = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in self.args.items() if v is not None)
        return f"{self.name}({args})"


@dataclass(frozen=True)
class SentMessage:
    """A WhatsApp message handed to the sender (by `send_whatsapp`, or by the server for reminders)."""

    wa_id: str
    body: str
    kind: OutboundKind


@dataclass(frozen=True)
class TurnRecord:
    """One turn: the customer's messages or a calendar event, and everything that came out of it."""

    kind: Literal["customer", "event"]
    messages: tuple[Message, ...] = ()
    event: EventKind | None = None
    event_text: str | None = None
    replies: tuple[str, ...] = ()
    awaiting_confirmation: bool = False
    tool_calls: tuple[ToolCallRecord, ...] = ()
    tool_results: tuple[str, ...] = ()
    sent: tuple[SentMessage, ...] = ()
    appointments_before: tuple[Appointment, ...] = ()
    appointments_after: tuple[Appointment, ...] = ()
    latency_ms: float = 0.0

    @property
    def text(self) -> str:
        """What the customer wrote (messages joined), or the event as the model read it."""
        if self.kind == "event":
            return self.event_text or ""
        return "\n".join(m.text or m.button or "" for m in self.messages)

    @property
    def changed_appointments(self) -> bool:
        """Whether the turn wrote to the appointments table."""
        return self.appointments_before != self.appointments_after

    @property
    def reaching_customer(self) -> list[str]:
        """Replies, and messages the agent sent itself (system turns) to the customer."""
        return [*self.replies, *(m.body for m in self.sent if m.kind != "reminder")]


@dataclass
class ScenarioRun:
    """The outcome of a scenario run: turns, the final table, messages sent, hand-offs, usage and the model source."""

    scenario: Scenario
    mode: str
    trial: int
    database_url: str
    timezone: ZoneInfo
    business_text: str
    turns: list[TurnRecord] = field(default_factory=list)
    appointments: list[Appointment] = field(default_factory=list)
    clients: dict[int, str] = field(default_factory=dict)
    client_profiles: dict[str, dict[str, str | None]] = field(default_factory=dict)
    sent: list[SentMessage] = field(default_factory=list)
    handoffs: list[tuple[str, str]] = field(default_factory=list)
    model_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    latency_ms: float = 0.0
    cassette_problem: str | None = None
    played: int = 0
    recorded: int = 0
    error: str | None = None

    @property
    def tool_results(self) -> list[str]:
        """Every tool result of the run (including writes that ran on the customer's yes), in order."""
        return [result for turn in self.turns for result in turn.tool_results]

    @property
    def tool_calls(self) -> list[ToolCallRecord]:
        """Every tool call of the run, in order."""
        return [call for turn in self.turns for call in turn.tool_calls]

    @property
    def customer_turns(self) -> list[TurnRecord]:
        """The customer's turns, in order."""
        return [t for t in self.turns if t.kind == "customer"]

    def wa_id_of(self, appointment: Appointment) -> str | None:
        """Whose appointment it is (their WhatsApp address), None for an appointment without a client."""
        return self.clients.get(appointment.client_id) if appointment.client_id is not None else None

    def appointments_of(self, wa_id: str) -> list[Appointment]:
        """One client's appointments (any status), in start order."""
        return [a for a in self.appointments if self.wa_id_of(a) == wa_id]

    def customer_appointments(self) -> list[Appointment]:
        """The scenario customer's appointments (any status), in start order."""
        return self.appointments_of(self.scenario.customer.wa_id)
