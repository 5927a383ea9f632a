"""LangGraph Studio runs the graph: its factory builds on settings alone, and a JSON run context is enough."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver

from agent import studio
from agent.graph import build_graph
from core.settings import Settings
from store import Database
from tests.scripted_model import ScriptedChatModel, call, says, uses

CUSTOMER = "whatsapp:+34600123456"


async def test_studio_graph_runs_with_a_json_context(
    db: Database, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(_env_file=None, database_url=database_url, openai_api_key="sk-test-not-real")  # type: ignore[call-arg]
    monkeypatch.setattr(studio, "get_settings", lambda: settings)
    assert studio.make_graph().context_schema.__name__ == "TurnContext"

    model = ScriptedChatModel(script=[uses(call("lookup_client")), says("Hola, ¿en qué te ayudo?")])
    services = studio.studio_services(settings, db)
    graph = build_graph(model, services, InMemorySaver())
    # What Studio sends: plain JSON, coerced into a TurnContext by LangGraph.
    result = await graph.ainvoke(
        {"messages": [HumanMessage(content="hola")]},
        {"configurable": {"thread_id": CUSTOMER}},
        context={"wa_id": CUSTOMER, "language": "es"},
    )
    last = result["messages"][-1]
    assert isinstance(last, AIMessage) and last.text == "Hola, ¿en qué te ayudo?"
    looked_up = result["messages"][-2]
    assert '"known": false' in str(looked_up.content)  # the tool ran against the configured database
    model.assert_complete()
