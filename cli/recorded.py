"""Recorded conversations and the console channel: `asistente demo`, `asistente eval`, `asistente chat`.

Imports of `evals` stay inside the commands: the replay machinery (vcrpy) is only loaded by the commands that use it.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from cli.config import fail, load_configuration
from core.business import Business
from core.settings import Settings


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


def chat(
    wa_id: Annotated[
        str, typer.Option("--as", help="Customer address of this console conversation.")
    ] = "console:local",
    name: Annotated[str | None, typer.Option(help="Customer name, as a WhatsApp profile would show it.")] = None,
) -> None:
    """Talk to the assistant in the terminal as a customer (needs a real model: OPENAI_API_KEY or OPENAI_BASE_URL)."""
    settings, business = load_configuration()
    if not settings.openai_enabled:
        raise fail(
            "asistente chat needs a real model: set OPENAI_API_KEY (or OPENAI_BASE_URL for an OpenAI-compatible "
            "server).\nWithout one, run `asistente demo` to replay a recorded conversation."
        )
    asyncio.run(_console_chat(settings, business, wa_id, name))


async def _console_chat(settings: Settings, business: Business, wa_id: str, name: str | None) -> None:
    import sys
    from contextlib import AsyncExitStack

    from agent.api import IncomingText
    from agent.model import build_chat_model
    from core.clock import SystemClock
    from evals.wiring import open_migrated_database, wire_assistant
    from server.backends import open_calendar
    from store.appointments import AppointmentRepository

    interactive = sys.stdin.isatty()
    model = build_chat_model(settings)
    clock = SystemClock()
    async with AsyncExitStack() as stack:
        db = await stack.enter_async_context(open_migrated_database(settings.database_url))
        # The configured calendar (Calendly when its token is set), as the server would use it.
        calendar = await open_calendar(settings, business, clock, AppointmentRepository(db), stack)
        wired = await stack.enter_async_context(wire_assistant(db, business, clock, model, calendar=calendar))
        if interactive:
            typer.echo(f"{business.name}: you write as {wa_id}; /quit or Ctrl-D ends the chat.")
        while True:
            if interactive:
                typer.echo("tú › ", nl=False)
            line = await asyncio.to_thread(sys.stdin.readline)
            text = line.strip()
            if not line or text in {"/quit", "/salir"}:
                break
            if not text:
                continue
            already_sent = len(wired.sender.sent)
            result = await wired.assistant.customer_turn(wa_id, [IncomingText(body=text)], profile_name=name)
            for _, body, _kind in wired.sender.sent[already_sent:]:
                typer.echo(f"asistente (WhatsApp) › {body}")
            for reply in result.replies:
                typer.echo(f"asistente › {reply}")
