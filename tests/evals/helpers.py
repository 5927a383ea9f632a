"""Running shipped scenarios in tests: one case through the runner, and the failed checks of a result."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from evals.results import CaseResult
from evals.runner import RunOptions, run_case, run_cases
from evals.scenario import Scenario, load_scenarios


def scenario(name: str, **changes: Any) -> Scenario:
    """A shipped scenario, optionally with fields replaced (validated again)."""
    found = load_scenarios([name])[0]
    if not changes:
        return found
    return Scenario.model_validate({**found.model_dump(), **changes})


def expecting(name: str, **expect: Any) -> Scenario:
    """A shipped scenario with some expectations replaced."""
    found = load_scenarios([name])[0]
    return scenario(name, expect={**found.expect.model_dump(), **expect})


async def replay(case: Scenario, tmp_path: Path) -> CaseResult:
    """One replayed trial of `case` on its own database under `tmp_path`."""
    return await run_case(case, 1, RunOptions(mode="replay", workdir=tmp_path))


def replay_all(scenarios: list[Scenario], tmp_path: Path, concurrency: int = 4) -> list[CaseResult]:
    """Every scenario replayed once, concurrently (from synchronous code)."""
    options = RunOptions(mode="replay", workdir=tmp_path, concurrency=concurrency)
    return asyncio.run(run_cases(scenarios, options))


def failed(result: CaseResult) -> dict[str, str]:
    """Failed checks by name, with their reasons."""
    return {check.name: check.reason for check in result.checks if not check.passed}
