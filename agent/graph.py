"""The conversation as a state machine.

    START -> agent --(no tool calls)--> compact -> END
               |--(tool calls)--> tools --(a write call)--> review --(valid)--> await_confirmation -> agent
               ^                    |                          |--(invalid: refusal to the model)--> agent
               |--------------------+ (reads only)
    agent or tools --(turn budget spent)--> out_of_budget -> compact -> END

Write tools never run from the model's call alone: `review` validates the call and renders a question,
`await_confirmation` pauses the thread (`interrupt`) until the customer answers, and only a clear yes to that very
question executes it (`agent.gate`). Tools run through LangGraph's `ToolNode` (`agent.execution`); resuming a
confirmation runs the confirmed call alone, never its siblings again.
"""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseChatModel
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from agent.nodes import BUDGET_KEY, Nodes, after_review
from agent.policy import TurnPolicy
from agent.state import ConversationState
from tools.context import ToolServices, TurnContext

__all__ = ["BUDGET_KEY", "Graph", "build_graph"]

Graph = CompiledStateGraph[ConversationState, TurnContext, Any, Any]


def build_graph(
    model: BaseChatModel,
    services: ToolServices,
    checkpointer: BaseCheckpointSaver[Any] | None = None,
    *,
    policy: TurnPolicy | None = None,
) -> Graph:
    """Compile the conversation graph around a tool-calling chat model and the services its tools use.

    The run context is a `TurnContext` (who the customer is, from the channel); the services are bound here.
    """
    nodes = Nodes(model, services, policy or TurnPolicy())
    builder = StateGraph(ConversationState, context_schema=TurnContext)
    builder.add_node("agent", nodes.agent)
    builder.add_node("tools", nodes.tools)
    builder.add_node("review", nodes.review)
    builder.add_node("await_confirmation", nodes.await_confirmation)
    builder.add_node("out_of_budget", nodes.out_of_budget)
    builder.add_node("compact", nodes.compact)
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", nodes.after_agent)
    builder.add_conditional_edges("tools", nodes.after_tools)
    builder.add_conditional_edges("review", after_review)
    builder.add_edge("await_confirmation", "agent")
    builder.add_edge("out_of_budget", "compact")
    builder.add_edge("compact", END)
    return builder.compile(checkpointer=checkpointer)
