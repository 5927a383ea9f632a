"""Every entry point traces when tracing is on: `chat`, `demo` and `eval`, each against the local LangSmith double,
each kept apart from production threads (eval and demo: their own project, tags and thread prefix)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli.main import app
from core.settings import get_settings
from evals.scenario import load_scenarios
from tests.chat_harness import GREETING, ModelDouble
from tests.langsmith_double import FAKE_API_KEY, Json, LangSmithDouble, langsmith_environment

# The scenarios' customer numbers (evals/scenarios/*.yaml), as digits.
RECORDED_NUMBERS = tuple(s.customer.wa_id.removeprefix("whatsapp:+") for s in load_scenarios(None))


@pytest.fixture
def traced_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LangSmithDouble]:
    """Tracing on, from the environment as a user would turn it on, against the LangSmith double."""
    monkeypatch.chdir(tmp_path)
    env = {
        "LANGSMITH_TRACING": "true",
        "ASISTENTE_EVAL_EXPERIMENT": "0",  # turn traces only (experiments: tests/evals)
        "DATABASE_URL": f"sqlite:///{tmp_path / 'chat.db'}",
    }
    with langsmith_environment(monkeypatch, **env) as double:
        yield double


def ended_roots(double: LangSmithDouble, at_least: int) -> list[Json]:
    def ended() -> list[Json] | None:
        found = [r for r in double.roots() if r.get("end_time")]
        return found if len(found) >= at_least else None

    return double.wait_for(ended, what=f"{at_least} ended root runs")


def metadata(run: Json) -> dict[str, Any]:
    return dict((run.get("extra") or {}).get("metadata") or {})


def test_the_demo_is_traced_as_an_eval_run_apart_from_production(traced_env: LangSmithDouble) -> None:
    result = CliRunner().invoke(app, ["demo"])
    assert result.exit_code == 0, result.output
    roots = ended_roots(traced_env, 3)
    assert {r["name"] for r in roots} == {"WhatsApp turn"}
    for root in roots:
        assert root["session_name"] == "salon-eval"
        assert {"eval", "mode:demo", "scenario:demo_booking_es"} <= set(root["tags"])
        assert metadata(root)["thread_id"].startswith("eval:demo_booking_es:cust_")
    sent = traced_env.all_bytes()
    assert len(RECORDED_NUMBERS) >= 5 and not [n for n in RECORDED_NUMBERS if n.encode() in sent]


def test_eval_traces_each_conversation_under_its_scenario(traced_env: LangSmithDouble) -> None:
    result = CliRunner().invoke(app, ["eval", "cancel_es", "booking_en"])
    assert result.exit_code == 0, result.output
    roots = ended_roots(traced_env, 2)
    scenarios = {metadata(r)["eval_scenario"] for r in roots}
    assert scenarios == {"cancel_es", "booking_en"}
    assert all(metadata(r)["eval_mode"] == "replay" and r["session_name"] == "salon-eval" for r in roots)
    threads = {metadata(r)["eval_scenario"]: metadata(r)["thread_id"] for r in roots}
    assert threads["cancel_es"] != threads["booking_en"]


def test_chat_is_traced_in_its_own_threads(traced_env: LangSmithDouble, monkeypatch: pytest.MonkeyPatch) -> None:
    with ModelDouble() as model:
        monkeypatch.setenv("OPENAI_BASE_URL", model.url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-local-0123456789")
        monkeypatch.setenv("OPENAI_MAX_RETRIES", "0")
        get_settings.cache_clear()
        result = CliRunner().invoke(app, ["chat", "--as", "console:ana", "--name", "Ana"], input="hola\n/quit\n")
    assert result.exit_code == 0, result.output
    assert GREETING in result.output
    [root] = ended_roots(traced_env, 1)
    assert root["name"] == "WhatsApp turn" and root["session_name"] == "salon"
    assert "chat" in root["tags"] and metadata(root)["thread_id"].startswith("chat:cust_")
    assert b"Ana" not in traced_env.all_bytes()


def test_without_tracing_the_demo_sends_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with LangSmithDouble() as double:
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("LANGSMITH_ENDPOINT", double.url)
        monkeypatch.setenv("LANGSMITH_API_KEY", FAKE_API_KEY)
        get_settings.cache_clear()
        result = CliRunner().invoke(app, ["demo"])
        get_settings.cache_clear()
        assert result.exit_code == 0, result.output
        assert double.requests == []
