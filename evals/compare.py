"""Two runs side by side (`asistente eval compare A.json B.json`): what a prompt or model change broke and fixed.

Definitions: a scenario *passes* in a report when every one of its trials passed (pass^1 = successes / trials =
1.0). A *regression* is a scenario in both reports that passes in A and not in B; a *fix* is the reverse. Changes of
pass^1 that cross no such line (0.5 -> 0.0) are listed as other changes and do not count as regressions. Costs are
compared per case (mean over all cases of each report), so runs with different trial counts stay comparable.
"""

from __future__ import annotations

from dataclasses import dataclass

from evals.report import failure_reason, pct
from evals.results import CaseResult, RunMeta, RunReport


@dataclass(frozen=True)
class Delta:
    """One number in A and in B (None where a side does not have it)."""

    a: float | None
    b: float | None

    @property
    def change(self) -> float | None:
        """B - A, when both sides have the number."""
        return None if self.a is None or self.b is None else self.b - self.a

    @property
    def percent(self) -> float | None:
        """The change relative to A, in percent (None when A is 0 or missing)."""
        change = self.change
        return None if change is None or not self.a else change / self.a * 100


@dataclass(frozen=True)
class ScenarioChange:
    """One scenario in both reports: its pass^1 on each side and, when it failed in B, B's first failure reason."""

    scenario: str
    pass_rate: Delta
    reason_b: str

    @property
    def passed_a(self) -> bool:
        """Every trial passed in A."""
        return self.pass_rate.a == 1.0

    @property
    def passed_b(self) -> bool:
        """Every trial passed in B."""
        return self.pass_rate.b == 1.0


@dataclass(frozen=True)
class Comparison:
    """Everything `format_comparison` shows; `regressed` is the exit code of `asistente eval compare`."""

    meta_a: RunMeta
    meta_b: RunMeta
    scenarios: list[ScenarioChange]
    only_in_a: list[str]
    only_in_b: list[str]
    pass_hat: dict[int, Delta]
    tags: dict[str, Delta]
    costs: dict[str, Delta]

    @property
    def regressions(self) -> list[ScenarioChange]:
        """Scenarios that passed every trial in A and not in B."""
        return [s for s in self.scenarios if s.passed_a and not s.passed_b]

    @property
    def fixes(self) -> list[ScenarioChange]:
        """Scenarios that failed some trial in A and passed every trial in B."""
        return [s for s in self.scenarios if s.passed_b and not s.passed_a]

    @property
    def other_changes(self) -> list[ScenarioChange]:
        """Scenarios whose pass^1 moved without crossing pass/fail (e.g. 0.5 -> 0.0)."""
        return [s for s in self.scenarios if s.passed_a == s.passed_b and s.pass_rate.change]

    @property
    def regressed(self) -> bool:
        """Whether any scenario that passed in A fails in B."""
        return bool(self.regressions)


def _rate(cases: list[CaseResult]) -> float:
    return sum(c.passed for c in cases) / len(cases)


def _mean(report: RunReport, value: float) -> float:
    return value / len(report.cases) if report.cases else 0.0


def _costs(report: RunReport) -> dict[str, float]:
    usage = report.usage
    return {
        "input tokens": _mean(report, usage.input_tokens),
        "output tokens": _mean(report, usage.output_tokens),
        "model calls": _mean(report, usage.model_calls),
        "latency ms": _mean(report, sum(c.latency_ms for c in report.cases)),
    }


def compare(a: RunReport, b: RunReport) -> Comparison:
    """Compare run A (before) with run B (after): per-scenario flips, pass^k, per-tag pass^1 and cost deltas."""
    groups_a, groups_b = a.by_scenario(), b.by_scenario()
    scenarios = [
        ScenarioChange(name, Delta(_rate(cases), _rate(groups_b[name])), failure_reason(groups_b[name]))
        for name, cases in groups_a.items()
        if name in groups_b
    ]
    hats_a, hats_b = a.aggregate().pass_hat, b.aggregate().pass_hat
    tags_a, tags_b = a.by_tag(), b.by_tag()
    costs_a, costs_b = _costs(a), _costs(b)
    return Comparison(
        meta_a=a.meta,
        meta_b=b.meta,
        scenarios=scenarios,
        only_in_a=[n for n in groups_a if n not in groups_b],
        only_in_b=[n for n in groups_b if n not in groups_a],
        pass_hat={k: Delta(hats_a[k], hats_b[k]) for k in sorted(hats_a.keys() & hats_b.keys())},
        tags={
            tag: Delta(
                tags_a[tag].pass_hat[1] if tag in tags_a else None, tags_b[tag].pass_hat[1] if tag in tags_b else None
            )
            for tag in sorted(tags_a.keys() | tags_b.keys())
        },
        costs={name: Delta(costs_a[name], costs_b[name]) for name in costs_a},
    )


def _side(meta: RunMeta) -> str:
    label = f", {meta.label}" if meta.label else ""
    return f"{meta.prompt_version} {meta.agent_model} ({meta.mode}{label}, {meta.started_at:%Y-%m-%d %H:%M})"


def _rate_delta(delta: Delta) -> str:
    """`75.0% -> 50.0% (-25.0 pts)`; a missing side is `-`."""
    a = "-" if delta.a is None else pct(delta.a)
    b = "-" if delta.b is None else pct(delta.b)
    change = "" if delta.change is None else f" ({delta.change * 100:+.1f} pts)"
    return f"{a} -> {b}{change}"


def _cost_delta(delta: Delta) -> str:
    """`1,000 -> 1,200 (+200, +20.0%)`."""
    a, b, change = delta.a or 0.0, delta.b or 0.0, delta.change or 0.0
    percent = "" if delta.percent is None else f", {delta.percent:+.1f}%"
    return f"{a:,.1f} -> {b:,.1f} ({change:+,.1f}{percent})"


def _scenario_lines(title: str, changes: list[ScenarioChange], *, reasons: bool) -> list[str]:
    lines = [f"{title} ({len(changes)})"]
    for change in changes:
        reason = f"  B: {change.reason_b}" if reasons and change.reason_b else ""
        lines.append(f"  {change.scenario}  pass^1 {_rate_delta(change.pass_rate)}{reason}")
    return [*lines, ""]


def format_comparison(c: Comparison) -> str:
    """The plain-text view after a prompt change: regressions first (with B's reason), fixes, then the numbers."""
    lines = [f"A: {_side(c.meta_a)} vs B: {_side(c.meta_b)}", ""]
    lines += _scenario_lines("Regressions: passed every trial in A, not in B", c.regressions, reasons=True)
    lines += _scenario_lines("Fixes: failed in A, passed every trial in B", c.fixes, reasons=False)
    if c.other_changes:
        lines += _scenario_lines("Other pass^1 changes", c.other_changes, reasons=True)
    if c.only_in_a:
        lines += [f"Only in A: {', '.join(c.only_in_a)}", ""]
    if c.only_in_b:
        lines += [f"Only in B: {', '.join(c.only_in_b)}", ""]
    lines += ["pass^k (all scenarios of each run)"]
    lines += [f"  pass^{k}  {_rate_delta(d)}" for k, d in c.pass_hat.items()] or ["  nothing ran on one side"]
    if c.tags:
        width = max(len(tag) for tag in c.tags)
        lines += ["", "pass^1 by tag", *(f"  {tag:<{width}}  {_rate_delta(d)}" for tag, d in c.tags.items())]
    lines += ["", "cost per case"]
    lines += [f"  {name:<13}  {_cost_delta(d)}" for name, d in c.costs.items()]
    verdict = f"REGRESSED: {len(c.regressions)} scenario(s) no longer pass" if c.regressed else "no regressions"
    return "\n".join([*lines, "", verdict]) + "\n"
