"""What a run leaves behind: the JSON report `asistente eval compare` reads back, a Markdown page to read after the
run, and the table printed at its end. Everything here is computed from a `RunReport`; nothing runs the agent."""

from __future__ import annotations

import json
import re
from datetime import UTC
from pathlib import Path

from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from rich.text import Text

from evals.results import CaseResult, RunReport, Usage

REPORTS_DIR = Path(__file__).resolve().parent / "reports"
REASON_WIDTH = 80
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def report_stem(report: RunReport) -> str:
    """`<stamp>-<mode>[-<label>]`: sorts by start time, and the label is made safe for a file name."""
    started = report.meta.started_at
    # An aware time is written in UTC so two machines name the same run alike; a naive one is taken as is.
    stamp = (started.astimezone(UTC) if started.tzinfo else started).strftime("%Y%m%d-%H%M%S")
    label = _UNSAFE.sub("-", report.meta.label).strip("-.")
    return "-".join(part for part in (stamp, report.meta.mode, label) if part)


# The aggregates (pass^k overall, per scenario and per tag, usage) written beside the cases for readers of the
# JSON; computed again from the cases when a report is loaded, so they can never disagree with them.
SUMMARY_KEY = "summary"


def summary(report: RunReport) -> dict[str, object]:
    """pass^k overall, per scenario and per tag, the threshold verdict and the usage totals."""
    return {
        "pass_hat": report.aggregate().model_dump(mode="json"),
        "ok": report.ok,
        "scenarios": {name: report.aggregate([name]).model_dump(mode="json") for name in report.by_scenario()},
        "tags": {tag: agg.model_dump(mode="json") for tag, agg in report.by_tag().items()},
        "usage": report.usage.model_dump(mode="json"),
        "latency_ms": {"p50": report.latency_ms(50), "p95": report.latency_ms(95)},
    }


def write_reports(report: RunReport, directory: Path) -> tuple[Path, Path]:
    """Write the report as JSON and as Markdown into `directory` (created if needed); return (json, md) paths."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = report_stem(report)
    json_path, md_path = directory / f"{stem}.json", directory / f"{stem}.md"
    data = {**report.model_dump(mode="json"), SUMMARY_KEY: summary(report)}
    json_path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    md_path.write_text(markdown(report), encoding="utf-8")
    return json_path, md_path


def load_report(path: Path) -> RunReport:
    """Read a JSON report written by `write_reports`; any problem is a one-line ValueError naming the file."""
    hint = "pass a .json report written by `asistente eval` (see evals/reports/)"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file; {hint}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: cannot be read ({type(error).__name__}); {hint}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not JSON ({error.msg} at line {error.lineno}); {hint}") from None
    try:
        return RunReport.model_validate({k: v for k, v in data.items() if k != SUMMARY_KEY})
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "top level"
        raise ValueError(
            f"{path}: not an eval report ({error.error_count()} problem(s), first: {where}: {first['msg']}); {hint}"
        ) from None


def shorten(text: str, width: int = REASON_WIDTH) -> str:
    """One line of at most `width` characters, ending in an ellipsis when cut."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1].rstrip() + "…"


def failure_reason(cases: list[CaseResult]) -> str:
    """Why the first failed trial failed: its first failed check (decisive first), else its error or reason."""
    for case in cases:
        if case.passed:
            continue
        checks = case.failed_checks
        if checks:
            return f"{checks[0].name}: {checks[0].reason}"
        return case.error or case.reason
    return ""


def pct(value: float) -> str:
    """A rate as a percentage with one decimal (`0.5` -> `50.0%`)."""
    return f"{value:.1%}"


def _scenario_hats(report: RunReport, name: str) -> dict[int, float]:
    return report.aggregate([name]).pass_hat


def _hats_line(hats: dict[int, float]) -> str:
    return "  ".join(f"pass^{k} {pct(v)}" for k, v in hats.items()) or "nothing ran"


def _verdict(report: RunReport) -> str:
    return f"threshold {pct(report.meta.threshold)} on pass^1: {'OK' if report.ok else 'FAILED'}"


def _latency(cases: list[CaseResult]) -> float:
    return sum(c.latency_ms for c in cases) / len(cases) if cases else 0.0


def _cell(text: str) -> str:
    """Text made safe for one Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def _header(report: RunReport) -> list[str]:
    meta = report.meta
    title = f"# Eval run: {meta.mode}" + (f" ({meta.label})" if meta.label else "")
    finished = meta.finished_at.isoformat(timespec="seconds") if meta.finished_at else "-"
    rows = [
        ["mode", meta.mode],
        ["agent model", meta.agent_model],
        ["customer model", meta.customer_model or "-"],
        ["judge model", meta.judge_model or "-"],
        ["prompt version", meta.prompt_version],
        ["trials", str(meta.trials)],
        ["started", meta.started_at.isoformat(timespec="seconds")],
        ["finished", finished],
    ]
    return [title, "", *_table(["", ""], rows)]


def _summary(report: RunReport) -> list[str]:
    total, usage = report.aggregate(), report.usage
    return [
        "## Summary",
        "",
        f"- scenarios: {total.scenarios} ({total.trials} trials, {total.successes} passed)",
        f"- {_hats_line(total.pass_hat)}",
        f"- {_verdict(report)}",
        f"- tokens: {usage.input_tokens:,} in / {usage.output_tokens:,} out, {usage.model_calls:,} model calls",
        f"- latency per case: p50 {report.latency_ms(50):,.0f} ms, p95 {report.latency_ms(95):,.0f} ms",
    ]


def _scenarios(report: RunReport) -> list[str]:
    ks = range(1, report.meta.trials + 1)
    header = ["scenario", "tags", "passed", *(f"pass^{k}" for k in ks), "tokens in/out", "latency ms", "failure"]
    rows = []
    for name, cases in report.by_scenario().items():
        hats, usage = _scenario_hats(report, name), sum((c.usage for c in cases), start=Usage())
        rows.append(
            [
                name,
                ", ".join(cases[0].tags),
                f"{sum(c.passed for c in cases)}/{len(cases)}",
                *(pct(hats[k]) if k in hats else "-" for k in ks),
                f"{usage.input_tokens:,}/{usage.output_tokens:,}",
                f"{_latency(cases):,.0f}",
                failure_reason(cases),
            ]
        )
    return ["## Scenarios", "", *_table(header, rows)]


def _tags(report: RunReport) -> list[str]:
    tags = report.by_tag()
    if not tags:
        return []
    ks = range(1, max(len(a.pass_hat) for a in tags.values()) + 1)
    rows = [
        [
            tag,
            str(a.scenarios),
            f"{a.successes}/{a.trials}",
            *(pct(a.pass_hat[k]) if k in a.pass_hat else "-" for k in ks),
        ]
        for tag, a in tags.items()
    ]
    return ["## By tag", "", *_table(["tag", "scenarios", "trials passed", *(f"pass^{k}" for k in ks)], rows)]


def _failures(report: RunReport) -> list[str]:
    failed = [c for c in report.cases if not c.passed]
    lines = ["## Failures", ""]
    if not failed:
        return [*lines, "None."]
    for case in failed:
        lines += [f"### {case.scenario}, trial {case.trial}", "", f"Reason: {_cell(case.reason)}", ""]
        lines += [f"- {'**decisive** ' if c.decisive else ''}`{c.name}`: {_cell(c.reason)}" for c in case.failed_checks]
        if case.error:
            lines.append(f"- error: {_cell(case.error)}")
        if case.transcript:
            body = [f"{line.who}: {line.text}".replace("\n", "\n    ") for line in case.transcript]
            # A longer fence when a line itself quotes a fence, so the block still closes where it should.
            fence = "````" if any("```" in line for line in body) else "```"
            lines += ["", f"{fence}text", *body, fence]
        lines.append("")
    return lines


def markdown(report: RunReport) -> str:
    """The Markdown page of a run: header, summary, per-scenario and per-tag tables, then every failure in full."""
    sections = [_header(report), _summary(report), _scenarios(report), _tags(report), _failures(report)]
    return "\n".join(line for section in sections if section for line in [*section, ""]).rstrip() + "\n"


def results_table(report: RunReport) -> Table:
    """One row per scenario: trials passed (green/red), pass^k, tokens, mean latency, first failure (shortened)."""
    ks = range(1, report.meta.trials + 1)
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("scenario", no_wrap=True)
    table.add_column("passed", no_wrap=True, justify="right")
    for k in ks:
        table.add_column(f"pass^{k}", no_wrap=True, justify="right")
    table.add_column("tokens in/out", no_wrap=True, justify="right")
    table.add_column("latency ms", no_wrap=True, justify="right")
    table.add_column("first failure", overflow="fold")
    for name, cases in report.by_scenario().items():
        hats, passed = _scenario_hats(report, name), sum(c.passed for c in cases)
        tokens_in, tokens_out = sum(c.usage.input_tokens for c in cases), sum(c.usage.output_tokens for c in cases)
        # Text cells are never parsed as rich markup: reasons quote the model and the customer verbatim.
        table.add_row(
            Text(name),
            Text(f"{passed}/{len(cases)}", style="green" if passed == len(cases) else "red"),
            *(Text(pct(hats[k]) if k in hats else "-") for k in ks),
            Text(f"{tokens_in:,}/{tokens_out:,}"),
            Text(f"{_latency(cases):,.0f}"),
            Text(shorten(failure_reason(cases))),
        )
    return table


def summary_line(report: RunReport) -> Text:
    """The footer: pass^1..k, threshold and verdict, then tokens, calls and latency percentiles."""
    usage = report.usage
    line = Text(_hats_line(report.aggregate().pass_hat) + "  ")
    line.append(_verdict(report), style="bold green" if report.ok else "bold red")
    line.append(
        f"  tokens {usage.input_tokens:,} in / {usage.output_tokens:,} out  model calls {usage.model_calls:,}"
        f"  latency p50 {report.latency_ms(50):,.0f} ms p95 {report.latency_ms(95):,.0f} ms"
    )
    return line


def print_summary(report: RunReport, console: Console) -> None:
    """Print the results table and the footer line to `console`."""
    console.print(results_table(report))
    console.print(summary_line(report))
