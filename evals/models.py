"""The models beside the agent's in live and simulated runs: the simulated customer and the judge.

Configured apart from the agent's (EVAL_CUSTOMER_*, EVAL_JUDGE_*), so a cheap model can play the customer while
the agent runs the model under test; each falls back to the agent's settings (the judge to the customer's).
"""

from __future__ import annotations

from dataclasses import dataclass

from langchain_core.language_models import BaseChatModel
from langchain_openai import ChatOpenAI
from pydantic import AnyHttpUrl, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from agent.model import REPLAY_API_KEY
from core.settings import Settings


class EvalModelSettings(BaseSettings):
    """EVAL_CUSTOMER_MODEL / _BASE_URL / _API_KEY and EVAL_JUDGE_MODEL / _BASE_URL / _API_KEY (all optional)."""

    model_config = SettingsConfigDict(env_prefix="EVAL_", env_file=".env", extra="ignore")

    customer_model: str | None = None
    customer_base_url: AnyHttpUrl | None = None
    customer_api_key: SecretStr | None = None
    judge_model: str | None = None
    judge_base_url: AnyHttpUrl | None = None
    judge_api_key: SecretStr | None = None


@dataclass(frozen=True)
class ModelChoice:
    """One model: its name, where it is served, and the key (never printed)."""

    name: str
    base_url: str | None
    api_key: SecretStr | None

    def build(self, *, temperature: float | None = None) -> BaseChatModel:
        """A ChatOpenAI for this choice."""
        return ChatOpenAI(
            model=self.name,
            base_url=self.base_url,
            api_key=self.api_key or SecretStr(REPLAY_API_KEY),
            temperature=temperature,
            max_retries=2,
            timeout=60,
        )

    def describe(self) -> str:
        """`name at base_url` (the key is not shown)."""
        return f"{self.name} at {self.base_url or 'https://api.openai.com/v1'}"


def agent_choice(agent: Settings) -> ModelChoice:
    """The agent's model as a choice."""
    base = str(agent.openai_base_url) if agent.openai_base_url else None
    return ModelChoice(agent.openai_model, base, agent.openai_api_key)


def customer_choice(agent: Settings, extra: EvalModelSettings) -> ModelChoice:
    """The simulated customer's model: EVAL_CUSTOMER_* over the agent's settings."""
    fallback = agent_choice(agent)
    return ModelChoice(
        extra.customer_model or fallback.name,
        str(extra.customer_base_url) if extra.customer_base_url else fallback.base_url,
        extra.customer_api_key or fallback.api_key,
    )


def judge_choice(agent: Settings, extra: EvalModelSettings) -> ModelChoice:
    """The judge's model: EVAL_JUDGE_* over the customer's."""
    fallback = customer_choice(agent, extra)
    return ModelChoice(
        extra.judge_model or fallback.name,
        str(extra.judge_base_url) if extra.judge_base_url else fallback.base_url,
        extra.judge_api_key or fallback.api_key,
    )
