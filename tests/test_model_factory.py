"""The model factory turns settings into a configured ChatOpenAI."""

from __future__ import annotations

from langchain_openai import ChatOpenAI

from agent.model import REPLAY_API_KEY, build_chat_model
from core.settings import Settings


def test_chat_openai_is_configured_from_settings() -> None:
    settings = Settings(
        openai_api_key="sk-proj-9f8e7d6c5b4a3f2e1d0c",  # type: ignore[arg-type]
        openai_model="gpt-5-mini",
        openai_base_url="http://127.0.0.1:8080/v1",  # type: ignore[arg-type]
        openai_timeout_seconds=12.5,
        openai_max_retries=4,
    )
    model = build_chat_model(settings)
    assert isinstance(model, ChatOpenAI)
    assert model.model_name == "gpt-5-mini"
    assert model.openai_api_base == "http://127.0.0.1:8080/v1"
    assert model.request_timeout == 12.5 and model.max_retries == 4
    assert (
        model.openai_api_key is not None and model.openai_api_key.get_secret_value() == "sk-proj-9f8e7d6c5b4a3f2e1d0c"
    )


def test_without_a_key_the_model_can_only_replay() -> None:
    model = build_chat_model(Settings())
    assert isinstance(model, ChatOpenAI)
    assert model.openai_api_key is not None and model.openai_api_key.get_secret_value() == REPLAY_API_KEY
