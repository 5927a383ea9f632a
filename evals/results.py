"""What an evaluation run produced, as data that survives the run: one `CaseResult` per scenario trial, and the
`RunReport` around them (written as JSON, read back by `asistente eval compare`).

pass^k follows tau-bench: for a scenario with n trials and c successes, pass^k = C(c, k) / C(n, k), the chance
that k trials drawn from those n all pass; a suite's pass^k is the mean over its scenarios.
"""

from __future__ import annotations

from datetime import datetime
from math import comb, floor
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Mode = Literal["replay", "live", "record", "simulate", "author"]


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Check(_Data):
    """One evaluator's verdict. Decisive checks decide the case; diagnostics are reported beside them."""

    name: str
    passed: bool
    reason: str
    decisive: bool = False
    score: float | None = None


class Usage(_Data):
    """Tokens and calls of the agent's model over one case (the customer's and judges' models not included)."""

    model_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            model_calls=self.model_calls + other.model_calls,
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
        )


class Line(_Data):
    """One line of the transcript: who said it (customer, assistant, event, tool) and what."""

    who: Literal["customer", "assistant", "event", "tool", "sent"]
    text: str


class CaseResult(_Data):
    """One trial of one scenario."""

    scenario: str
    trial: int = Field(ge=1)
    tags: list[str] = []
    passed: bool
    reason: str
    checks: list[Check] = []
    usage: Usage = Usage()
    latency_ms: float = 0.0
    turn_latency_ms: list[float] = []
    turns: int = 0
    error: str | None = None
    transcript: list[Line] = []

    @classmethod
    def not_run(cls, scenario: str, trial: int, tags: list[str], error: str) -> CaseResult:
        """A trial that could not run (no cassette, an exception): failed on `completed`, with the error."""
        check = Check(name="completed", passed=False, decisive=True, reason=error)
        return cls(
            scenario=scenario,
            trial=trial,
            tags=tags,
            passed=False,
            reason=f"completed: {error}",
            checks=[check],
            error=error,
        )

    @property
    def failed_checks(self) -> list[Check]:
        """Checks that did not pass (decisive first)."""
        return sorted((c for c in self.checks if not c.passed), key=lambda c: not c.decisive)


class RunMeta(_Data):
    """How the run was made: enough to tell two reports apart and to reproduce one."""

    mode: Mode
    started_at: datetime
    finished_at: datetime | None = None
    agent_model: str
    customer_model: str | None = None
    judge_model: str | None = None
    prompt_version: str
    trials: int = Field(default=1, ge=1)
    concurrency: int = 1
    threshold: float = 1.0
    label: str = ""


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (q in 0..100), interpolated between ranks as `statistics.median` does; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def pass_hat(successes: int, trials: int, k: int) -> float:
    """C(successes, k) / C(trials, k): the chance that k of the trials, drawn at random, all passed."""
    if k < 1 or k > trials:
        raise ValueError(f"pass^{k} needs 1 <= k <= trials ({trials})")
    return comb(successes, k) / comb(trials, k)


class Aggregate(_Data):
    """pass^1..pass^k over a group of scenarios (one scenario, one tag, or all)."""

    scenarios: int
    trials: int
    successes: int
    pass_hat: dict[int, float]


class RunReport(_Data):
    """A whole run: its meta and every case, with the aggregates computed from them."""

    meta: RunMeta
    cases: list[CaseResult]

    def by_scenario(self) -> dict[str, list[CaseResult]]:
        """Cases grouped by scenario, in first-seen order."""
        grouped: dict[str, list[CaseResult]] = {}
        for case in self.cases:
            grouped.setdefault(case.scenario, []).append(case)
        return grouped

    def aggregate(self, names: list[str] | None = None) -> Aggregate:
        """pass^k for k = 1..min trials, averaged over the given scenarios (all by default)."""
        groups = self.by_scenario()
        chosen = [groups[n] for n in (names if names is not None else list(groups)) if n in groups]
        if not chosen:
            return Aggregate(scenarios=0, trials=0, successes=0, pass_hat={})
        k_max = min(len(cases) for cases in chosen)
        hats = {
            k: sum(pass_hat(sum(c.passed for c in cases), len(cases), k) for cases in chosen) / len(chosen)
            for k in range(1, k_max + 1)
        }
        return Aggregate(
            scenarios=len(chosen),
            trials=sum(len(c) for c in chosen),
            successes=sum(case.passed for cases in chosen for case in cases),
            pass_hat=hats,
        )

    def by_tag(self) -> dict[str, Aggregate]:
        """pass^k per tag (`intent:book`, `language:es`, ...), tags sorted."""
        tagged: dict[str, list[str]] = {}
        for name, cases in self.by_scenario().items():
            for tag in cases[0].tags:
                tagged.setdefault(tag, []).append(name)
        return {tag: self.aggregate(names) for tag, names in sorted(tagged.items())}

    @property
    def pass_rate(self) -> float:
        """pass^1 over all scenarios (0 when nothing ran)."""
        return self.aggregate().pass_hat.get(1, 0.0)

    @property
    def ok(self) -> bool:
        """Whether pass^1 reaches the threshold (and something ran)."""
        return bool(self.cases) and self.pass_rate >= self.meta.threshold

    @property
    def usage(self) -> Usage:
        """Tokens and calls over every case."""
        total = Usage()
        for case in self.cases:
            total = total + case.usage
        return total

    def latency_ms(self, q: float) -> float:
        """The q-th percentile of the case latencies (q in 0..100)."""
        return percentile([c.latency_ms for c in self.cases], q)
