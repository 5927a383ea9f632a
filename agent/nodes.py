"""The nodes of the conversation graph, with what they share: the model, the services, the tool runner, the limits.

`agent.graph` wires them; each method is one node (or router) and reads like one step of the diagram there.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, InvalidToolCall, ToolCall, ToolMessage
from langgraph.config import get_config
from langgraph.runtime import Runtime
from langgraph.types import interrupt

from agent import gate, thread
from agent.confirmation import Reply
from agent.execution import ToolRunner
from agent.policy import TurnPolicy
from agent.prompting import dynamic_context, static_prefix
from agent.state import ConversationState
from agent.window import compaction, model_window
from prompts import render_localized
from tools.context import ToolContext, ToolServices, TurnContext
from tools.registry import ALL_TOOLS, WRITE_TOOLS
from tools.results import problem

logger = logging.getLogger(__name__)

SEND_TOOL = "send_whatsapp"
BUDGET_KEY = "budget_exhausted"


def _last_ai(state: ConversationState) -> AIMessage:
    for message in reversed(state.get("messages", [])):
        if isinstance(message, AIMessage):
            return message
    raise ValueError("no model message in the thread")


def _unanswered(state: ConversationState) -> list[ToolCall]:
    """Tool calls of the last model message that have no ToolMessage yet."""
    answered = {m.tool_call_id for m in state.get("messages", []) if isinstance(m, ToolMessage)}
    return [call for call in _last_ai(state).tool_calls if call["id"] not in answered]


def _model_budget_spent(state: ConversationState, policy: TurnPolicy) -> bool:
    # The last allowed model call may answer, but not ask for more tools.
    last = _last_ai(state)
    calls = thread.model_calls_this_turn(state.get("messages", []))
    return calls >= policy.max_model_calls and bool(last.tool_calls or last.invalid_tool_calls)


def _send_limit_refused(state: ConversationState, policy: TurnPolicy) -> bool:
    # More send_whatsapp calls were answered this turn than it allows: the extra ones were refused, and the turn
    # ends instead of looping on refusals.
    return thread.calls_this_turn(state.get("messages", []), SEND_TOOL) > policy.max_messages_sent


def _unreadable(call: InvalidToolCall) -> ToolMessage:
    content = problem("invalid_arguments", f"The arguments could not be read ({call.get('error')}); call again.")
    return ToolMessage(content=content, tool_call_id=call["id"] or "", name=call["name"] or "unknown", status="error")


def after_review(state: ConversationState) -> Literal["await_confirmation", "agent"]:
    """A valid write waits for the customer; a refused one goes back to the model."""
    return "await_confirmation" if state.get("pending") else "agent"


class Nodes:
    """Every node of one compiled graph."""

    def __init__(self, model: BaseChatModel, services: ToolServices, policy: TurnPolicy) -> None:
        self._model = model.bind_tools(list(ALL_TOOLS))
        self._services = services
        self._policy = policy
        self._runner = ToolRunner(ALL_TOOLS, services)

    async def agent(self, state: ConversationState, runtime: Runtime[TurnContext]) -> dict[str, Any]:
        """Ask the model: static prefix, this turn's context, then the recent history (made valid first)."""
        messages = state.get("messages", [])
        repairs = thread.interrupted_results(messages)
        window = model_window([*messages, *repairs])
        turn_context = await dynamic_context(ToolContext(runtime.context, self._services))
        prompt: list[AnyMessage] = [static_prefix(self._services.business), turn_context, *window]
        answer = await self._model.ainvoke(prompt)
        assert isinstance(answer, AIMessage)
        return {"messages": [*repairs, thread.with_own_ids(answer)]}

    async def tools(self, state: ConversationState, runtime: Runtime[TurnContext]) -> dict[str, Any]:
        """Run read calls now; the first write waits for `review`; others (and spent budgets) go back refused."""
        results = [_unreadable(bad) for bad in _last_ai(state).invalid_tool_calls]
        reads: list[ToolCall] = []
        write_seen = False
        sends_left = self._policy.max_messages_sent - thread.calls_this_turn(state.get("messages", []), SEND_TOOL)
        for call in _unanswered(state):
            if call["name"] in WRITE_TOOLS:
                if runtime.context.kind == "system":
                    results.append(gate.system_turn_refusal(call))
                elif write_seen:
                    results.append(
                        gate.refusal(call, "one_change_at_a_time", "Only one change can be confirmed at a time.")
                    )
                write_seen = True
            elif call["name"] == SEND_TOOL and sends_left <= 0:
                results.append(gate.refusal(call, "limit_reached", "No more messages can be sent in this turn."))
            else:
                sends_left -= call["name"] == SEND_TOOL
                reads.append(call)
        return {"messages": [*results, *await self._runner.run(reads, get_config())]}

    def after_tools(self, state: ConversationState) -> Literal["review", "agent", "out_of_budget"]:
        """A spent budget ends the turn; a write still unanswered goes to review; else the model reads results."""
        if _send_limit_refused(state, self._policy):
            return "out_of_budget"
        return "review" if _unanswered(state) else "agent"

    async def review(self, state: ConversationState, runtime: Runtime[TurnContext]) -> dict[str, Any]:
        """Validate the write call and render its question; an invalid call goes back to the model."""
        checked = await gate.review(
            _unanswered(state)[0], runtime.context, self._services, self._policy.confirmation_ttl
        )
        if isinstance(checked, ToolMessage):
            return {"messages": [checked]}
        return {"pending": checked}

    async def await_confirmation(self, state: ConversationState, runtime: Runtime[TurnContext]) -> dict[str, Any]:
        """Pause until the customer answers the question; only a clear, fresh yes to it executes the write."""
        pending = state.get("pending")
        assert pending is not None
        call = ToolCall(**pending["tool_call"])  # type: ignore[typeddict-item]
        # The customer's next messages resume the thread with {"replies": [{text, button_payload}], "message_id"}.
        answer: dict[str, Any] = interrupt({"question": pending["question"], "tool": call["name"], "id": pending["id"]})
        replies = [Reply(str(r.get("text") or ""), r.get("button_payload")) for r in answer.get("replies", [])]
        text = "\n".join(r.text for r in replies if r.text.strip())
        client = await self._services.clients.get(runtime.context.wa_id)
        names = [n for n in (runtime.context.profile_name, client.name if client else None) if n]
        decision = gate.decide(pending, replies, self._services.clock.now(), names)
        if decision == "confirmed":
            [result] = await self._runner.run([call], get_config())
        else:
            result = gate.unconfirmed_result(call, decision, text)
        said = HumanMessage(content=text, id=answer.get("message_id"))
        return {"messages": [result, said], "pending": None}

    async def out_of_budget(self, state: ConversationState, runtime: Runtime[TurnContext]) -> dict[str, Any]:
        """End a runaway turn: close its open calls and, in a customer turn, say so briefly."""
        reason = "model_calls" if _model_budget_spent(state, self._policy) else "messages_sent"
        logger.warning("turn budget exhausted", extra={"wa_id": runtime.context.wa_id, "reason": reason})
        closing = [
            gate.refusal(call, "budget_exhausted", "This turn is over; nothing more was done.")
            for call in _unanswered(state)
        ]
        # A system turn's text never reaches the customer anyway.
        system = runtime.context.kind == "system"
        text = "" if system else render_localized("messages/turn_budget", runtime.context.language)
        final = AIMessage(content=text, response_metadata={BUDGET_KEY: reason})
        return {"messages": [*closing, final]}

    async def compact(self, state: ConversationState) -> dict[str, Any]:
        """Drop turns older than the stored window from the checkpointed thread."""
        return {"messages": compaction(state.get("messages", []))}

    def after_agent(self, state: ConversationState) -> Literal["tools", "compact", "out_of_budget"]:
        """Tool calls are executed (unless the turn's model calls are spent); a plain answer ends the turn."""
        if _model_budget_spent(state, self._policy):
            return "out_of_budget"
        last = _last_ai(state)
        return "tools" if last.tool_calls or last.invalid_tool_calls else "compact"
