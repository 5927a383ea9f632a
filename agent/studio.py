"""Entry point for LangGraph Studio / `langgraph dev` (see langgraph.json): the graph with the configured model.

The platform supplies the checkpointer; the run context (customer, calendar, store) must be passed by the caller.
"""

from __future__ import annotations

from agent.graph import Graph, build_graph
from agent.model import build_chat_model
from core.settings import get_settings


def make_graph() -> Graph:
    """Build the conversation graph around the model from settings."""
    return build_graph(build_chat_model(get_settings()))
