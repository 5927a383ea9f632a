"""The chat model factory: OpenAI (or any OpenAI-compatible server) through langchain-openai."""

from __future__ import annotations

import httpx
from langchain_core.language_models import BaseChatModel
from langchain_openai import ChatOpenAI
from pydantic import SecretStr

from core.settings import Settings

# Used only when no key is configured and requests are answered from recorded cassettes (demo, evals):
# the request must still be well-formed, and this value can never authenticate anywhere.
REPLAY_API_KEY = "sk-replay-no-network"


def build_chat_model(
    settings: Settings, *, temperature: float | None = None, http_client: httpx.AsyncClient | None = None
) -> BaseChatModel:
    """A `ChatOpenAI` configured from settings: model, base URL, timeout and retries; `http_client` carries its
    requests instead of a default one (evaluations replay and record model answers through it)."""
    api_key = settings.openai_api_key or SecretStr(REPLAY_API_KEY)
    return ChatOpenAI(
        model=settings.openai_model,
        api_key=api_key,
        base_url=str(settings.openai_base_url) if settings.openai_base_url else None,
        timeout=settings.openai_timeout_seconds,
        max_retries=settings.openai_max_retries,
        temperature=temperature,
        http_async_client=http_client,
        # Tool calls are validated and executed one write at a time by the graph.
        model_kwargs={"parallel_tool_calls": True},
    )
