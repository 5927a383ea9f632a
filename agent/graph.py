"""The conversation as a state machine.

    START -> agent --(no tool calls)--> compact -> END
               |--(tool calls)--> tools --(a write call)--> review --(valid)--> await_confirmation -> agent
               ^                    |                          |--(invalid: refusal to the model)--> agent
               |--------------------+ (reads only)

Write tools never run from the model's call alone: `review` validates the call and renders a question,
`await_confirmation` pauses the thread (`interrupt`) until the customer answers, and only a clear yes executes it.
"""

from __future__ import annotations

from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolCall, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.config import get_config
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolRuntime
from langgraph.runtime import Runtime
from langgraph.types import interrupt
from pydantic import ValidationError

from agent.confirmation import is_clear_yes
from agent.prompting import dynamic_context, static_prefix
from agent.state import ConversationState, PendingAction
from agent.window import compaction, model_window
from tools.context import ToolContext, ToolServices, TurnContext
from tools.registry import ALL_TOOLS, TOOLS_BY_NAME, WRITE_TOOLS
from tools.results import Refusal, problem

Graph = CompiledStateGraph[ConversationState, TurnContext, Any, Any]


def _last_ai(state: ConversationState) -> AIMessage:
    for message in reversed(state.get("messages", [])):
        if isinstance(message, AIMessage):
            return message
    raise ValueError("no model message in the thread")


def _unanswered(state: ConversationState) -> list[ToolCall]:
    """Tool calls of the last model message that have no ToolMessage yet."""
    answered = {m.tool_call_id for m in state.get("messages", []) if isinstance(m, ToolMessage)}
    return [call for call in _last_ai(state).tool_calls if call["id"] not in answered]


def _invalid_arguments(call: ToolCall, exc: ValidationError) -> ToolMessage:
    details = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
    content = problem("invalid_arguments", f"Fix the arguments and call {call['name']} again. {details}")
    return ToolMessage(content=content, tool_call_id=call["id"], name=call["name"], status="error")


async def run_tool(
    call: ToolCall,
    state: ConversationState,
    runtime: Runtime[TurnContext],
    services: ToolServices,
    config: RunnableConfig | None = None,
) -> ToolMessage:
    """Validate a call's arguments against the tool's schema and run it with this turn and the services."""
    tool = TOOLS_BY_NAME.get(call["name"])
    if tool is None:
        content = problem("unknown_tool", f"There is no tool {call['name']!r}.", tools=sorted(TOOLS_BY_NAME))
        return ToolMessage(content=content, tool_call_id=call["id"], name=call["name"], status="error")
    try:
        tool.tool_call_schema.model_validate(call["args"])  # type: ignore[union-attr]
    except ValidationError as exc:
        return _invalid_arguments(call, exc)
    tool_runtime = ToolRuntime(
        state=state,
        context=ToolContext(runtime.context, services),
        config=get_config() if config is None else config,
        stream_writer=runtime.stream_writer,
        tool_call_id=call["id"],
        store=runtime.store,
    )
    result = await tool.ainvoke({**call, "args": {**call["args"], "runtime": tool_runtime}})
    assert isinstance(result, ToolMessage)
    return result


async def tools(state: ConversationState, runtime: Runtime[TurnContext], services: ToolServices) -> dict[str, Any]:
    """Run read calls now; the first write call waits for `review`; further writes in the same message go back."""
    results: list[ToolMessage] = []
    write_seen = False
    for call in _unanswered(state):
        if call["name"] not in WRITE_TOOLS:
            results.append(await run_tool(call, state, runtime, services))
        elif write_seen:
            content = problem(
                "one_change_at_a_time", "Only one change can be confirmed at a time; call it again afterwards."
            )
            results.append(ToolMessage(content=content, tool_call_id=call["id"], name=call["name"], status="error"))
        else:
            write_seen = True
    return {"messages": results}


async def review(state: ConversationState, runtime: Runtime[TurnContext], services: ToolServices) -> dict[str, Any]:
    """Validate the write call and render its confirmation question; an invalid call goes back to the model."""
    call = _unanswered(state)[0]
    write = WRITE_TOOLS[call["name"]]
    try:
        args = write.tool.tool_call_schema.model_validate(call["args"]).model_dump()  # type: ignore[union-attr]
        question = await write.confirm(ToolContext(runtime.context, services), args)
    except ValidationError as exc:
        return {"messages": [_invalid_arguments(call, exc)]}
    except Refusal as refusal:
        return {"messages": [ToolMessage(content=refusal.result(), tool_call_id=call["id"], name=call["name"])]}
    return {"pending": PendingAction(tool_call=dict(call), question=question)}


async def await_confirmation(
    state: ConversationState, runtime: Runtime[TurnContext], services: ToolServices
) -> dict[str, Any]:
    """Pause until the customer answers the question; only a clear yes executes the write."""
    pending = state.get("pending")
    assert pending is not None
    call = ToolCall(**pending["tool_call"])  # type: ignore[typeddict-item]
    # The customer's next message resumes the thread with {"text", "button_payload"}.
    answer: dict[str, Any] = interrupt({"question": pending["question"], "tool": call["name"]})
    text = str(answer.get("text", ""))
    if is_clear_yes(text, answer.get("button_payload")):
        result = await run_tool(call, state, runtime, services)
    else:
        content = problem(
            "not_confirmed",
            "The customer did not confirm, so nothing was changed. Their reply follows; act on what they said.",
            customer_reply=text,
        )
        result = ToolMessage(content=content, tool_call_id=call["id"], name=call["name"])
    return {"messages": [result, HumanMessage(content=text)], "pending": None}


async def compact(state: ConversationState) -> dict[str, Any]:
    """Drop turns older than the stored window from the checkpointed thread."""
    return {"messages": compaction(state.get("messages", []))}


def after_agent(state: ConversationState) -> Literal["tools", "compact"]:
    """Tool calls are executed; a plain answer ends the turn."""
    return "tools" if _last_ai(state).tool_calls else "compact"


def after_tools(state: ConversationState) -> Literal["review", "agent"]:
    """A write call still unanswered goes to review; otherwise the model reads the results."""
    return "review" if _unanswered(state) else "agent"


def after_review(state: ConversationState) -> Literal["await_confirmation", "agent"]:
    """A valid write waits for the customer; a refused one goes back to the model."""
    return "await_confirmation" if state.get("pending") else "agent"


def build_graph(
    model: BaseChatModel, services: ToolServices, checkpointer: BaseCheckpointSaver[Any] | None = None
) -> Graph:
    """Compile the conversation graph around a tool-calling chat model and the services its tools use.

    The run context is a `TurnContext` (who the customer is, from the channel); the services are bound here.
    """
    bound = model.bind_tools(list(ALL_TOOLS))

    async def agent(state: ConversationState, runtime: Runtime[TurnContext]) -> dict[str, Any]:
        """Ask the model: static prefix, this turn's context, then the recent history."""
        window = model_window(state.get("messages", []))
        turn_context = await dynamic_context(ToolContext(runtime.context, services))
        prompt: list[AnyMessage] = [static_prefix(services.business), turn_context, *window]
        return {"messages": [await bound.ainvoke(prompt)]}

    # The remaining nodes are module-level functions (testable alone) given the services here.
    async def run_tools(state: ConversationState, runtime: Runtime[TurnContext]) -> dict[str, Any]:
        return await tools(state, runtime, services)

    async def review_write(state: ConversationState, runtime: Runtime[TurnContext]) -> dict[str, Any]:
        return await review(state, runtime, services)

    async def confirm_write(state: ConversationState, runtime: Runtime[TurnContext]) -> dict[str, Any]:
        return await await_confirmation(state, runtime, services)

    builder = StateGraph(ConversationState, context_schema=TurnContext)
    builder.add_node("agent", agent)
    builder.add_node("tools", run_tools)
    builder.add_node("review", review_write)
    builder.add_node("await_confirmation", confirm_write)
    builder.add_node("compact", compact)
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", after_agent)
    builder.add_conditional_edges("tools", after_tools)
    builder.add_conditional_edges("review", after_review)
    builder.add_edge("await_confirmation", "agent")
    builder.add_edge("compact", END)
    return builder.compile(checkpointer=checkpointer)
