"""LLM-as-judge rubrics (openevals) for what no rule can check: the tone of the replies and, for Spanish customers,
the quality of their Spanish. The rubric texts live in prompts/evals/; the judges are diagnostics beside the end
state, never decisive, and a judge that fails or answers nonsense is a failed diagnostic, never a crashed run."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

from langchain_core.language_models import BaseChatModel
from openevals.llm import create_async_llm_as_judge

from evals.record import ScenarioRun, TurnRecord
from evals.results import Check
from evals.simulated_customer import LANGUAGE_NAMES
from prompts import render

# A five-step scale: scores stay comparable between runs and `compare` can average them.
CHOICES = [0.0, 0.25, 0.5, 0.75, 1.0]
PASS_SCORE = 0.75
_MAX_REASON = 600

Judge = Callable[..., Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Rubric:
    """One judge: the check's name, openevals' feedback key, and its prompt file under prompts/."""

    check: str
    feedback_key: str
    prompt: str

    def text(self) -> str:
        """The rubric with its `{inputs}` and `{outputs}` placeholders (filled by openevals with str.format)."""
        return render(self.prompt)


TONE = Rubric("judge_tone", "tone", "evals/tone.md")
SPANISH = Rubric("judge_spanish", "spanish_quality", "evals/spanish_quality.md")


def rubrics_for(run: ScenarioRun) -> list[Rubric]:
    """Tone always; Spanish quality when the customer writes Spanish."""
    return [TONE, SPANISH] if run.scenario.language == "es" else [TONE]


def _turn_lines(turn: TurnRecord, customer: str) -> list[str]:
    if turn.kind == "customer":
        lines = [f"customer: {m.text or f'[button {m.button}]'}" for m in turn.messages]
    else:
        lines = [f"[calendar event: {turn.event.kind if turn.event is not None else 'system'}]"]
    lines += [f"assistant: {reply}" for reply in turn.replies]
    # What the agent (or the server, for reminders) sent the customer itself is part of the conversation; messages
    # to the staff are not.
    lines += [f"assistant ({m.kind}): {m.body}" for m in turn.sent if m.wa_id == customer]
    return lines


def transcript(run: ScenarioRun) -> list[str]:
    """The conversation as the judge reads it, one line each: customer and assistant lines, events in brackets."""
    return [line for turn in run.turns for line in _turn_lines(turn, run.scenario.customer.wa_id)]


def _reason(text: object) -> str:
    reason = " ".join(str(text or "").split())
    return reason if len(reason) <= _MAX_REASON else reason[: _MAX_REASON - 1] + "…"


def _check(rubric: Rubric, result: object) -> Check:
    """The judge's answer as a diagnostic; anything but a score from the scale is a failed check saying so."""
    if not isinstance(result, dict):
        return Check(name=rubric.check, passed=False, reason=f"unreadable judge answer: {_reason(result)}")
    score = result.get("score")
    if isinstance(score, bool) or not isinstance(score, int | float) or float(score) not in CHOICES:
        return Check(name=rubric.check, passed=False, reason=f"judge gave no score on the scale: {_reason(result)}")
    value = float(score)
    comment = _reason(result.get("comment")) or "no comment"
    return Check(name=rubric.check, passed=value >= PASS_SCORE, reason=comment, score=value)


async def _judge(rubric: Rubric, judge: Judge, conversation: str, language: str) -> Check:
    try:
        result = await judge(inputs=language, outputs=conversation)
    except Exception as exc:  # a judge's failure is this diagnostic's failure, not the run's (see the module doc)
        return Check(name=rubric.check, passed=False, reason=f"judge failed: {type(exc).__name__}: {_reason(exc)}")
    return _check(rubric, result)


def make_judge(rubric: Rubric, model: BaseChatModel) -> Judge:
    """openevals' async LLM-as-judge for `rubric`, scoring on `CHOICES` with the judge's reasoning as comment."""
    evaluator = create_async_llm_as_judge(
        prompt=rubric.text(), judge=model, feedback_key=rubric.feedback_key, choices=CHOICES
    )
    return cast(Judge, evaluator)


async def judge_run(run: ScenarioRun, model: BaseChatModel) -> list[Check]:
    """The judges' diagnostics for `run` (decisive=False): `judge_tone`, and `judge_spanish` for Spanish."""
    rubrics = rubrics_for(run)
    lines = transcript(run)
    if not any(line.startswith("assistant") for line in lines):
        return [Check(name=r.check, passed=False, reason="no assistant reply to judge") for r in rubrics]
    language = LANGUAGE_NAMES[run.scenario.language]
    conversation = "\n".join(lines)
    return list(await asyncio.gather(*(_judge(r, make_judge(r, model), conversation, language) for r in rubrics)))
