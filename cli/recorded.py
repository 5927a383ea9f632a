"""Recorded conversations: `asistente demo` and `asistente eval`.

Imports of `evals` stay inside the commands: the replay machinery (vcrpy) is only loaded by the commands that use it.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from cli.config import fail, load_configuration


def demo(
    keep: Annotated[
        str | None, typer.Option(help="Keep the demo database in this directory (default: a temporary one).")
    ] = None,
) -> None:
    """Replay the quick-start conversation (a booking in Spanish) on the embedded defaults: no .env, key or network."""
    import tempfile
    from pathlib import Path

    from evals.demo import format_appointments, format_header, format_transcript, run_demo

    with tempfile.TemporaryDirectory(prefix="asistente-demo-") as scratch:
        run = asyncio.run(run_demo(Path(keep) if keep else Path(scratch)))
        typer.echo(format_header(run))
        typer.echo("")
        typer.echo(format_transcript(run))
        typer.echo("")
        typer.echo(format_appointments(run))
    if not keep:
        typer.echo("(a temporary database, deleted now; `asistente demo --keep DIR` keeps it)")
    if run.error or not run.fully_played:
        why = run.error or "recorded answers left unused"
        raise fail(f"the demo did not replay as recorded ({run.played}/{run.recorded} model answers): {why}")


def evaluate(
    names: Annotated[
        list[str] | None, typer.Argument(help="Conversations to run (default: every one in evals/conversations).")
    ] = None,
    threshold: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of conversations that must pass for exit code 0.")
    ] = 1.0,
    record: Annotated[
        bool,
        typer.Option(
            "--record",
            envvar="ASISTENTE_RECORD",  # evals.RECORD_ENV
            help="Re-record the cassettes from the real OpenAI API (needs OPENAI_API_KEY); see evals/replay.py.",
        ),
    ] = False,
) -> None:
    """Run recorded conversations through the real graph and tools with the model replayed; print a pass rate."""
    import tempfile
    from pathlib import Path

    from evals.dataset import load_conversations
    from evals.runner import format_report, run_suite
    from evals.session import check_recording_settings

    record_with = load_configuration()[0] if record else None
    try:
        if record_with is not None:
            check_recording_settings(record_with)
        conversations = load_conversations(names or None)
    except ValueError as exc:
        raise fail(str(exc)) from None
    except KeyError as exc:
        raise fail(str(exc.args[0])) from None
    with tempfile.TemporaryDirectory(prefix="asistente-eval-") as scratch:
        report = asyncio.run(run_suite(conversations, Path(scratch), threshold=threshold, record_with=record_with))
    typer.echo(format_report(report))
    raise typer.Exit(code=report.exit_code)
