"""Render the reliability figures as a Markdown table (for RELIABILITY.md).

    python -m tests.reliability.report [RESULTS_DIR]

Reads every `<scenario>.json` in RESULTS_DIR (default: $RELIABILITY_RESULTS_DIR, else tests/reliability/results/).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from tests.reliability.figures import results_dir

COLUMNS = (
    ("Scenario", "scenario"),
    ("Fault", "fault"),
    ("Sent", "sent"),
    ("Acked", "acknowledged"),
    ("Stored", "stored"),
    ("Answered once", "answered_once"),
    ("Duplicated", "duplicated"),
    ("Lost", "lost"),
    ("Slowest ack (s)", "ack_max_seconds"),
    ("Slowest answer (s)", "answer_max_seconds"),
    ("Holding", "holding"),
    ("Bookings Calendly / stored", None),
    ("Orphans", "orphans"),
    ("Doubles", "double_bookings"),
    ("Recovery (s)", "recovery_seconds"),
    ("Result", None),
)


# The order of RELIABILITY.md: the reference, crashes, then each dependency's outage (shorter variants first).
ORDER = (
    "baseline",
    "kill_mid_turn",
    "kill_mid_send",
    "kill_mid_booking",
    "twilio_500",
    "twilio_429",
    "database_down",
    "model_down",
    "calendly_429",
)


def _order(figures: dict[str, Any]) -> tuple[int, float, str]:
    name = str(figures.get("scenario", ""))
    rank = next((i for i, prefix in enumerate(ORDER) if name.startswith(prefix)), len(ORDER))
    seconds = name.rsplit("_", 1)[-1].removesuffix("s")
    return rank, float(seconds) if seconds.replace(".", "", 1).isdigit() else 0.0, name


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    return str(value).replace("|", "\\|")


def row(figures: dict[str, Any]) -> list[str]:
    """One scenario's cells, in COLUMNS order."""
    cells = []
    for title, key in COLUMNS:
        if key is not None:
            cells.append(_cell(figures.get(key)))
        elif title == "Result":
            failed = [name for name, held in figures.get("checks", {}).items() if not held]
            cells.append("pass" if not failed else "FAIL: " + "; ".join(failed).replace("|", "\\|"))
        else:
            calendly, stored = figures.get("bookings_calendly"), figures.get("appointments_stored")
            cells.append("–" if calendly is None else f"{calendly} / {stored}")
    return cells


def render(directory: Path) -> str:
    """The Markdown table of every result file in `directory`, in scenario order."""
    results = sorted((json.loads(p.read_text(encoding="utf-8")) for p in directory.glob("*.json")), key=_order)
    lines = [
        "| " + " | ".join(title for title, _ in COLUMNS) + " |",
        "|" + "|".join("---" for _ in COLUMNS) + "|",
    ]
    lines += ["| " + " | ".join(row(figures)) + " |" for figures in results]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    """Print the table; exit 1 with one line when there is nothing to render."""
    directory = Path(argv[0]) if argv else results_dir()
    if not any(directory.glob("*.json")):
        print(f"no reliability results in {directory}: run `pytest tests/reliability` first", file=sys.stderr)
        return 1
    sys.stdout.write(render(directory))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
