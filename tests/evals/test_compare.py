"""Comparing two runs: regressions, fixes, scenarios on one side only, pass^k, per-tag and cost deltas."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from evals.compare import Delta, compare, format_comparison
from evals.results import CaseResult, Check, RunMeta, RunReport, Usage

TAGS = {
    "book_es": ["intent:book"],
    "cancel_es": ["intent:cancel"],
    "info_en": ["intent:info"],
    "legacy_en": ["intent:info"],
    "handoff_es": ["intent:handoff"],
}


def run(prompt_version: str, day: int, outcomes: dict[str, list[bool]], usage: Usage, latency: float) -> RunReport:
    """A replay run where every case costs the same; failed cases fail a decisive `store_state` check."""
    cases = [
        CaseResult(
            scenario=name,
            trial=trial,
            tags=TAGS[name],
            passed=passed,
            reason="ok" if passed else "end state differs",
            checks=[]
            if passed
            else [Check(name="store_state", passed=False, reason=f"{name} not booked", decisive=True)],
            usage=usage,
            latency_ms=latency,
        )
        for name, results in outcomes.items()
        for trial, passed in enumerate(results, start=1)
    ]
    meta = RunMeta(
        mode="replay",
        started_at=datetime(2026, 5, day, 10, 0, tzinfo=UTC),
        agent_model="gpt-4.1-mini",
        prompt_version=prompt_version,
        trials=2,
    )
    return RunReport(meta=meta, cases=cases)


def before() -> RunReport:
    outcomes = {
        "book_es": [True, True],
        "cancel_es": [True, False],
        "info_en": [False, False],
        "legacy_en": [True, True],
    }
    return run("v7", 1, outcomes, Usage(input_tokens=100, output_tokens=10, model_calls=1), 1000)


def after() -> RunReport:
    outcomes = {
        "book_es": [True, False],
        "cancel_es": [True, True],
        "info_en": [True, False],
        "handoff_es": [True, True],
    }
    return run("v8", 2, outcomes, Usage(input_tokens=120, output_tokens=10, model_calls=2), 1500)


def test_flips_and_one_sided_scenarios() -> None:
    result = compare(before(), after())
    assert [(s.scenario, s.pass_rate.a, s.pass_rate.b) for s in result.regressions] == [("book_es", 1.0, 0.5)]
    assert result.regressions[0].reason_b == "store_state: book_es not booked"
    assert [(s.scenario, s.pass_rate.a, s.pass_rate.b) for s in result.fixes] == [("cancel_es", 0.5, 1.0)]
    # 0 -> 0.5 crosses no pass/fail line: reported, not a regression or a fix.
    assert [(s.scenario, s.pass_rate.change) for s in result.other_changes] == [("info_en", 0.5)]
    assert result.only_in_a == ["legacy_en"]
    assert result.only_in_b == ["handoff_es"]
    assert result.regressed


def test_pass_hat_tag_and_cost_deltas() -> None:
    result = compare(before(), after())
    assert result.pass_hat == {1: Delta(0.625, 0.75), 2: Delta(0.5, 0.5)}
    assert result.pass_hat[1].change == pytest.approx(0.125)
    assert result.pass_hat[2].change == 0.0
    assert result.tags == {
        "intent:book": Delta(1.0, 0.5),
        "intent:cancel": Delta(0.5, 1.0),
        "intent:handoff": Delta(None, 1.0),
        "intent:info": Delta(0.5, 0.5),
    }
    assert result.tags["intent:handoff"].change is None
    assert result.costs == {
        "input tokens": Delta(100.0, 120.0),
        "output tokens": Delta(10.0, 10.0),
        "model calls": Delta(1.0, 2.0),
        "latency ms": Delta(1000.0, 1500.0),
    }
    assert result.costs["input tokens"].percent == pytest.approx(20.0)
    assert result.costs["model calls"].percent == pytest.approx(100.0)
    assert result.costs["latency ms"].change == 500.0
    assert Delta(0.0, 5.0).percent is None


def test_same_run_does_not_regress() -> None:
    result = compare(before(), before())
    assert not result.regressed
    assert result.fixes == [] and result.other_changes == []
    assert all(d.change == 0.0 for d in result.costs.values())
    assert format_comparison(result).endswith("\nno regressions\n")


def test_format_shows_regressions_first_then_the_numbers() -> None:
    text = format_comparison(compare(before(), after()))
    lines = text.splitlines()
    assert lines[0] == "A: v7 gpt-4.1-mini (replay, 2026-05-01 10:00) vs B: v8 gpt-4.1-mini (replay, 2026-05-02 10:00)"
    assert lines[2] == "Regressions: passed every trial in A, not in B (1)"
    assert lines[3] == "  book_es  pass^1 100.0% -> 50.0% (-50.0 pts)  B: store_state: book_es not booked"
    assert lines[5] == "Fixes: failed in A, passed every trial in B (1)"
    assert lines[6] == "  cancel_es  pass^1 50.0% -> 100.0% (+50.0 pts)"
    for expected in [
        "  info_en  pass^1 0.0% -> 50.0% (+50.0 pts)  B: store_state: info_en not booked",
        "Only in A: legacy_en",
        "Only in B: handoff_es",
        "  pass^1  62.5% -> 75.0% (+12.5 pts)",
        "  pass^2  50.0% -> 50.0% (+0.0 pts)",
        "  intent:handoff  - -> 100.0%",
        "  intent:book     100.0% -> 50.0% (-50.0 pts)",
        "  input tokens   100.0 -> 120.0 (+20.0, +20.0%)",
        "  model calls    1.0 -> 2.0 (+1.0, +100.0%)",
        "  latency ms     1,000.0 -> 1,500.0 (+500.0, +50.0%)",
    ]:
        assert expected in lines, expected
    assert lines[-1] == "REGRESSED: 1 scenario(s) no longer pass"
