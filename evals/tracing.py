"""Evaluation runs traced like production, but apart from it: each case under its own tags (`eval`, the scenario,
the mode) and its own thread prefix, so an admin never finds a replayed customer among real ones."""

from __future__ import annotations

from agent.prompt_version import prompt_version
from agent.tracing import TraceLabels, TurnTracer
from core.business import Business


def case_tracer(
    tracer: TurnTracer | None, scenario: str, mode: str, business: Business, model: str
) -> TurnTracer | None:
    """`tracer` labelled for one case (`mode`: replay, record, demo); None when tracing is off."""
    if tracer is None or not tracer.enabled:
        return None
    labels = TraceLabels(
        model=model,
        prompt_version=prompt_version(business),
        tags=("eval", f"scenario:{scenario}", f"mode:{mode}"),
        metadata={"eval_scenario": scenario, "eval_mode": mode},
        thread_prefix=f"eval:{scenario}:",
    )
    return tracer.labelled(labels)
