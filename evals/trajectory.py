"""The tool trajectory against the scenario's reference, with openevals' trajectory match: strict (same calls, same
order) where the answers are fixed (replay), superset (at least the reference calls) where a model answers live."""

from __future__ import annotations

import json
from typing import Any, Literal

from openevals.trajectory.match import create_trajectory_match_evaluator

from evals.record import ScenarioRun
from evals.results import Check


def _as_messages(names: list[str]) -> list[dict[str, Any]]:
    # One assistant message per call: openevals compares role by role and call by call; arguments are not compared
    # (the reference names the tools; the store decides whether their arguments were right).
    return [
        {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": name, "arguments": "{}"}}]}
        for name in names
    ]


def tool_trajectory(run: ScenarioRun, *, strict: bool) -> Check | None:
    """openevals' trajectory match of the run's tool calls against `expect.tools` (None: no reference given)."""
    reference = run.scenario.expect.tools
    if reference is None:
        return None
    used = [call.name for call in run.tool_calls]
    mode: Literal["strict", "superset"] = "strict" if strict else "superset"
    evaluator = create_trajectory_match_evaluator(trajectory_match_mode=mode, tool_args_match_mode="ignore")
    result = evaluator(outputs=_as_messages(used), reference_outputs=_as_messages(reference))
    passed = bool(result["score"] if isinstance(result, dict) else result)
    found = " > ".join(used) or "none"
    reason = found if passed else f"{mode} match failed: expected {json.dumps(reference)}, got {found}"
    return Check(name=f"trajectory_{mode}", passed=passed, reason=reason)
