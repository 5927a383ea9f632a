"""`asistente eval`: run scenarios (replay by default; `--live`, `--record`, `--simulate`), `eval compare A B`,
`eval author NAME`, `eval capture TARGET`. Imports of `evals` stay inside the commands: the evaluation machinery is
the `evals` extra.

`eval` is a group, yet `asistente eval NAME...` runs the suite: Click parses a group's own arguments before it looks
for a subcommand, so a group callback taking NAMES would swallow `compare` as a name. Instead the group sends any
arguments that do not start with a subcommand's name to its `run` command. A scenario cannot be named like a
subcommand by that shorthand; `asistente eval run compare` would still reach it.
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError
from typer.core import TyperGroup

from cli.capture import capture
from cli.config import environment_tracer, fail, load_configuration, one_line
from cli.recorded import EVAL_PROJECT_SUFFIX, REPLAY_FAILURES, describe_failure
from core.settings import Settings

if TYPE_CHECKING:
    from evals.results import Mode, RunReport
    from evals.runner import RunOptions
    from evals.scenario import Scenario

SUITE = "run"


class SuiteByDefault(TyperGroup):
    """A group whose arguments go to its `run` command unless they start with a subcommand's name (or --help)."""

    # `ctx` is Click's Context, which Typer vendors under a private module name: typed loosely rather than by it.
    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        """Prefix `run` to anything that is not a subcommand, so `eval [NAMES]... [OPTIONS]` runs the suite."""
        if not args or (args[0] not in self.commands and args[0] not in ctx.help_option_names):
            args = [SUITE, *args]
        return super().parse_args(ctx, args)


def require_evals() -> None:
    """Fail with one line when the `evals` extra (openevals, ...) is not installed."""
    try:
        import openevals  # noqa: F401
    except ImportError:
        raise fail("evaluations need the evals extra: pip install 'asistente[evals]' (make install has it)") from None


def _mode(live: bool, record: bool, simulate: bool) -> Mode:
    if sum((live or record, simulate)) > 1:
        raise fail("choose one of --live (--record) and --simulate")
    if simulate:
        return "simulate"
    if record:
        return "record"
    return "live" if live else "replay"


def _scenarios(names: list[str] | None, tags: list[str] | None) -> list[Scenario]:
    from evals.scenario import SCENARIOS_DIR, load_scenarios

    try:
        scenarios = load_scenarios(names or None, tags=tags or None)
    except KeyError as exc:
        raise fail(str(exc.args[0])) from None
    except (ValueError, *REPLAY_FAILURES) as exc:  # ValueError covers pydantic's ValidationError
        raise fail(describe_failure(exc, f"a scenario in {SCENARIOS_DIR}")) from None
    if not scenarios:
        raise fail(f"no scenarios to run in {SCENARIOS_DIR} (names {names or 'all'}, tags {tags or 'any'})")
    return scenarios


def _options(mode: Mode, workdir: Path, **given: object) -> RunOptions:
    from evals.models import EvalModelSettings, agent_choice, customer_choice, judge_choice
    from evals.runner import RunOptions

    if mode == "replay":
        return RunOptions(mode=mode, workdir=workdir, **given)  # type: ignore[arg-type]
    settings = load_configuration()[0]
    if not settings.openai_enabled:
        raise fail(f"--{mode} needs a model: set OPENAI_API_KEY (or OPENAI_BASE_URL for an OpenAI-compatible server)")
    try:
        extra = EvalModelSettings()
    except ValidationError as exc:
        raise fail(describe_failure(exc, "the EVAL_* settings")) from None
    customer, judge = customer_choice(settings, extra), judge_choice(settings, extra)
    typer.echo(f"agent model: {agent_choice(settings).describe()}")
    default_model = Settings.model_fields["openai_model"].default
    if mode == "record" and settings.openai_model != default_model:
        # Replay (CI) runs the default model; cassettes recorded with another are stale there by design.
        typer.secho(
            f"recording with {settings.openai_model}: replay runs the default model {default_model} "
            "(core/settings.py), so these cassettes stay stale until that default changes too",
            fg=typer.colors.YELLOW,
        )
    if mode == "simulate":
        typer.echo(f"customer model: {customer.describe()}")
    typer.echo(f"judge model: {judge.describe()}")
    return RunOptions(
        mode=mode,
        workdir=workdir,
        agent_settings=settings,
        customer_model=customer.build(temperature=None) if mode == "simulate" else None,
        customer_model_name=customer.name if mode == "simulate" else None,
        judge_model=judge.build(temperature=0),
        judge_model_name=judge.name,
        **given,  # type: ignore[arg-type]
    )


_MODE_LINES = {
    "replay": "mode: replay (model answers from evals/cassettes; offline)",
    "live": "mode: live (the configured model answers the scripted turns; cassettes untouched)",
    "record": "mode: record (the configured model answers; cassettes are REWRITTEN)",
    "simulate": "mode: simulate (a model plays the customer from each persona and goal)",
    "author": "mode: author (hand-written answers from evals/authoring; cassettes are rewritten)",
}


def _run(scenarios: list[Scenario], options: RunOptions) -> RunReport:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from evals.experiments_cli import experiment_executor
    from evals.runner import run_suite

    total = len(scenarios) * options.trials
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), transient=True
    ) as progress:
        task = progress.add_task("running", total=total)

        def done(case: object) -> None:
            progress.advance(task)

        running = replace(options, on_case=done)
        executor = experiment_executor()
        return asyncio.run(run_suite(scenarios, running, executor=executor))


def run(
    names: Annotated[
        list[str] | None, typer.Argument(help="Scenarios to run (default: all in evals/scenarios).")
    ] = None,
    live: Annotated[bool, typer.Option("--live", help="The configured model answers the scripted turns.")] = False,
    record: Annotated[bool, typer.Option("--record", help="Like --live, and rewrite the cassettes.")] = False,
    simulate: Annotated[bool, typer.Option("--simulate", help="A model plays the customer (persona, goal).")] = False,
    trials: Annotated[int, typer.Option(min=1, max=50, help="Trials per scenario (pass^k up to k=trials).")] = 1,
    concurrency: Annotated[int, typer.Option(min=1, max=64, help="Cases at once (each on its own database).")] = 4,
    timeout: Annotated[float, typer.Option(min=1, help="Seconds a case may take before it fails.")] = 120.0,
    threshold: Annotated[float, typer.Option(min=0.0, max=1.0, help="pass^1 needed for exit code 0.")] = 1.0,
    tag: Annotated[list[str] | None, typer.Option(help="Only scenarios with this tag (e.g. intent:book).")] = None,
    report_dir: Annotated[Path | None, typer.Option(help="Where the JSON and Markdown reports go.")] = None,
    label: Annotated[str, typer.Option(help="A label for the reports' file names (e.g. the prompt change).")] = "",
) -> None:
    """Run the scenarios through the real graph, tools and store; print the table, write the reports."""
    require_evals()
    from langsmith.utils import LangSmithError
    from rich.console import Console

    from evals.report import REPORTS_DIR, print_summary, write_reports
    from evals.runner import runnable

    mode = _mode(live, record, simulate)
    typer.echo(_MODE_LINES[mode])
    chosen, skipped = runnable(_scenarios(names, tag), mode)
    if skipped:
        typer.echo(f"skipped (no script; run them with --simulate): {', '.join(s.name for s in skipped)}")
    if not chosen:
        raise fail("nothing to run in this mode")
    tracer = environment_tracer(project_suffix=EVAL_PROJECT_SUFFIX)
    with tempfile.TemporaryDirectory(prefix="asistente-eval-") as scratch:
        given = {"trials": trials, "concurrency": concurrency, "time_limit": timeout, "threshold": threshold}
        options = _options(mode, Path(scratch), tracer=tracer, label=label, **given)
        try:
            report = _run(chosen, options)
        except REPLAY_FAILURES as exc:
            raise fail(f"eval could not run: {one_line(exc)}") from None
        except LangSmithError as exc:
            raise fail(
                f"the LangSmith experiment failed ({one_line(exc)}); check LANGSMITH_API_KEY and LANGSMITH_ENDPOINT, "
                "or run locally with ASISTENTE_EVAL_EXPERIMENT=0"
            ) from None
        finally:
            if tracer is not None:
                tracer.flush()
    print_summary(report, Console())
    for case in report.cases:
        if not case.passed:  # in full: the table cuts reasons to its width
            typer.echo(f"FAIL {case.scenario} (trial {case.trial}): {case.reason}")
    try:
        paths = write_reports(report, report_dir or REPORTS_DIR)
    except OSError as exc:
        raise fail(f"cannot write the reports: {one_line(exc)}") from None
    typer.echo(f"reports: {paths[0]} and {paths[1]}")
    raise typer.Exit(code=0 if report.ok else 1)


def compare(
    before: Annotated[Path, typer.Argument(help="The report before the change (JSON).")],
    after: Annotated[Path, typer.Argument(help="The report after the change (JSON).")],
) -> None:
    """Per-scenario flips, pass^k and cost deltas between two reports; exit 1 when a scenario regressed."""
    require_evals()
    from evals.compare import compare as compare_reports
    from evals.compare import format_comparison
    from evals.report import load_report

    try:
        comparison = compare_reports(load_report(before), load_report(after))
    except ValueError as exc:
        raise fail(str(exc)) from None
    typer.echo(format_comparison(comparison), nl=False)
    raise typer.Exit(code=1 if comparison.regressed else 0)


def author(
    names: Annotated[list[str], typer.Argument(help="Scenarios whose cassettes to write from evals/authoring.")],
) -> None:
    """Write cassettes from hand-written answers, through the real agent (when no real model can be recorded)."""
    require_evals()
    from rich.console import Console

    from evals.report import print_summary
    from evals.runner import RunOptions

    typer.echo(_MODE_LINES["author"])
    with tempfile.TemporaryDirectory(prefix="asistente-author-") as scratch:
        try:
            report = _run(_scenarios(names, None), RunOptions(mode="author", workdir=Path(scratch)))
        except (FileNotFoundError, ValueError) as exc:
            raise fail(one_line(exc)) from None
    print_summary(report, Console())
    raise typer.Exit(code=0 if report.ok else 1)


eval_app = typer.Typer(
    cls=SuiteByDefault,
    help="Scenarios: `asistente eval [NAMES]...` runs them (as `eval run`); also `compare`, `author`, `capture`.",
    add_completion=False,
)
eval_app.command(SUITE)(run)
eval_app.command("compare")(compare)
eval_app.command("author")(author)
eval_app.command("capture")(capture)
