"""The deployed-layout benchmark (`bench/processes.py`): its quick run end to end against real `asistente` and bare
processes on PostgreSQL, and how its rows judge the targets. Figures are checked for presence, never for speed."""

from __future__ import annotations

import os
import re

import pytest

from bench import processes
from bench.proc_cpu import CpuUse
from bench.proc_measures import Throughput


def _figure(text: str) -> bool:
    return re.search(r"\d", text) is not None


@pytest.mark.postgres
@pytest.mark.timeout(240)
def test_quick_run_reports_both_figures_for_every_measure() -> None:
    if not os.environ.get("TEST_DATABASE_URL"):
        pytest.skip("TEST_DATABASE_URL not set (CI sets it; see .ci/run)")
    (section,) = processes.sections(quick=True)
    measures = [row.measure for row in section.rows]
    assert len(measures) == 4, measures
    assert any("shipped `serve`" in m for m in measures)
    assert any("`serve --no-worker` + 1 `worker`" in m for m in measures)
    assert any("bursting customers" in m for m in measures)
    assert any(m.startswith("turns/s") for m in measures)
    for row in section.rows:
        assert _figure(row.asistente), row
        assert _figure(row.bare), row
        assert row.ratio is not None and row.ratio > 0, row
        assert row.met is not None, row  # every measure here has a target
    assert section.notes


def test_wait_target_is_the_fold_window_plus_100_ms_at_the_median() -> None:
    within = processes._wait_row("wait", [0.45, 0.48, 0.9], [0.05], fold=0.4)
    beyond = processes._wait_row("wait", [0.45, 0.52, 0.9], [0.05], fold=0.4)
    assert within.met is True
    assert beyond.met is False
    assert "400 ms" in (within.note or "")


def test_turns_rows_judge_half_the_bare_rate_and_fold_zero_rows_only_report() -> None:
    def rate(turns: int, seconds: float) -> Throughput:
        return Throughput(turns, seconds, CpuUse({}, None))

    half = processes._turns_row(2, rate(50, 10.0), rate(100, 10.0), 0.4, judged=True)
    less = processes._turns_row(2, rate(49, 10.0), rate(100, 10.0), 0.4, judged=True)
    reported = processes._turns_row(2, rate(10, 10.0), rate(100, 10.0), 0.0, judged=False)
    assert (half.met, less.met, reported.met) == (True, False, None)
    assert half.ratio == pytest.approx(0.5)
