"""`Assistant`: runs customer and system turns on the graph, one thread per WhatsApp address."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, cast

from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
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
        tracer: TurnTracer | None = None,
        policy: TurnPolicy | None = None,
    ) -> None:
        # `services` must be the ones the graph was built with: here they identify the customer for each turn.
        self._graph = graph
        self._services = services
        self._prune = prune
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

    async def _context(self, wa_id: str, kind: TurnKind, profile_name: str | None, texts: Sequence[str]) -> TurnContext:
        services = self._services
        client = await services.clients.ensure(wa_id, now=services.clock.now(), profile_name=profile_name)
        detected = detect_language(" ".join(texts)) if texts else None
        if detected and detected != client.language:
            client = await services.clients.update_profile(wa_id, now=services.clock.now(), language=detected)
        language = client.language or services.business.language
        return TurnContext(wa_id, profile_name or client.profile_name, kind, language)

    async def customer_turn(
        self, wa_id: str, messages: Sequence[IncomingText], *, profile_name: str | None = None
    ) -> TurnResult:
        """Run one turn for the customer's messages; a pending confirmation is answered by them instead."""
        messages = [replace(m, body=bounded_text(m.body)) for m in messages]  # stored whole; the model reads less
        # A quick-reply button may arrive without text; its payload stands for what the customer "said".
        said = [(m, text) for m in messages if (text := m.body or m.button_payload or "").strip()]
        texts = [text for _, text in said]
        ctx = await self._context(wa_id, "customer", profile_name, texts)
        config = thread_config(wa_id, self._policy)
        snapshot = await self._graph.aget_state(config)
        graph_input: Any
        if not texts and not snapshot.interrupts:
            return TurnResult()  # nothing to answer (the server describes media as text before calling us)
        if snapshot.interrupts:
            replies = [{"text": m.body, "button_payload": m.button_payload} for m in messages]
            graph_input = Command(resume={"replies": replies, "message_id": _message_id(messages[0])})
        else:
            graph_input = {"messages": [HumanMessage(content=text, id=_message_id(m)) for m, text in said]}
        with self._tracer.turn(wa_id, "customer"):
            result = await self._run(graph_input, config, ctx)
        return await self._finish(wa_id, result)

    async def system_turn(self, wa_id: str, event: str, *, event_id: str | None = None) -> TurnResult:
        """Inject an event into the customer's thread; only `send_whatsapp` reaches the customer."""
        ctx = await self._context(wa_id, "system", None, [])
        config = thread_config(wa_id, self._policy)
        snapshot = await self._graph.aget_state(config)
        if snapshot.interrupts:
            await self._withdraw_pending(config, cast(ConversationState, snapshot.values))
        injected = event_message(event, event_id=f"event:{event_id}" if event_id else None)
        with self._tracer.turn(wa_id, "system"):
            result = await self._run({"messages": [injected]}, config, ctx)
        finished = await self._finish(wa_id, result)
        # A system turn's final text is the agent's note to itself, never a message to the customer.
        return TurnResult(budget_exhausted=finished.budget_exhausted)

    async def _run(self, graph_input: Any, config: RunnableConfig, ctx: TurnContext) -> dict[str, Any]:
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

    async def _finish(self, wa_id: str, result: dict[str, Any]) -> TurnResult:
        if self._prune and self._graph.checkpointer is not None:
            await prune_threads(self._graph.checkpointer, [wa_id])  # type: ignore[arg-type]
        interrupts = result.get("__interrupt__") or ()
        if interrupts:
            value = interrupts[0].value
            return TurnResult(
                replies=(str(value["question"]),), awaiting_confirmation=True, confirmation_id=str(value["id"])
            )
        last = result["messages"][-1] if result.get("messages") else None
        if not isinstance(last, AIMessage) or last.tool_calls:
            return TurnResult()
        budget = last.response_metadata.get(BUDGET_KEY)
        text = last.text.strip()
        return TurnResult(replies=(text,) if text else (), budget_exhausted=str(budget) if budget else None)
