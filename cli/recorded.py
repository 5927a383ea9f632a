"""The recorded quick-start conversation: `asistente demo` (`asistente eval` is cli/evals.py).

Imports of `evals` stay inside the commands: the replay machinery (vcrpy) is only loaded by the commands that use it.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Annotated

import typer
import yaml
from pydantic import ValidationError

from cli.config import environment_tracer, fail, one_line

# What a replay fails with outside a turn (failures inside one are the run's `error`): files that cannot be read
# or written (the scratch directory, a missing or unreadable cassette), a cassette that is not YAML, the SQLite file.
REPLAY_FAILURES = (OSError, yaml.YAMLError, sqlite3.Error)
_RECORDING = "the demo scenario or its cassette"
# Demo and eval traces go to their own LangSmith project, never among production's turns.
EVAL_PROJECT_SUFFIX = "-eval"


def describe_failure(exc: BaseException, source: str) -> str:
    """One line for a failure loading or replaying recorded conversations; `source` says what was being read."""
    if isinstance(exc, ValidationError):
        # pydantic's text spans several lines per error; keep where and what, as `asistente check` does.
        fields = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors())
        return f"{source} is invalid: {fields}"
    if isinstance(exc, yaml.YAMLError):
        # The loaders hand PyYAML text, not a file, so its mark names "<unicode string>": only the line is worth it.
        mark = getattr(exc, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark is not None else ""
        return f"{source} is not valid YAML{line}: {getattr(exc, 'problem', None) or one_line(exc)}"
    return one_line(exc)


def demo(
    keep: Annotated[
        str | None, typer.Option(help="Keep the demo database in this directory (default: a temporary one).")
    ] = None,
) -> None:
    """Replay the quick-start conversation (a booking in Spanish) on the embedded defaults: no .env, key or network."""
    import tempfile

    from evals.demo import format_appointments, format_header, format_transcript, run_demo

    keep_dir = _keep_directory(keep) if keep else None
    tracer = environment_tracer(project_suffix=EVAL_PROJECT_SUFFIX)
    with tempfile.TemporaryDirectory(prefix="asistente-demo-") as scratch:
        try:
            run = asyncio.run(run_demo(keep_dir or Path(scratch), tracer=tracer))
        except REPLAY_FAILURES as exc:
            raise fail(f"the demo could not run: {describe_failure(exc, _RECORDING)}") from None
        finally:
            if tracer is not None:
                tracer.flush()
        typer.echo(format_header(run))
        typer.echo("")
        typer.echo(format_transcript(run))
        typer.echo("")
        typer.echo(format_appointments(run))
    if not keep:
        typer.echo("(a temporary database, deleted now; `asistente demo --keep DIR` keeps it)")
    problem = run.cassette_problem or run.error
    if problem:
        raise fail(f"the demo did not replay as recorded ({run.played}/{run.recorded} model answers): {problem}")


def _keep_directory(keep: str) -> Path:
    # Created here rather than by the demo, so that a path that cannot be a directory is reported as the option's
    # fault, before anything runs.
    directory = Path(keep)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise fail(f"--keep {keep}: a file exists there; give a directory (created if missing)") from None
    except OSError as exc:
        raise fail(f"--keep {keep}: cannot create the directory ({exc.strerror}); give another directory") from None
    return directory
