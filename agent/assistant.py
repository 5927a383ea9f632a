"""`Assistant`: runs customer and system turns on the graph, one thread per WhatsApp address."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.types import Command

from agent.api import IncomingText, TurnResult
from agent.checkpointer import prune_threads
from agent.confirmation import guess_language
from agent.graph import Graph
from agent.prompting import event_message
from agent.state import ConversationState
from agent.tracing import TurnTracer
from tools.context import ToolServices, TurnContext, TurnKind
from tools.results import problem


def thread_config(wa_id: str) -> RunnableConfig:
    """One checkpointed thread per customer address."""
    return {"configurable": {"thread_id": wa_id}}


class Assistant:
    """The LangGraph agent behind the `ConversationAgent` protocol the server drives."""

    def __init__(
        self, graph: Graph, services: ToolServices, *, prune: bool = True, tracer: TurnTracer | None = None
    ) -> None:
        # `services` must be the ones the graph was built with: here they identify the customer for each turn.
        self._graph = graph
        self._services = services
        self._prune = prune
        self._tracer = tracer or TurnTracer(None, "asistente")

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
        guessed = guess_language(" ".join(texts)) if texts else None
        if guessed and guessed != client.language:
            client = await services.clients.update_profile(wa_id, now=services.clock.now(), language=guessed)
        language = client.language or services.business.language
        return TurnContext(wa_id, profile_name or client.profile_name, kind, language)

    async def customer_turn(
        self, wa_id: str, messages: Sequence[IncomingText], *, profile_name: str | None = None
    ) -> TurnResult:
        """Run one turn for the customer's messages; a pending confirmation is answered by them instead."""
        # A quick-reply button may arrive without text; its payload is what the customer "said".
        texts = [m.body or m.button_payload or "" for m in messages]
        texts = [t for t in texts if t.strip()]
        ctx = await self._context(wa_id, "customer", profile_name, texts)
        config = thread_config(wa_id)
        snapshot = await self._graph.aget_state(config)
        graph_input: Any
        if not texts and not snapshot.interrupts:
            return TurnResult()  # nothing to answer (the server describes media as text before calling us)
        if snapshot.interrupts:
            payloads = [m.button_payload for m in messages if m.button_payload]
            graph_input = Command(
                resume={"text": "\n".join(texts), "button_payload": payloads[-1] if payloads else None}
            )
        else:
            graph_input = {"messages": [HumanMessage(content=text) for text in texts]}
        with self._tracer.turn(wa_id, "customer"):
            result = await self._graph.ainvoke(graph_input, config, context=ctx, durability="exit")
        return await self._finish(wa_id, result)

    async def system_turn(self, wa_id: str, event: str) -> TurnResult:
        """Inject an event into the customer's thread; only `send_whatsapp` reaches the customer."""
        ctx = await self._context(wa_id, "system", None, [])
        config = thread_config(wa_id)
        snapshot = await self._graph.aget_state(config)
        if snapshot.interrupts:
            await self._supersede_pending(config, cast(ConversationState, snapshot.values))
        with self._tracer.turn(wa_id, "system"):
            result = await self._graph.ainvoke(
                {"messages": [event_message(event)]}, config, context=ctx, durability="exit"
            )
        await self._finish(wa_id, result)
        # A system turn's final text is the agent's note to itself, never a message to the customer.
        return TurnResult(replies=(), awaiting_confirmation=False)

    async def _supersede_pending(self, config: RunnableConfig, values: ConversationState) -> None:
        # The event may change what the customer was asked to confirm; the question is withdrawn (nothing is
        # done) so the thread never holds a tool call without an answer. The model can ask again.
        pending = values.get("pending")
        if not pending:
            return
        call = pending["tool_call"]
        content = problem(
            "not_confirmed",
            "A calendar event arrived before the customer answered; nothing was changed. Ask again if still relevant.",
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
            return TurnResult(replies=(str(interrupts[0].value["question"]),), awaiting_confirmation=True)
        last = result["messages"][-1] if result.get("messages") else None
        if isinstance(last, AIMessage) and not last.tool_calls and last.text.strip():
            return TurnResult(replies=(last.text.strip(),))
        return TurnResult()
