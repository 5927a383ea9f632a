"""Run reports: pass^k per scenario and tag, the JSON/Markdown files, the terminal table, and load errors."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from rich.console import Console

from evals.report import load_report, markdown, print_summary, report_stem, shorten, write_reports
from evals.results import CaseResult, Check, Line, RunMeta, RunReport, Usage, percentile

STARTED = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
LONG_REASON = "expected exactly one confirmed Corte on Thursday at 10:00 for the customer " + "x" * 60


def case(
    scenario: str,
    trial: int,
    passed: bool,
    tags: list[str],
    *,
    usage: tuple[int, int, int] = (100, 20, 2),
    latency: float = 1000.0,
    checks: list[Check] | None = None,
    error: str | None = None,
    transcript: list[Line] | None = None,
) -> CaseResult:
    """One trial, with usage given as (input tokens, output tokens, model calls)."""
    tokens_in, tokens_out, calls = usage
    return CaseResult(
        scenario=scenario,
        trial=trial,
        tags=tags,
        passed=passed,
        reason="ok" if passed else "end state differs",
        checks=checks or [],
        usage=Usage(input_tokens=tokens_in, output_tokens=tokens_out, model_calls=calls),
        latency_ms=latency,
        error=error,
        transcript=transcript or [],
    )


def sample_report(label: str = "") -> RunReport:
    """book_es 2/2, cancel_es 1/2 (decisive and diagnostic checks failed), info_en 0/2 (an error, a long reason)."""
    book, cancel, info = (
        ["intent:book", "language:es"],
        ["intent:cancel", "language:es"],
        ["intent:info", "language:en"],
    )
    cancel_checks = [
        Check(name="tone", passed=False, reason="too formal"),
        Check(name="facts", passed=True, reason="all facts given"),
        Check(name="store_state", passed=False, reason="expected 1 cancelled appointment, found 0", decisive=True),
    ]
    transcript = [Line(who="customer", text="cancela mi cita"), Line(who="assistant", text="¿Cuál de ellas?\nDime")]
    cases = [
        case("book_es", 1, True, book, latency=1000),
        case("book_es", 2, True, book, latency=1200),
        case("cancel_es", 1, True, cancel, usage=(200, 40, 3), latency=2000),
        case(
            "cancel_es", 2, False, cancel, usage=(200, 40, 3), latency=3000, checks=cancel_checks, transcript=transcript
        ),
        case("info_en", 1, False, info, usage=(50, 10, 1), latency=500, error="model timeout"),
        case(
            "info_en",
            2,
            False,
            info,
            usage=(50, 10, 1),
            latency=700,
            checks=[Check(name="store_state", passed=False, reason=LONG_REASON, decisive=True)],
        ),
    ]
    meta = RunMeta(
        mode="replay",
        started_at=STARTED,
        finished_at=datetime(2026, 5, 1, 10, 5, tzinfo=UTC),
        agent_model="gpt-4.1-mini",
        judge_model="gpt-4.1",
        prompt_version="v7",
        trials=2,
        label=label,
    )
    return RunReport(meta=meta, cases=cases)


def test_pass_hat_per_scenario_tag_and_overall() -> None:
    report = sample_report()
    assert report.aggregate(["cancel_es"]).pass_hat == {1: 0.5, 2: 0.0}
    assert report.aggregate(["book_es"]).pass_hat == {1: 1.0, 2: 1.0}
    overall = report.aggregate()
    assert overall.pass_hat[1] == pytest.approx(0.5)
    assert overall.pass_hat[2] == pytest.approx(1 / 3)
    assert (overall.scenarios, overall.trials, overall.successes) == (3, 6, 3)
    tags = report.by_tag()
    assert list(tags) == ["intent:book", "intent:cancel", "intent:info", "language:en", "language:es"]
    assert tags["language:es"].pass_hat == {1: 0.75, 2: 0.5}
    assert tags["language:en"].pass_hat == {1: 0.0, 2: 0.0}
    assert not report.ok


def test_percentile_interpolates_like_the_median() -> None:
    latencies = [1000.0, 1200.0, 2000.0, 3000.0, 500.0, 700.0]
    assert percentile(latencies, 50) == 1100.0
    assert percentile(latencies, 95) == 2750.0
    assert percentile([42.0], 95) == 42.0
    assert percentile([], 50) == 0.0


def test_files_are_written_and_load_back_equal(tmp_path: Path) -> None:
    report = sample_report(label="prompt v8 / shorter!")
    json_path, md_path = write_reports(report, tmp_path / "reports")
    assert json_path == tmp_path / "reports" / "20260501-100000-replay-prompt-v8-shorter.json"
    assert md_path == json_path.with_suffix(".md")
    assert load_report(json_path) == report
    assert md_path.read_text(encoding="utf-8") == markdown(report)
    assert report_stem(sample_report()) == "20260501-100000-replay"


def test_markdown_has_the_numbers_and_the_failures() -> None:
    text = markdown(sample_report())
    assert text.startswith("# Eval run: replay\n")
    for expected in [
        "| agent model | gpt-4.1-mini |",
        "| customer model | - |",
        "| judge model | gpt-4.1 |",
        "| prompt version | v7 |",
        "| trials | 2 |",
        "| started | 2026-05-01T10:00:00+00:00 |",
        "- scenarios: 3 (6 trials, 3 passed)",
        "- pass^1 50.0%  pass^2 33.3%",
        "- threshold 100.0% on pass^1: FAILED",
        "- tokens: 700 in / 140 out, 12 model calls",
        "- latency per case: p50 1,100 ms, p95 2,750 ms",
        "| scenario | tags | passed | pass^1 | pass^2 | tokens in/out | latency ms | failure |",
        "| book_es | intent:book, language:es | 2/2 | 100.0% | 100.0% | 200/40 | 1,100 |  |",
        "| cancel_es | intent:cancel, language:es | 1/2 | 50.0% | 0.0% | 400/80 | 2,500 "
        "| store_state: expected 1 cancelled appointment, found 0 |",
        "| info_en | intent:info, language:en | 0/2 | 0.0% | 0.0% | 100/20 | 600 | model timeout |",
        "| language:es | 2 | 3/4 | 75.0% | 50.0% |",
        "### cancel_es, trial 2",
        "- **decisive** `store_state`: expected 1 cancelled appointment, found 0\n- `tone`: too formal\n",
        "```text\ncustomer: cancela mi cita\nassistant: ¿Cuál de ellas?\n    Dime\n```",
        "### info_en, trial 1",
        "- error: model timeout",
    ]:
        assert expected in text, expected
    # Passed checks and passed trials are not failures.
    assert "all facts given" not in text
    assert "### book_es" not in text
    assert text.index("## Scenarios") < text.index("## By tag") < text.index("## Failures")


def test_markdown_of_a_clean_run() -> None:
    report = sample_report()
    clean = RunReport(meta=report.meta, cases=[c for c in report.cases if c.scenario == "book_es"])
    text = markdown(clean)
    assert "- threshold 100.0% on pass^1: OK" in text
    assert text.endswith("## Failures\n\nNone.\n")


def test_terminal_table_and_footer() -> None:
    console = Console(record=True, width=160, color_system=None, file=io.StringIO())
    print_summary(sample_report(), console)
    lines = [line.rstrip() for line in console.export_text().splitlines()]
    assert lines[0].split() == [
        "scenario",
        "passed",
        "pass^1",
        "pass^2",
        "tokens",
        "in/out",
        "latency",
        "ms",
        "first",
        "failure",
    ]
    assert lines[1].split() == ["book_es", "2/2", "100.0%", "100.0%", "200/40", "1,100"]
    assert lines[2].split()[:6] == ["cancel_es", "1/2", "50.0%", "0.0%", "400/80", "2,500"]
    assert lines[2].endswith("store_state: expected 1 cancelled appointment, found 0")
    assert lines[3].endswith(shorten("model timeout"))
    assert lines[4] == (
        "pass^1 50.0%  pass^2 33.3%  threshold 100.0% on pass^1: FAILED  tokens 700 in / 140 out  model calls 12"
        "  latency p50 1,100 ms p95 2,750 ms"
    )
    assert len(lines) == 5


def test_passed_cells_are_green_or_red() -> None:
    console = Console(record=True, width=160, color_system="standard", force_terminal=True, file=io.StringIO())
    print_summary(sample_report(), console)
    styled = console.export_text(styles=True)
    # Right-aligned cells carry their padding inside the style.
    assert re.search(r"book_es +\x1b\[32m +2/2\x1b\[0m", styled)
    assert re.search(r"cancel_es +\x1b\[31m +1/2\x1b\[0m", styled)
    assert "\x1b[1;31mthreshold 100.0% on pass^1: FAILED\x1b[0m" in styled


def test_long_reasons_are_shortened_and_markup_is_kept_verbatim() -> None:
    assert shorten(LONG_REASON) == LONG_REASON[:79].rstrip() + "…"
    assert len(shorten(LONG_REASON)) == 80
    assert shorten("a\n  b") == "a b"
    report = sample_report()
    first = report.cases[4].model_copy(update={"error": "[bold]not markup[/bold]"})
    console = Console(record=True, width=160, color_system=None, file=io.StringIO())
    print_summary(RunReport(meta=report.meta, cases=[first]), console)
    assert "[bold]not markup[/bold]" in console.export_text()


def test_load_report_errors_are_one_clear_line(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(ValueError, match=r"nope\.json: no such file; pass a \.json report") as error:
        load_report(missing)
    assert "\n" not in str(error.value)

    markdown_file = tmp_path / "run.md"
    markdown_file.write_text(markdown(sample_report()), encoding="utf-8")
    with pytest.raises(ValueError, match=r"run\.md: not JSON \(Expecting value at line 1\)") as error:
        load_report(markdown_file)
    assert "\n" not in str(error.value)

    other = tmp_path / "other.json"
    other.write_text('{"meta": {"mode": "replay"}, "cases": []}', encoding="utf-8")
    with pytest.raises(
        ValueError, match=r"other\.json: not an eval report \(3 problem\(s\), first: meta\.started_at"
    ) as error:
        load_report(other)
    assert "\n" not in str(error.value)
