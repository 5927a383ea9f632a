"""Running one scenario through the real assistant: a fresh store, the seed, the customer's turns (scripted or
simulated), the calendar events between them, and everything the evaluators look at afterwards."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage

from agent.api import IncomingText
from agent.assistant import thread_config
from agent.tracing import TurnTracer
from core.business import Business, example_business, example_business_text, load_business
from core.clock import FixedClock
from evals.agent_model import AgentModel
from evals.events import apply_event
from evals.record import ScenarioRun, SentMessage, ToolCallRecord, TurnRecord
from evals.scenario import EVALS_DIR, Message, Scenario, ScriptTurn
from evals.tracing import case_tracer
from evals.wiring import DATABASE_FILE, Wired, open_migrated_database, seed_store, sqlite_url, wire_assistant

DEFAULT_TIMEOUT_SECONDS = 120.0
TIMED_OUT = "timed out after"


class CustomerSide(Protocol):
    """Who writes the customer's messages: a script, or a simulated customer reading the assistant's replies."""

    async def next_turn(self, replies: Sequence[str]) -> list[Message] | None:
        """The customer's next messages after `replies` (the assistant's answer to their last turn); None: done."""
        ...


@dataclass
class ScriptedCustomer:
    """Plays a scenario's fixed script, one turn per call, whatever the assistant answered."""

    script: Sequence[ScriptTurn]
    played: int = 0

    async def next_turn(self, replies: Sequence[str]) -> list[Message] | None:
        """The next scripted turn, or None at the end of the script."""
        if self.played >= len(self.script):
            return None
        self.played += 1
        return self.script[self.played - 1].messages


def scenario_business(scenario: Scenario) -> tuple[Business, str]:
    """The scenario's business (the shipped example unless it names a file) and its text, for groundedness."""
    if scenario.business is None:
        return example_business(), example_business_text()
    path = EVALS_DIR / scenario.business
    return load_business(path), path.read_text(encoding="utf-8")


async def _messages(wired: Wired, wa_id: str) -> list[BaseMessage]:
    snapshot = await wired.graph.aget_state(thread_config(wa_id))
    return list(snapshot.values.get("messages", []))


def _calls(new: list[BaseMessage]) -> tuple[ToolCallRecord, ...]:
    results = {m.tool_call_id: str(m.content) for m in new if isinstance(m, ToolMessage)}
    return tuple(
        ToolCallRecord(c["name"], dict(c["args"]), results.get(c["id"] or ""))
        for m in new
        if isinstance(m, AIMessage)
        for c in m.tool_calls
    )


def _count_usage(run: ScenarioRun, new: list[BaseMessage]) -> None:
    for message in new:
        if isinstance(message, AIMessage):
            run.model_calls += 1
            usage = message.usage_metadata
            if usage is not None:
                run.input_tokens += usage["input_tokens"]
                run.output_tokens += usage["output_tokens"]


async def _turn(wired: Wired, run: ScenarioRun, messages: list[Message] | None, event_text: str | None) -> TurnRecord:
    """One customer turn (`messages`) or one system turn (`event_text`), recorded with its before and after."""
    customer = run.scenario.customer
    before = tuple(await wired.all_appointments())
    if messages is not None and wired.handoff.handoffs:
        # As in production, a conversation handed to staff is paused: the customer's messages wait for a person.
        return TurnRecord("customer", messages=tuple(messages), appointments_before=before, appointments_after=before)
    seen = {m.id for m in await _messages(wired, customer.wa_id)}
    sent_before = len(wired.sender.sent)
    started = time.perf_counter()
    if messages is not None:
        incoming = [IncomingText(body=m.text, button_payload=m.button) for m in messages]
        result = await wired.assistant.customer_turn(customer.wa_id, incoming, profile_name=customer.profile_name)
    else:
        result = await wired.assistant.system_turn(customer.wa_id, event_text or "")
    elapsed = (time.perf_counter() - started) * 1000
    new = [m for m in await _messages(wired, customer.wa_id) if m.id not in seen]
    _count_usage(run, new)
    return TurnRecord(
        kind="customer" if messages is not None else "event",
        messages=tuple(messages or ()),
        event_text=event_text,
        replies=result.replies,
        awaiting_confirmation=result.awaiting_confirmation,
        tool_calls=_calls(new),
        tool_results=tuple(str(m.content) for m in new if isinstance(m, ToolMessage)),
        sent=tuple(SentMessage(*item) for item in wired.sender.sent[sent_before:]),
        appointments_before=before,
        appointments_after=tuple(await wired.all_appointments()),
        latency_ms=elapsed,
    )


async def _events(wired: Wired, run: ScenarioRun, after: int | None, done: set[int]) -> None:
    """Apply the events due once `after` customer turns were answered (None: every event not applied yet)."""
    for index, planned in enumerate(run.scenario.events):
        if index in done or (after is not None and planned.after_turn > after):
            continue
        done.add(index)
        before = tuple(await wired.all_appointments())
        sent_before = len(wired.sender.sent)
        text, to_thread = await apply_event(wired, planned.event, run.scenario.customer.wa_id)
        if to_thread:
            record = await _turn(wired, run, None, text)
            run.turns.append(replace(record, event=planned.event, appointments_before=before))
            continue
        run.turns.append(
            TurnRecord(
                "event",
                event=planned.event,
                event_text=text,
                sent=tuple(SentMessage(*item) for item in wired.sender.sent[sent_before:]),
                appointments_before=before,
                appointments_after=tuple(await wired.all_appointments()),
            )
        )


def _reaching(turns: Sequence[TurnRecord], wa_id: str) -> tuple[str, ...]:
    # What the customer read since their last turn: replies, and messages sent to them (a reminder, the notice of a
    # Calendly change); a system turn has no replies, so nothing is counted twice.
    return tuple(text for t in turns for text in (*t.replies, *(m.body for m in t.sent if m.wa_id == wa_id)))


async def _play(wired: Wired, run: ScenarioRun, customer: CustomerSide) -> None:
    done: set[int] = set()
    answered = 0
    wa_id = run.scenario.customer.wa_id
    await _events(wired, run, 0, done)
    replies: Sequence[str] = _reaching(run.turns, wa_id)
    while answered < run.scenario.max_turns or isinstance(customer, ScriptedCustomer):
        messages = await customer.next_turn(replies)
        if not messages:
            break
        seen = len(run.turns)
        run.turns.append(await _turn(wired, run, messages, None))
        answered += 1
        await _events(wired, run, answered, done)
        replies = _reaching(run.turns[seen:], wa_id)
    # Events planned after turns the customer never took still happen: the calendar does not wait for them.
    await _events(wired, run, None, done)


def _fresh_directory(directory: Path) -> None:
    # Every run starts from an empty database: a leftover file would carry another run's appointments.
    directory.mkdir(parents=True, exist_ok=True)
    for leftover in (DATABASE_FILE, f"{DATABASE_FILE}-wal", f"{DATABASE_FILE}-shm"):
        (directory / leftover).unlink(missing_ok=True)


async def run_scenario(
    scenario: Scenario,
    directory: Path,
    agent: AgentModel,
    customer: CustomerSide,
    *,
    mode: str,
    trial: int = 1,
    tracer: TurnTracer | None = None,
    time_limit: float = DEFAULT_TIMEOUT_SECONDS,
) -> ScenarioRun:
    """Run `scenario` on a fresh SQLite database in `directory` with the agent's `agent` model.

    A failure inside a turn (a stale cassette, a tool error) or the time limit ends the run and is reported in
    `error`, so one broken scenario is a failed case, not a crashed suite.
    """
    await asyncio.to_thread(_fresh_directory, directory)
    business, business_text = scenario_business(scenario)
    url = sqlite_url(directory)
    traced = case_tracer(tracer, scenario.name, mode, business, agent.name)
    started = time.perf_counter()
    async with (
        open_migrated_database(url) as db,
        wire_assistant(db, business, FixedClock(scenario.now), agent.model, tracer=traced) as wired,
    ):
        run = ScenarioRun(scenario, mode, trial, url, business.tz, business_text)
        await seed_store(wired, scenario.customer.wa_id, scenario.customer.profile_name, scenario.seed)
        try:
            async with asyncio.timeout(time_limit):
                await _play(wired, run, customer)
        except TimeoutError:
            run.error = f"{TIMED_OUT} {time_limit:g} s"
        except Exception as exc:  # reported as this scenario's failure (see the docstring)
            run.error = f"{type(exc).__name__}: {exc}"
        run.latency_ms = (time.perf_counter() - started) * 1000
        run.cassette_problem = agent.problem()
        if agent.replay is not None:
            run.played, run.recorded = agent.replay.played, agent.replay.recorded
        run.appointments = await wired.all_appointments()
        rows = await db.fetch_all("SELECT id, wa_id, name, email FROM clients")
        run.clients = {int(row["id"]): str(row["wa_id"]) for row in rows}
        run.client_profiles = {str(row["wa_id"]): {"name": row["name"], "email": row["email"]} for row in rows}
        run.sent = [SentMessage(*item) for item in wired.sender.sent]
        run.handoffs = list(wired.handoff.handoffs)
        return run
