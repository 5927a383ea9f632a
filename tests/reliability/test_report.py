"""`python -m tests.reliability.report`: the figures as a Markdown table, scenarios in a fixed order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.reliability.figures import Figures
from tests.reliability.report import main, render


def _write(directory: Path, figures: Figures) -> None:
    (directory / f"{figures.scenario}.json").write_text(json.dumps(figures.__dict__))


def test_one_row_per_scenario_in_order_with_failed_checks_named(tmp_path: Path) -> None:
    _write(
        tmp_path,
        Figures("database_down_40s", "PostgreSQL crashed for 40 s", sent=23, lost=2, checks={"none lost": False}),
    )
    _write(tmp_path, Figures("database_down_10s", "PostgreSQL crashed for 10 s", sent=8, checks={"none lost": True}))
    _write(
        tmp_path, Figures("baseline", "none", sent=40, bookings_calendly=4, appointments_stored=4, checks={"ok": True})
    )
    lines = render(tmp_path).splitlines()
    assert lines[0].startswith("| Scenario | Fault | Sent |")
    assert [line.split(" | ")[0] for line in lines[2:]] == ["| baseline", "| database_down_10s", "| database_down_40s"]
    assert "| 4 / 4 |" in lines[2] and lines[2].endswith("| pass |")
    assert lines[4].endswith("| FAIL: none lost |")


def test_nothing_to_render_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path)]) == 1
    assert (
        capsys.readouterr().err.strip() == f"no reliability results in {tmp_path}: run `pytest tests/reliability` first"
    )
