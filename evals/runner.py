"""`asistente eval`: every recorded conversation through the real graph and tools, evaluated, with a pass rate."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.tracing import TurnTracer
from core.quoting import one_line
from core.settings import Settings
from evals.dataset import Conversation
from evals.evaluators import EvaluationResult, Evaluator, evaluate_run
from evals.session import ConversationRun, run_conversation

DEFAULT_THRESHOLD = 1.0
_REASON_WIDTH = 90


@dataclass(frozen=True)
class CaseReport:
    """One conversation's run and its evaluators' verdicts; it passes when every evaluator passes."""

    run: ConversationRun
    results: list[EvaluationResult]

    @property
    def name(self) -> str:
        """The conversation's name."""
        return self.run.conversation.name

    @property
    def passed(self) -> bool:
        """Whether every evaluator passed."""
        return all(r.passed for r in self.results)


@dataclass(frozen=True)
class SuiteReport:
    """All conversations run, and the share of them that passed against the threshold."""

    cases: list[CaseReport]
    threshold: float

    @property
    def pass_rate(self) -> float:
        """Passed conversations over conversations run (0 when none ran)."""
        return sum(c.passed for c in self.cases) / len(self.cases) if self.cases else 0.0

    @property
    def ok(self) -> bool:
        """Whether the pass rate reaches the threshold."""
        return bool(self.cases) and self.pass_rate >= self.threshold

    @property
    def exit_code(self) -> int:
        """0 when the threshold is reached, 1 otherwise (for CI)."""
        return 0 if self.ok else 1


async def run_case(
    conversation: Conversation,
    workdir: Path,
    *,
    cassette: Path | None = None,
    record_with: Settings | None = None,
    evaluators: Sequence[Evaluator] | None = None,
    tracer: TurnTracer | None = None,
) -> CaseReport:
    """Run one conversation in its own directory under `workdir` and evaluate it (traced by `tracer`, if on)."""
    run = await run_conversation(
        conversation, workdir / conversation.name, cassette=cassette, record_with=record_with, tracer=tracer
    )
    return CaseReport(run, evaluate_run(run, evaluators))


async def run_suite(
    conversations: Sequence[Conversation],
    workdir: Path,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    record_with: Settings | None = None,
    tracer: TurnTracer | None = None,
) -> SuiteReport:
    """Run and evaluate each conversation in turn (each on a fresh database)."""
    cases = [await run_case(c, workdir, record_with=record_with, tracer=tracer) for c in conversations]
    return SuiteReport(cases, threshold)


def format_report(report: SuiteReport) -> str:
    """A table of every verdict (failures in full) and the pass-rate summary."""
    rows = [("conversation", "evaluator", "result", "reason")]
    for case in report.cases:
        for result in case.results:
            reason = result.reason if not result.passed else one_line(result.reason, limit=_REASON_WIDTH)
            rows.append((case.name, result.evaluator, "pass" if result.passed else "FAIL", reason))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}" for r in rows]
    lines.insert(1, "-" * max(len(line) for line in lines))
    passed = sum(c.passed for c in report.cases)
    checks = [r for c in report.cases for r in c.results]
    lines += [
        "",
        f"conversations passed: {passed}/{len(report.cases)}  evaluators passed: "
        f"{sum(r.passed for r in checks)}/{len(checks)}",
        f"pass rate {report.pass_rate:.0%} (threshold {report.threshold:.0%}): {'OK' if report.ok else 'FAILED'}",
    ]
    return "\n".join(lines)
