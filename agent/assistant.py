"""`Assistant`: runs customer and system turns on the graph, one thread per WhatsApp address."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, cast

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.types import Command

from agent import thread
from agent.api import IncomingText, TurnResult
from agent.checkpointer import prune_threads
from agent.graph import BUDGET_KEY, Graph
from agent.language import detect_language
from agent.policy import TurnPolicy
from agent.prompting import event_message
from agent.state import ConversationState
from agent.tracing import TurnTracer
from agent.turn_outcome import outcome_of, repeats_earlier
from agent.window import bounded_text
from tools.context import ToolServices, TurnContext, TurnKind
from tools.results import problem

logger = logging.getLogger(__name__)


def thread_config(wa_id: str, policy: TurnPolicy | None = None) -> RunnableConfig:
    """One checkpointed thread per customer address, with the turn's step backstop."""
    return {"configurable": {"thread_id": wa_id}, "recursion_limit": (policy or TurnPolicy()).recursion_limit}


def _message_id(message: IncomingText) -> str:
    # The same WhatsApp message always gets the same id: a retried turn replaces it in the thread, never repeats it.
    return f"wa:{message.message_sid}" if message.message_sid else f"wa:{uuid.uuid4().hex}"


class Assistant:
    """The LangGraph agent behind the `ConversationAgent` protocol the server drives."""

    def __init__(
        self,
        graph: Graph,
        services: ToolServices,
        *,
        prune: bool = True,
        prune_every: int = 1,
        tracer: TurnTracer | None = None,
        policy: TurnPolicy | None = None,
    ) -> None:
        """With `prune`, a thread's history is bounded: its own turn prunes it once it has run `prune_every` turns
        since it was last pruned (1: after every turn), and `prune_checkpoints` prunes every thread with turns
        since (the worker's maintenance pass calls it, keeping pruning off most turns)."""
        # `services` must be the ones the graph was built with: here they identify the customer for each turn.
        self._graph = graph
        self._services = services
        self._prune = prune and graph.checkpointer is not None
        self._prune_every = max(1, prune_every)
        self._unpruned: dict[str, int] = {}  # thread -> turns run since it was last pruned
        # Two prunes of one thread at once can deadlock on PostgreSQL: this process runs one at a time.
        self._prune_lock = asyncio.Lock()
        self._tracer = tracer or TurnTracer(None, "asistente")
        self._policy = policy or TurnPolicy()

    @property
    def graph(self) -> Graph:
        """The compiled conversation graph."""
        return self._graph

    @property
    def services(self) -> ToolServices:
        """The services the graph's tools use."""
        return self._services

    async def _context(
        self, wa_id: str, kind: TurnKind, profile_name: str | None, texts: Sequence[str]
    ) -> tuple[TurnContext, tuple[str | None, ...]]:
        """The turn's context, and the customer's names (masked wherever traces show them)."""
        services = self._services
        client = await services.clients.ensure(wa_id, now=services.clock.now(), profile_name=profile_name)
        detected = detect_language(" ".join(texts)) if texts else None
        if detected and detected != client.language:
            client = await services.clients.update_profile(wa_id, now=services.clock.now(), language=detected)
        language = client.language or services.business.language
        names = (profile_name, client.profile_name, client.name)
        return TurnContext(wa_id, profile_name or client.profile_name, kind, language), names

    async def customer_turn(
        self,
        wa_id: str,
        messages: Sequence[IncomingText],
        *,
        profile_name: str | None = None,
        run_id: str | None = None,
    ) -> TurnResult:
        """Run one turn for the customer's messages; a pending confirmation is answered by them instead."""
        messages = [replace(m, body=bounded_text(m.body)) for m in messages]  # stored whole; the model reads less
        # A quick-reply button may arrive without text; its payload stands for what the customer "said".
        said = [(m, text) for m in messages if (text := m.body or m.button_payload or "").strip()]
        texts = [text for _, text in said]
        ctx, names = await self._context(wa_id, "customer", profile_name, texts)
        config = thread_config(wa_id, self._policy)
        snapshot = await self._graph.aget_state(config)
        before = _messages(snapshot.values)
        graph_input: Any
        if not texts and not snapshot.interrupts:
            return TurnResult()  # nothing to answer (the server describes media as text before calling us)
        if snapshot.interrupts:
            replies = [{"text": m.body, "button_payload": m.button_payload} for m in messages]
            graph_input = Command(resume={"replies": replies, "message_id": _message_id(messages[0])})
        else:
            graph_input = {"messages": [HumanMessage(content=text, id=_message_id(m)) for m, text in said]}
        sids = [m.message_sid for m in messages if m.message_sid]
        with self._tracer.turn(
            wa_id, "customer", run_id=run_id, message_sids=sids, names=names, inputs={"messages": texts}
        ) as traced:
            result = await self._run(graph_input, {**config, **traced.config}, ctx)
            finished = await self._finish(wa_id, result, before, system=False)
            traced.finish(finished)
        return replace(finished, run_id=traced.run_id, repeated=repeats_earlier(texts, before))

    async def system_turn(
        self, wa_id: str, event: str, *, event_id: str | None = None, run_id: str | None = None
    ) -> TurnResult:
        """Inject an event into the customer's thread; only `send_whatsapp` reaches the customer."""
        ctx, names = await self._context(wa_id, "system", None, [])
        config = thread_config(wa_id, self._policy)
        snapshot = await self._graph.aget_state(config)
        if snapshot.interrupts:
            await self._withdraw_pending(config, cast(ConversationState, snapshot.values))
        before = _messages(snapshot.values)
        injected = event_message(event, event_id=f"event:{event_id}" if event_id else None)
        with self._tracer.turn(
            wa_id, "system", run_id=run_id, event_id=event_id, names=names, inputs={"event": event}
        ) as traced:
            result = await self._run({"messages": [injected]}, {**config, **traced.config}, ctx)
            finished = await self._finish(wa_id, result, before, system=True)
            traced.finish(finished)
        # A system turn's final text is the agent's note to itself, never a message to the customer.
        return replace(finished, replies=(), run_id=traced.run_id)

    async def prune_checkpoints(self) -> int:
        """Prune every thread that ran a turn since it was last pruned; returns how many threads that was."""
        if not self._prune or not self._unpruned:
            return 0
        return await self._prune_threads(dict(self._unpruned))

    async def _prune_threads(self, turns: dict[str, int]) -> int:
        async with self._prune_lock:
            await prune_threads(self._graph.checkpointer, list(turns))  # type: ignore[arg-type]
        for thread_id, pruned in turns.items():
            # A turn of the thread may have run meanwhile: its checkpoint may have been saved after the prune read.
            left = self._unpruned.get(thread_id, 0) - pruned
            if left > 0:
                self._unpruned[thread_id] = left
            else:
                self._unpruned.pop(thread_id, None)
        return len(turns)

    async def _prune_if_due(self, wa_id: str) -> None:
        turns = self._unpruned.get(wa_id, 0)
        if not self._prune or turns < self._prune_every:
            return
        try:
            await self._prune_threads({wa_id: turns})
        except Exception:
            # Housekeeping: the turn is answered all the same, and the thread is pruned again later.
            logger.exception("could not prune the thread's checkpoints", extra={"wa_id": wa_id})

    async def _run(self, graph_input: Any, config: RunnableConfig, ctx: TurnContext) -> dict[str, Any]:
        if self._prune:
            self._unpruned[ctx.wa_id] = self._unpruned.get(ctx.wa_id, 0) + 1
        try:
            return await self._graph.ainvoke(graph_input, config, context=ctx, durability="exit")
        except Exception:
            # The caller retries the turn; first make sure the stored thread holds no tool call without a result.
            await self._close_open_calls(config)
            raise

    async def _close_open_calls(self, config: RunnableConfig) -> None:
        try:
            snapshot = await self._graph.aget_state(config)
            values = cast(ConversationState, snapshot.values)
            pending = values.get("pending")
            keep = pending["tool_call"]["id"] if pending and snapshot.interrupts else None
            repairs = thread.interrupted_results(values.get("messages", []), keep=keep)
            if repairs:
                await self._graph.aupdate_state(config, {"messages": repairs}, as_node="tools")
        except Exception:
            logger.exception("could not repair the thread after a failed turn")

    async def _withdraw_pending(self, config: RunnableConfig, values: ConversationState) -> None:
        # The event may change what the customer was asked to confirm; the question is withdrawn (nothing is
        # done), so a later "sí" can never confirm it, and the thread never holds a call without an answer.
        pending = values.get("pending")
        if not pending:
            return
        call = pending["tool_call"]
        content = problem(
            "not_confirmed",
            "A calendar event arrived before the customer answered; the question was withdrawn and nothing changed.",
            reason="withdrawn",
        )
        withdrawn = ToolMessage(content=content, tool_call_id=call["id"], name=call["name"])
        await self._graph.aupdate_state(
            config, {"messages": [withdrawn], "pending": None}, as_node="await_confirmation"
        )

    async def _finish(
        self, wa_id: str, result: dict[str, Any], before: Sequence[BaseMessage], *, system: bool
    ) -> TurnResult:
        await self._prune_if_due(wa_id)
        known = {m.id for m in before}
        added = [m for m in result.get("messages", []) if m.id not in known]
        interrupts = result.get("__interrupt__") or ()
        replies: tuple[str, ...] = ()
        confirmation_id = budget = None
        last = result["messages"][-1] if result.get("messages") else None
        if interrupts:
            value = interrupts[0].value
            replies, confirmation_id = (str(value["question"]),), str(value["id"])
        elif isinstance(last, AIMessage) and not last.tool_calls:
            budget = last.response_metadata.get(BUDGET_KEY)
            text = last.text.strip()
            replies = (text,) if text else ()
        outcome = outcome_of(
            added, system=system, asked_to_confirm=bool(interrupts), cut_short=bool(budget), replied=bool(replies)
        )
        return TurnResult(
            replies=replies,
            awaiting_confirmation=bool(interrupts),
            confirmation_id=confirmation_id,
            budget_exhausted=str(budget) if budget else None,
            outcome=outcome.outcome,
            appointment_ids=outcome.appointment_ids,
            rejected_confirmation=outcome.rejected_confirmation,
        )


def _messages(values: Any) -> list[BaseMessage]:
    """The thread's messages in a state snapshot (none for a new customer)."""
    return list(cast(ConversationState, values).get("messages", [])) if values else []
