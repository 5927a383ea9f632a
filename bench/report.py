"""Benchmark results as tables: each Asistente figure beside the bare loop's from the same run, its ratio and target.

Benchmarks report; they never fail on a missed target (timings on a shared machine are noisy). A missed target is
shown as such in the table, and only a crash makes `python -m bench` exit non-zero.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


@dataclass
class Row:
    """One measure: both figures as text (units included), their ratio (Asistente / bare) and the target."""

    measure: str
    asistente: str
    bare: str
    ratio: float | None
    target: str
    # True / False when the target was judged, None when the measure has no target (reported only).
    met: bool | None
    note: str = ""


@dataclass
class Section:
    """A titled table of rows (one benchmark, or one database)."""

    title: str
    rows: list[Row] = field(default_factory=list)
    # Said under the table: how it was measured (what is timed, sizes, what counts as a transaction).
    notes: list[str] = field(default_factory=list)


def ratio(a: float, b: float) -> float | None:
    """a / b, or None when b is zero (nothing to compare with)."""
    if b == 0:
        return None
    return a / b


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100) of `values`, interpolated between the closest ranks; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    """The median, 0.0 for no values."""
    return statistics.median(values) if values else 0.0


def ms(seconds: float) -> str:
    """Seconds as milliseconds, to a precision that suits the size."""
    value = seconds * 1000
    return f"{value:.2f} ms" if value < 10 else f"{value:.0f} ms" if value >= 100 else f"{value:.1f} ms"


def pair_ms(a: float, b: float) -> str:
    """Two durations (p50 / p95 or p50 / p99) as 'x / y ms'."""
    return f"{_ms_number(a)} / {_ms_number(b)} ms"


def _ms_number(seconds: float) -> str:
    value = seconds * 1000
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def format_ratio(value: float | None) -> str:
    """A ratio as '1.9x', or an em dash when there is none."""
    if value is None:
        return "—"
    if value < 0.1:
        return f"{value:.2g}x"  # two significant digits: 0.0002x, not 0.00x
    return f"{value:.2f}x" if value < 10 else f"{value:.0f}x"


def _verdict(met: bool | None) -> str:
    return "" if met is None else "met" if met else "**missed**"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(sections: Iterable[Section], machine: dict[str, str]) -> str:
    """The report as Markdown: the machine first, then one table per section, notes under each table."""
    lines = ["## Machine", "", "| | |", "|---|---|"]
    lines += [f"| {_cell(key)} | {_cell(value)} |" for key, value in machine.items()]
    for section in sections:
        lines += ["", f"## {section.title}", ""]
        if section.rows:
            lines += ["| measure | Asistente | bare loop | ratio | target | |", "|---|---|---|---|---|---|"]
        for row in section.rows:
            measure = row.measure + (f" ({row.note})" if row.note else "")
            cells = [measure, row.asistente, row.bare, format_ratio(row.ratio), row.target, _verdict(row.met)]
            lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
        if section.notes:
            lines += [""] if section.rows else []
            lines += [f"- {note}" for note in section.notes]
    return "\n".join(lines) + "\n"


def render_text(sections: Iterable[Section], machine: dict[str, str]) -> str:
    """The report for a terminal: aligned columns, one block per section."""
    out = ["machine: " + ", ".join(f"{k} {v}" for k, v in machine.items())]
    for section in sections:
        out += ["", section.title]
        if not section.rows:
            out += [f"  - {note}" for note in section.notes]
            continue
        header = ("measure", "Asistente", "bare", "ratio", "target", "")
        table = [header] + [
            (
                r.measure + (f" ({r.note})" if r.note else ""),
                r.asistente,
                r.bare,
                format_ratio(r.ratio),
                r.target,
                "" if r.met is None else "met" if r.met else "MISSED",
            )
            for r in section.rows
        ]
        widths = [max(len(row[i]) for row in table) for i in range(len(header))]
        out += ["  " + "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in table]
        out += [f"  - {note}" for note in section.notes]
    return "\n".join(out) + "\n"
