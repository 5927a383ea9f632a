"""Running one recorded conversation through the real assistant and keeping everything the evaluators look at."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from langchain_core.messages import AIMessage, BaseMessage

from agent.api import IncomingText, TurnResult
from agent.assistant import thread_config
from agent.model import build_chat_model
from agent.tracing import TurnTracer
from core.business import example_business
from core.clock import FixedClock
from core.settings import Settings
from evals.dataset import Conversation, Turn
from evals.replay import OPENAI_HOST, model_cassette
from evals.tracing import case_tracer
from evals.wiring import (
    DATABASE_FILE,
    Wired,
    open_migrated_database,
    seed_appointments,
    sqlite_url,
    wire_assistant,
)
from store.models import Appointment
from tools.whatsapp import OutboundKind


@dataclass(frozen=True)
class ToolCallRecord:
    """A tool call the model made."""

    name: str
    args: dict[str, Any]

    def describe(self) -> str:
        """`name(arg=value, ...)` for transcripts and reports."""
        args = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in self.args.items() if v is not None)
        return f"{self.name}({args})"


@dataclass(frozen=True)
class SentMessage:
    """A WhatsApp message the agent handed to the sender (`send_whatsapp`)."""

    wa_id: str
    body: str
    kind: OutboundKind


@dataclass(frozen=True)
class TurnRecord:
    """One turn: what came in, what went out, and the appointments table before and after."""

    turn: Turn
    replies: tuple[str, ...]
    awaiting_confirmation: bool
    tool_calls: tuple[ToolCallRecord, ...]
    sent: tuple[SentMessage, ...]
    appointments_before: tuple[Appointment, ...]
    appointments_after: tuple[Appointment, ...]

    @property
    def changed_appointments(self) -> bool:
        """Whether the turn wrote to the appointments table."""
        return self.appointments_before != self.appointments_after


@dataclass
class ConversationRun:
    """The outcome of a conversation: turns, final database rows, messages sent, and how the cassette was used."""

    conversation: Conversation
    database_url: str
    timezone: ZoneInfo
    turns: list[TurnRecord]
    appointments: list[Appointment]
    sent: list[SentMessage]
    client_id: int | None
    played: int
    recorded: int
    fully_played: bool
    error: str | None = None

    @property
    def tool_calls(self) -> list[ToolCallRecord]:
        """Every tool call of the conversation, in order."""
        return [call for turn in self.turns for call in turn.tool_calls]

    def customer_appointments(self) -> list[Appointment]:
        """The conversation customer's appointments (any status), in start order."""
        return [a for a in self.appointments if a.client_id is not None and a.client_id == self.client_id]


def replay_settings() -> Settings:
    """Settings for replay: the defaults (the cassettes' model), no key, the OpenAI host; no environment read."""
    return Settings.model_construct()


async def _messages(wired: Wired, wa_id: str) -> list[BaseMessage]:
    snapshot = await wired.graph.aget_state(thread_config(wa_id))
    return list(snapshot.values.get("messages", []))


async def _run_turn(wired: Wired, conversation: Conversation, turn: Turn) -> TurnResult:
    wa_id = conversation.customer.wa_id
    if turn.kind == "system":
        return await wired.assistant.system_turn(wa_id, turn.text)
    messages = [IncomingText(body=turn.customer or "", button_payload=turn.button)]
    return await wired.assistant.customer_turn(wa_id, messages, profile_name=conversation.customer.profile_name)


async def _play(wired: Wired, conversation: Conversation, turns: list[TurnRecord]) -> None:
    wa_id = conversation.customer.wa_id
    for turn in conversation.turns:
        before = tuple(await wired.all_appointments())
        seen = {m.id for m in await _messages(wired, wa_id)}
        sent_before = len(wired.sender.sent)
        result = await _run_turn(wired, conversation, turn)
        new = [m for m in await _messages(wired, wa_id) if m.id not in seen]
        calls = tuple(
            ToolCallRecord(c["name"], dict(c["args"])) for m in new if isinstance(m, AIMessage) for c in m.tool_calls
        )
        sent = tuple(SentMessage(*item) for item in wired.sender.sent[sent_before:])
        after = tuple(await wired.all_appointments())
        turns.append(TurnRecord(turn, result.replies, result.awaiting_confirmation, calls, sent, before, after))


def check_recording_settings(settings: Settings) -> None:
    """Raise ValueError unless `settings` can record cassettes: a real key, and the real API (the replayed host)."""
    if settings.openai_api_key is None or settings.openai_base_url is not None:
        raise ValueError(f"recording needs OPENAI_API_KEY and the real API at {OPENAI_HOST} (unset OPENAI_BASE_URL)")


def _fresh_directory(directory: Path) -> None:
    # Every run starts from an empty database: a leftover file would carry another run's appointments.
    directory.mkdir(parents=True, exist_ok=True)
    for leftover in (DATABASE_FILE, f"{DATABASE_FILE}-wal", f"{DATABASE_FILE}-shm"):
        (directory / leftover).unlink(missing_ok=True)


async def run_conversation(
    conversation: Conversation,
    directory: Path,
    *,
    cassette: Path | None = None,
    record_with: Settings | None = None,
    tracer: TurnTracer | None = None,
    mode: str = "replay",
) -> ConversationRun:
    """Replay `conversation` on a fresh embedded database in `directory` (record its cassette with `record_with`).

    A failure inside a turn (a request the cassette cannot answer, a tool error) ends the run and is reported in
    `error`, so one broken conversation is a failed case, not a crashed suite.
    """
    if record_with is not None:
        check_recording_settings(record_with)
    await asyncio.to_thread(_fresh_directory, directory)
    url = sqlite_url(directory)
    model = build_chat_model(record_with or replay_settings())
    clock = FixedClock(conversation.now)
    turns: list[TurnRecord] = []
    error: str | None = None
    business = example_business()
    settings = record_with or replay_settings()
    traced = case_tracer(tracer, conversation.name, "record" if record_with else mode, business, settings.openai_model)
    async with (
        open_migrated_database(url) as db,
        wire_assistant(db, business, clock, model, tracer=traced) as wired,
    ):
        await seed_appointments(wired, conversation.customer, conversation.seed)
        with model_cassette(cassette or conversation.cassette, record=record_with is not None) as replay:
            try:
                await _play(wired, conversation, turns)
            except Exception as exc:  # reported as this conversation's failure (see the docstring)
                error = f"{type(exc).__name__}: {exc}"
        client = await wired.clients.get(conversation.customer.wa_id)
        return ConversationRun(
            conversation=conversation,
            database_url=url,
            timezone=wired.business.tz,
            turns=turns,
            appointments=await wired.all_appointments(),
            sent=[SentMessage(*item) for item in wired.sender.sent],
            client_id=client.id if client else None,
            played=replay.played,
            recorded=replay.recorded,
            fully_played=replay.fully_played,
            error=error,
        )
