"""LangGraph Studio runs the graph: its factory builds on settings alone, and a JSON run context is enough."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver

from agent import studio
from agent.graph import build_graph
from core.settings import Settings
from store import Database, open_database
from tests.scripted_model import ScriptedChatModel, call, says, uses

CUSTOMER = "whatsapp:+34600123456"
ROOT = Path(__file__).resolve().parents[2]


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


def load_studio_factory() -> ModuleType:
    """Import the graph module the way `langgraph dev` does: by the file path langgraph.json names."""
    spec_text = json.loads((ROOT / "langgraph.json").read_text())["graphs"]["asistente"]
    path, _, attribute = spec_text.partition(":")
    assert attribute == "make_graph"
    spec = importlib.util.spec_from_file_location("studio_entry", ROOT / path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_the_studio_entry_point_runs_a_conversation_as_the_langgraph_server_does(
    db: Database, database_url: str
) -> None:
    settings = Settings(_env_file=None, database_url=database_url)  # type: ignore[call-arg]
    module = load_studio_factory()
    model = ScriptedChatModel(script=[says("¡Hola! ¿Qué servicio quieres?")])
    module.get_settings = lambda: settings
    module.build_chat_model = lambda _settings: model
    opened: list[Database] = []
    module.open_database = lambda url: opened.append(open_database(url)) or opened[-1]
    graph = module.make_graph().copy(update={"checkpointer": InMemorySaver()})  # the server brings its own
    config = {"configurable": {"thread_id": "studio-thread"}}
    try:
        result = await graph.ainvoke(
            {"messages": [{"role": "user", "content": "hola"}]}, config, context={"wa_id": CUSTOMER}
        )
        assert result["messages"][-1].text == "¡Hola! ¿Qué servicio quieres?"
        assert (await graph.aget_state(config)).values["messages"][0].content == "hola"
        model.assert_complete()
    finally:
        # The Studio server keeps its database for its life; a test must close it, or SQLite's connection thread
        # (not a daemon) keeps pytest from exiting.
        for database in opened:
            await database.close()
