"""`asistente chat`: talk to the assistant in the terminal as a customer, on the configured model and calendar.

Each turn shows the replies, the WhatsApp messages the agent sent itself, and dim notes of the tools it called and
of what became of a confirmation question (`cli.turn_notes`). Terminal handling (line editor, typing indicator,
Ctrl-C) is in `cli.console`. The model's expected failures end the chat with one line and exit code 1.
"""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from cli.config import fail, load_configuration
from cli.console import Console
from core.business import Business
from core.settings import Settings

if TYPE_CHECKING:
    from evals.wiring import Wired


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
    console = Console.open()
    try:
        asyncio.run(_console_chat(settings, business, wa_id, name, console))
    except KeyboardInterrupt:
        # Ctrl-C outside a turn the console could cancel (starting up; anywhere when piped) ends the chat like
        # Ctrl-D: the person asked to stop, and nothing went wrong.
        if sys.stdout.isatty():
            typer.echo("")  # past the "^C" the terminal echoed
    except Exception as exc:
        # The boundary for the model's failures: what to check, in one line, instead of the traceback. (openai is
        # imported only here: every other command would pay for it at start-up.)
        from cli.model_errors import describe_model_error

        message = describe_model_error(exc, settings)
        if message is None:
            raise
        raise fail(message) from None


async def _console_chat(settings: Settings, business: Business, wa_id: str, name: str | None, console: Console) -> None:
    from contextlib import AsyncExitStack

    from agent.model import build_chat_model
    from agent.prompt_version import prompt_version
    from agent.tracing import TraceLabels, TurnTracer
    from core.clock import SystemClock
    from evals.wiring import open_migrated_database, wire_assistant
    from server.backends import open_calendar
    from store.appointments import AppointmentRepository

    model = build_chat_model(settings)
    clock = SystemClock()
    # Traced like the server's turns when tracing is on, but tagged and threaded apart ("chat:").
    labels = TraceLabels(
        model=settings.openai_model,
        prompt_version=prompt_version(business),
        tags=("chat",),
        metadata={"entry_point": "chat"},
        thread_prefix="chat:",
    )
    tracer = TurnTracer.from_settings(settings, labels=labels)
    async with AsyncExitStack() as stack:
        stack.callback(console.close)
        stack.callback(tracer.flush)
        db = await stack.enter_async_context(open_migrated_database(settings.database_url))
        # The configured calendar (Calendly when its token is set), as the server would use it.
        calendar = await open_calendar(settings, business, clock, AppointmentRepository(db), stack)
        wired = await stack.enter_async_context(
            wire_assistant(db, business, clock, model, calendar=calendar, tracer=tracer)
        )
        if console.interactive:
            typer.echo(f"{business.name}: you write as {wa_id}. Ctrl-C stops a turn; Ctrl-D or /quit ends the chat.")
        while (text := await console.read_line()) is not None:
            if text:
                await _turn(wired, console, wa_id, name, text)


async def _turn(wired: Wired, console: Console, wa_id: str, name: str | None, text: str) -> None:
    """One customer message: run the turn, then show what it did and said."""
    from agent.api import IncomingText
    from cli.turn_notes import read_thread, turn_notes

    before = await read_thread(wired.assistant, wa_id)
    already_sent = len(wired.sender.sent)
    async with console.typing():
        result = await console.run_turn(
            wired.assistant.customer_turn(wa_id, [IncomingText(body=text)], profile_name=name)
        )
    if result is None:
        # Whatever the turn finished before Ctrl-C stays in the thread; the agent repairs a call left open.
        console.note("turn cancelled (Ctrl-C); write again, or Ctrl-C / Ctrl-D to leave")
        return
    for note in turn_notes(before, await read_thread(wired.assistant, wa_id)):
        console.note(note)
    for _, body, _kind in wired.sender.sent[already_sent:]:
        console.say("asistente (WhatsApp)", body)
    for reply in result.replies:
        console.say("asistente", reply)
