"""Whether a run is also a LangSmith experiment, and the executor that makes it one.

With a LangSmith key (LANGSMITH_API_KEY), the scenarios are synced to the dataset `<LANGSMITH_PROJECT>-scenarios`
and the cases run through `langsmith.aevaluate` (evals/experiments.py), so the run appears as an experiment named
after the mode and the prompt version, comparable with other prompt versions in LangSmith. Without a key, or with
ASISTENTE_EVAL_EXPERIMENT=0, the local loop runs the cases.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from pydantic import ValidationError

from core.settings import Settings, get_settings, is_placeholder
from evals.results import CaseResult, RunMeta
from evals.runner import CaseRunner, Executor
from evals.scenario import Scenario

EXPERIMENT_ENV = "ASISTENTE_EVAL_EXPERIMENT"


def _settings() -> Settings | None:
    try:
        return get_settings()
    except ValidationError:
        return None  # the run itself says what is wrong where it matters; replay needs no configuration


def experiment_executor(settings: Settings | None = None) -> Executor | None:
    """An executor recording the run as a LangSmith experiment, or None (no key, or switched off)."""
    settings = settings or _settings()
    key = settings.langsmith_api_key if settings is not None else None
    # A placeholder key (.env.example's) means no LangSmith, as it does for tracing switched off.
    if (
        settings is None
        or key is None
        or is_placeholder(key.get_secret_value())
        or os.environ.get(EXPERIMENT_ENV, "1") == "0"
    ):
        return None
    from agent.tracing import langsmith_client
    from evals.experiments import run_experiment

    client = langsmith_client(settings)  # masked like production traces

    async def execute(scenarios: Sequence[Scenario], run_case: CaseRunner, meta: RunMeta) -> list[CaseResult]:
        version = meta.prompt_version
        label = f"-{meta.label}" if meta.label else ""
        return await run_experiment(
            client,
            scenarios,
            run_case,
            dataset_name=f"{settings.langsmith_project}-scenarios",
            repetitions=meta.trials,
            max_concurrency=meta.concurrency,
            experiment_prefix=f"{meta.mode}-{version}{label}",
            metadata={
                "prompt_version": version,
                "agent_model": meta.agent_model,
                "customer_model": meta.customer_model,
                "mode": meta.mode,
                "trials": meta.trials,
            },
        )

    return execute
