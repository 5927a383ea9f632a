"""An evaluation run recorded as a LangSmith experiment, so prompt versions can be compared in LangSmith.

The scenarios are synced to a dataset (evals/experiment_dataset.py), then `langsmith.aevaluate` runs every scenario
`repetitions` times as one experiment on it: each trial is a run on its example, carrying the case's outcome as
outputs, with one feedback score per check (and `passed` for the case). The experiment's metadata (prompt version,
agent model, mode, trials) is what LangSmith's comparison view tells experiments apart by.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import langsmith
from langsmith import schemas as ls_schemas
from langsmith.evaluation import EvaluationResults, aevaluate
from langsmith.run_trees import RunTree

from evals.experiment_dataset import sync_examples
from evals.results import CaseResult
from evals.scenario import Scenario

logger = logging.getLogger(__name__)

RunCase = Callable[[Scenario, int], Awaitable[CaseResult]]


def case_outputs(case: CaseResult) -> dict[str, Any]:
    """What a trial's run shows as outputs in LangSmith: the verdict, checks, usage, latency and the replies."""
    return {
        "passed": case.passed,
        "reason": case.reason,
        "trial": case.trial,
        "checks": [check.model_dump(mode="json") for check in case.checks],
        "usage": case.usage.model_dump(mode="json"),
        "latency_ms": case.latency_ms,
        "replies": [line.text for line in case.transcript if line.who == "assistant"],
        "error": case.error,
    }


def case_feedback(outputs: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Feedback for one trial's outputs: `passed` (1 or 0, the case's reason as comment), then one per check.

    A run without outputs (its target raised) fails `passed`.
    """
    if not outputs:
        return [{"key": "passed", "score": 0, "comment": "the case produced no outputs"}]
    found = [{"key": "passed", "score": int(bool(outputs.get("passed"))), "comment": outputs.get("reason")}]
    for check in outputs.get("checks") or []:
        found.append({"key": check["name"], "score": int(bool(check["passed"])), "comment": check["reason"]})
    return found


class _Experiment:
    """The target and evaluator handed to aevaluate, and the CaseResults they collect."""

    def __init__(self, client: langsmith.Client, scenarios: Sequence[Scenario], run_case: RunCase) -> None:
        self._client = client
        self._scenarios = {s.name: s for s in scenarios}
        self._run_case = run_case
        # aevaluate runs targets concurrently; a lock keeps trial numbers unique whichever thread calls.
        self._lock = threading.Lock()
        self._trials: dict[str, int] = {}
        self._projects: dict[str, str] = {}
        self.cases: dict[tuple[str, int], CaseResult] = {}

    def _next_trial(self, scenario: str) -> int:
        with self._lock:
            self._trials[scenario] = self._trials.get(scenario, 0) + 1
            return self._trials[scenario]

    async def target(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """Run the next trial of the example's scenario; its outputs are the case's `case_outputs`."""
        scenario = self._scenarios[inputs["scenario"]]
        trial = self._next_trial(scenario.name)
        try:
            case = await self._run_case(scenario, trial)
        except Exception as exc:
            # One broken case must not end the experiment: it is recorded as failed, with the error.
            logger.exception("Scenario %s trial %d raised", scenario.name, trial)
            case = CaseResult.not_run(scenario.name, trial, scenario.tags.labels(), f"{type(exc).__name__}: {exc}")
        with self._lock:
            self.cases[(scenario.name, trial)] = case
        return case_outputs(case)

    async def feedback(self, run: ls_schemas.Run, example: ls_schemas.Example | None) -> EvaluationResults:
        """Log the run's `case_feedback` on it, in the experiment, and report no results back to aevaluate.

        aevaluate would post returned results from a thread pool it never joins, so some could still be in flight
        when it returns; posting them here, awaited, lets `run_experiment` return only once every score is queued
        (and then flushed).
        """
        project_id = await self._experiment_id(run)
        for item in case_feedback(run.outputs):
            await asyncio.to_thread(
                self._client.create_feedback,
                run.id,
                trace_id=run.trace_id,
                key=item["key"],
                score=item["score"],
                comment=item["comment"],
                session_id=project_id,
                feedback_source_type=ls_schemas.FeedbackSourceType.MODEL,
            )
        return EvaluationResults(results=[])

    async def _experiment_id(self, run: ls_schemas.Run) -> str:
        if run.session_id is not None:
            return str(run.session_id)
        # aevaluate hands over the RunTree, which names its experiment but does not carry its id.
        name = run.session_name if isinstance(run, RunTree) else None
        if name is None:
            raise ValueError(f"run {run.id} names no experiment")
        if name not in self._projects:
            project = await asyncio.to_thread(self._client.read_project, project_name=name)
            self._projects[name] = str(project.id)
        return self._projects[name]

    def ordered(self, scenarios: Sequence[Scenario]) -> list[CaseResult]:
        """The collected cases in scenario order, then trial order."""
        rank = {s.name: i for i, s in enumerate(scenarios)}
        return [self.cases[key] for key in sorted(self.cases, key=lambda k: (rank[k[0]], k[1]))]


async def run_experiment(
    client: langsmith.Client,
    scenarios: Sequence[Scenario],
    run_case: RunCase,
    *,
    dataset_name: str,
    repetitions: int,
    max_concurrency: int,
    experiment_prefix: str,
    metadata: dict[str, Any],
    prune: bool = False,
) -> list[CaseResult]:
    """Run every scenario `repetitions` times as one LangSmith experiment on dataset `dataset_name`.

    Syncs the dataset first (`sync_dataset`; `prune` deletes examples of scenarios not given, for a full run), then
    runs the examples of `scenarios` only, so a subset run is an experiment on those examples. `run_case(scenario,
    trial)` runs one trial (trials numbered 1..repetitions per scenario) and should return a failed CaseResult
    rather than raise; if it raises, the trial is recorded as failed with the error. At most `max_concurrency`
    trials run at once (0: one at a time). `metadata` (prompt_version, agent model, mode, trials...) is the
    experiment's, `experiment_prefix` starts its name. Returns the CaseResults in scenario order, then trial order,
    once LangSmith has received the runs and their feedback.
    """
    _, examples = await asyncio.to_thread(sync_examples, client, scenarios, dataset_name, prune=prune)
    experiment = _Experiment(client, scenarios, run_case)
    await aevaluate(
        experiment.target,
        data=[examples[s.name] for s in scenarios],
        evaluators=[experiment.feedback],
        num_repetitions=repetitions,
        max_concurrency=max_concurrency,
        client=client,
        experiment_prefix=experiment_prefix,
        metadata=dict(metadata),  # aevaluate adds its own keys to the dict it is given
        upload_runs=True,
        disable_evaluator_tracing=True,  # the evaluator only copies checks into feedback; its trace says nothing
    )
    # Runs and queued feedback go out on the client's background thread; wait until it has sent them.
    await asyncio.to_thread(client.flush)
    return experiment.ordered(scenarios)
