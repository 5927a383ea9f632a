"""`asistente demo`: the quick-start conversation replayed on the embedded defaults, shown as a WhatsApp chat."""

from __future__ import annotations

from pathlib import Path

from agent.tracing import TurnTracer
from core.timeutil import describe_moment
from evals.dataset import CONVERSATIONS_DIR, load_conversation
from evals.session import ConversationRun, TurnRecord, run_conversation
from tools.registry import WRITE_TOOLS

DEMO_CONVERSATION = "demo_booking_es"
_NAME_WIDTH = 11


async def run_demo(directory: Path, *, tracer: TurnTracer | None = None) -> ConversationRun:
    """Replay the demo conversation on a fresh SQLite database in `directory` (traced by `tracer`, if on)."""
    conversation = load_conversation(CONVERSATIONS_DIR / f"{DEMO_CONVERSATION}.yaml")
    return await run_conversation(conversation, directory, tracer=tracer, mode="demo")


def format_header(run: ConversationRun) -> str:
    """What the demo runs on: the shipped example business, a replayed model, a throwaway SQLite file."""
    cassette = run.conversation.cassette
    return (
        f"Asistente demo: conversation {run.conversation.name!r} on the embedded defaults\n"
        f"model replayed from evals/cassettes/{cassette.name} ({run.played}/{run.recorded} answers; "
        "no API key, no network) · local calendar · SQLite"
    )


def _chat_line(who: str, text: str) -> str:
    indent = " " * (_NAME_WIDTH + 3)
    first, *rest = text.splitlines() or [""]
    lines = [f"{who:<{_NAME_WIDTH}} › {first}"] + [f"{indent}{line}".rstrip() for line in rest]
    return "\n".join(lines)


def format_transcript(run: ConversationRun) -> str:
    """The conversation as a chat: customer and assistant lines, tool calls indented between them."""
    conversation = run.conversation
    customer = conversation.customer.profile_name or conversation.customer.wa_id
    now = conversation.now.astimezone(run.timezone)
    lines = [
        f"WhatsApp · {conversation.customer.wa_id} ({customer}) · {describe_moment(now)} ({run.timezone.key})",
        "",
    ]
    tool_indent = " " * (_NAME_WIDTH + 3)
    previous: TurnRecord | None = None
    for record in run.turns:
        if record.turn.kind == "system":
            lines.append(_chat_line("[evento]", record.turn.text))
        else:
            lines.append(_chat_line(customer, record.turn.text))
        asked = [c.name for c in previous.tool_calls if c.name in WRITE_TOOLS] if previous else []
        if previous is not None and previous.awaiting_confirmation and record.changed_appointments and asked:
            lines.append(f"{tool_indent}✔ the customer confirmed: {asked[-1]} ran")
        for call in record.tool_calls:
            pending = record.awaiting_confirmation and call.name in WRITE_TOOLS
            lines.append(f"{tool_indent}⚙ {call.describe()}{'  ⏸ waits for a yes' if pending else ''}")
        lines += [_chat_line("Asistente", reply) for reply in record.replies]
        lines += [_chat_line("Asistente", f"(WhatsApp) {message.body}") for message in record.sent]
        lines.append("")
        previous = record
    if run.error:
        lines.append(f"!! the conversation stopped: {run.error}")
    return "\n".join(lines).rstrip()


def format_appointments(run: ConversationRun) -> str:
    """The appointments table after the conversation, one row per appointment, times local to the business."""
    header = ("id", "service", f"start ({run.timezone.key})", "end", "status", "source", "price", "client")
    rows = [header]
    for a in run.appointments:
        start, end = a.start_at.astimezone(run.timezone), a.end_at.astimezone(run.timezone)
        client = run.conversation.customer.wa_id if a.client_id == run.client_id else str(a.client_id)
        price = f"{a.price_eur:g} €" if a.price_eur is not None else "-"
        rows.append((a.id, a.service, f"{start:%Y-%m-%d %H:%M}", f"{end:%H:%M}", a.status, a.source, price, client))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    table = ["  ".join(f"{cell:<{widths[i]}}" for i, cell in enumerate(row)).rstrip() for row in rows]
    if len(rows) == 1:
        table.append("(no appointments)")
    database = run.database_url.removeprefix("sqlite:///")
    return "\n".join([f"appointments table ({database}):", *table])
