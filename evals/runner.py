"""`asistente eval`: scenarios through the real graph, tools and store, in one of three ways, concurrently, each
case on its own database, scored and gathered into a `RunReport`.

- replay (default): the agent's model answers from the scenario's cassette; the customer follows the script.
- live / record: the configured model answers the scripted turns (record: and the cassette is rewritten).
- simulate: the configured model is the agent, another model plays the customer from the persona and goal.
- author: hand-written answers (evals/authoring) through the real agent, written as the cassette.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from langchain_core.language_models import BaseChatModel

from agent.prompt_version import prompt_version
from agent.tracing import TurnTracer
from core.settings import Settings
from evals.agent_model import AgentModel, open_agent_model, replay_settings
from evals.cassette import CassetteError
from evals.record import ScenarioRun
from evals.results import CaseResult, Check, Line, Mode, RunMeta, RunReport, Usage
from evals.scenario import Scenario
from evals.scoring import score, verdict
from evals.session import DEFAULT_TIMEOUT_SECONDS, CustomerSide, ScriptedCustomer, run_scenario, scenario_business

CaseRunner = Callable[[Scenario, int], Awaitable[CaseResult]]
# Runs the cases instead of the local loop (LangSmith experiments), given the run's meta.
Executor = Callable[[Sequence[Scenario], CaseRunner, RunMeta], Awaitable[list[CaseResult]]]


@dataclass(frozen=True)
class RunOptions:
    """How to run: the mode, how many trials and at once, the limits, and the models beside the agent's."""

    mode: Mode
    workdir: Path
    trials: int = 1
    concurrency: int = 4
    time_limit: float = DEFAULT_TIMEOUT_SECONDS
    threshold: float = 1.0
    agent_settings: Settings | None = None
    customer_model: BaseChatModel | None = None
    customer_model_name: str | None = None
    judge_model: BaseChatModel | None = None
    judge_model_name: str | None = None
    tracer: TurnTracer | None = None
    label: str = ""
    on_case: Callable[[CaseResult], None] | None = None

    @property
    def agent_model_name(self) -> str:
        """The agent's model as reports name it."""
        settings = self.agent_settings if self.mode not in ("replay", "author") else None
        return (settings or replay_settings()).openai_model


def runnable(scenarios: Sequence[Scenario], mode: Mode) -> tuple[list[Scenario], list[Scenario]]:
    """(to run, skipped): scripted modes need a script; simulation needs only the persona and goal."""
    if mode == "simulate":
        return list(scenarios), []
    return [s for s in scenarios if s.script is not None], [s for s in scenarios if s.script is None]


def _customer(scenario: Scenario, options: RunOptions) -> CustomerSide:
    if options.mode != "simulate":
        return ScriptedCustomer(scenario.script or [])
    from evals.simulated_customer import SimulatedCustomer

    if options.customer_model is None:
        raise ValueError("simulate mode needs a customer model")
    return SimulatedCustomer(scenario, options.customer_model)


def _transcript(run: ScenarioRun) -> list[Line]:
    lines: list[Line] = []
    for turn in run.turns:
        lines.append(Line(who="customer" if turn.kind == "customer" else "event", text=turn.text))
        lines += [Line(who="tool", text=call.describe()) for call in turn.tool_calls]
        lines += [Line(who="assistant", text=reply) for reply in turn.replies]
        lines += [Line(who="sent", text=f"({m.kind}) {m.body}") for m in turn.sent]
    return lines


async def _judged(run: ScenarioRun, options: RunOptions) -> list[Check]:
    if options.judge_model is None or options.mode not in ("live", "record", "simulate") or run.error:
        return []
    from evals.judges import judge_run

    return await judge_run(run, options.judge_model)


async def run_case(scenario: Scenario, trial: int, options: RunOptions) -> CaseResult:
    """One trial of one scenario on its own database, scored (and its cassette written when recording)."""
    result = await _case(scenario, trial, options)
    if options.on_case is not None:
        options.on_case(result)
    return result


async def _case(scenario: Scenario, trial: int, options: RunOptions) -> CaseResult:
    try:
        agent: AgentModel = open_agent_model(options.mode, scenario.cassette, options.agent_settings)
    except (CassetteError, FileNotFoundError) as exc:
        # A missing or broken cassette fails this case with its reason; the other cases still run.
        return CaseResult.not_run(scenario.name, trial, scenario.tags.labels(), str(exc))
    try:
        run = await run_scenario(
            scenario,
            options.workdir / f"{scenario.name}-{trial}",
            agent,
            _customer(scenario, options),
            mode=options.mode,
            trial=trial,
            tracer=options.tracer,
            time_limit=options.time_limit,
        )
    finally:
        await agent.aclose()
    checks = score(run)
    checks += await _judged(run, options)
    passed, reason = verdict(checks)
    if options.mode in ("record", "author") and run.error is None:
        agent.save(scenario.cassette)
    return CaseResult(
        scenario=scenario.name,
        trial=trial,
        tags=scenario.tags.labels(),
        passed=passed,
        reason=reason,
        checks=checks,
        usage=Usage(model_calls=run.model_calls, input_tokens=run.input_tokens, output_tokens=run.output_tokens),
        latency_ms=round(run.latency_ms, 1),
        turn_latency_ms=[round(t.latency_ms, 1) for t in run.turns if t.kind == "customer"],
        turns=len(run.customer_turns),
        error=run.error,
        transcript=_transcript(run),
    )


def run_meta(scenarios: Sequence[Scenario], options: RunOptions) -> RunMeta:
    """The report's header: mode, models, the prompt version of the (first) scenario's business, trials."""
    business = scenario_business(scenarios[0])[0] if scenarios else None
    return RunMeta(
        mode=options.mode,
        started_at=datetime.now(UTC),
        agent_model=options.agent_model_name,
        customer_model=options.customer_model_name if options.mode == "simulate" else None,
        judge_model=options.judge_model_name if options.judge_model is not None else None,
        prompt_version=prompt_version(business) if business is not None else "",
        trials=options.trials,
        concurrency=options.concurrency,
        threshold=options.threshold,
        label=options.label,
    )


async def run_cases(scenarios: Sequence[Scenario], options: RunOptions) -> list[CaseResult]:
    """Every scenario x trial, at most `concurrency` at once, in scenario then trial order."""
    gate = asyncio.Semaphore(max(1, options.concurrency))

    async def limited(scenario: Scenario, trial: int) -> CaseResult:
        async with gate:
            return await run_case(scenario, trial, options)

    jobs = [limited(s, t) for s in scenarios for t in range(1, options.trials + 1)]
    return list(await asyncio.gather(*jobs))


async def run_suite(
    scenarios: Sequence[Scenario],
    options: RunOptions,
    *,
    executor: Executor | None = None,
) -> RunReport:
    """Run every scenario `options.trials` times and gather the report; `executor` (LangSmith experiments) runs
    the cases instead of the local loop when given."""
    meta = run_meta(scenarios, options)
    if executor is None:
        cases = await run_cases(scenarios, options)
    else:
        cases = await executor(scenarios, lambda scenario, trial: run_case(scenario, trial, options), meta)
    return RunReport(meta=meta.model_copy(update={"finished_at": datetime.now(UTC)}), cases=cases)
