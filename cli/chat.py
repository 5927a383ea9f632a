"""`asistente chat`: talk to the assistant in the terminal as a customer, on the configured model and calendar."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from cli.config import fail, load_configuration
from core.business import Business
from core.settings import Settings


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
