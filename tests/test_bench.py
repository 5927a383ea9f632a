"""`make bench` works: the quick in-process suite runs end to end and reports every measure beside the bare loop's.

Timings are never asserted (they are the benchmark's to report, not a test's to judge); what is checked is that each
measure was taken for both systems, on SQLite and (with TEST_DATABASE_URL) on PostgreSQL, and that a missed target
does not fail the run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import inprocess
from bench.__main__ import BEGIN, END, write_benchmarks
from bench.report import Row, Section, ratio, render_markdown, render_text
from tests.conftest import postgres_url

EVERY_ENGINE = (
    "turn, webhook → Twilio send, fold window 0, p50",
    "turn, webhook → Twilio send, fold window 0, p95",
    "webhook ack CPU per message",
    "ack p50 / p99",
)
POSTGRES_ONLY = ("DB transactions per turn", "DB transactions per second, idle")
CONVERSATION = ("input tokens per model call", "checkpoint bytes per thread after 4 turns")


def _measures(section: Section) -> list[str]:
    return [row.measure for row in section.rows]


def _assert_measured(section: Section, expected: tuple[str, ...]) -> None:
    for prefix in expected:
        assert any(m.startswith(prefix) for m in _measures(section)), f"{section.title}: no {prefix!r}"
    for row in section.rows:
        # A figure for each system: digits, not a placeholder.
        assert any(c.isdigit() for c in row.asistente), row
        assert any(c.isdigit() for c in row.bare), row
        assert row.target


def test_quick_suite_on_sqlite_reports_every_measure_beside_the_bare_loop() -> None:
    sections = inprocess.sections(quick=True, engines=("sqlite",))

    by_title = {s.title: s for s in sections}
    assert set(by_title) == {
        "In-process: how it is measured",
        "In-process, SQLite",
        "One conversation of 8 turns, SQLite",
    }
    _assert_measured(by_title["In-process, SQLite"], EVERY_ENGINE)
    _assert_measured(by_title["One conversation of 8 turns, SQLite"], CONVERSATION)
    # The bare loop stops before the end of the conversation: its last thread size is projected, and says so.
    checkpoint = next(r for r in by_title["One conversation of 8 turns, SQLite"].rows if "after 8" in r.measure)
    assert checkpoint.bare.startswith("≈")
    assert "projected" in checkpoint.note
    assert checkpoint.ratio is not None
    assert checkpoint.ratio > 0
    assert "In-process, SQLite" in render_markdown(sections, {"CPU": "test"})


@pytest.mark.postgres
def test_quick_suite_on_postgres_counts_transactions_for_both_systems(monkeypatch: pytest.MonkeyPatch) -> None:
    url = postgres_url()
    if url is None:
        pytest.skip("TEST_DATABASE_URL not set (CI sets it; see .ci/run)")
    monkeypatch.setenv("BENCH_POSTGRES_URL", url)

    _, section = inprocess.sections(quick=True, engines=("postgres",))

    assert section.title == "In-process, PostgreSQL"
    assert section.rows, section.notes  # not "not reachable"
    _assert_measured(section, EVERY_ENGINE + POSTGRES_ONLY)
    transactions = next(r for r in section.rows if r.measure == "DB transactions per turn")
    assert float(transactions.asistente) > 0
    assert float(transactions.bare) > 0


def test_a_missed_target_is_reported_not_raised(tmp_path: Path) -> None:
    sections = [
        Section("S", [Row("turn", "2 ms", "1 ms", ratio(2, 1), "≤ 1.3x", False), Row("x", "1", "1", None, "—", None)])
    ]

    text = render_text(sections, {"CPU": "2 cores"})
    markdown = render_markdown(sections, {"CPU": "2 cores"})

    assert "MISSED" in text
    assert "**missed**" in markdown
    assert "2.00x" in markdown
    assert ratio(1, 0) is None


def test_regenerating_keeps_what_was_written_around_the_tables(tmp_path: Path) -> None:
    path = tmp_path / "BENCHMARKS.md"
    write_benchmarks(path, "first tables")
    path.write_text(path.read_text().replace("(Written by hand after a run.)", "The profile says why."))

    write_benchmarks(path, "second tables")

    text = path.read_text()
    assert "second tables" in text
    assert "first tables" not in text
    assert "The profile says why." in text
    assert text.index(BEGIN) < text.index("second tables") < text.index(END)
