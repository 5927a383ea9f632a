"""`asistente demo`: the quick-start conversation replayed on the embedded defaults, shown as a WhatsApp chat."""

from __future__ import annotations

from pathlib import Path

from agent.tracing import TurnTracer
from core.timeutil import describe_moment
from evals.agent_model import open_agent_model
from evals.record import ScenarioRun, TurnRecord
from evals.scenario import SCENARIOS_DIR, load_scenario
from evals.session import ScriptedCustomer, run_scenario
from tools.registry import WRITE_TOOLS

DEMO_CONVERSATION = "demo_booking_es"
_NAME_WIDTH = 11


async def run_demo(directory: Path, *, tracer: TurnTracer | None = None) -> ScenarioRun:
    """Replay the demo scenario on a fresh SQLite database in `directory` (traced by `tracer`, if on)."""
    scenario = load_scenario(SCENARIOS_DIR / f"{DEMO_CONVERSATION}.yaml")
    agent = open_agent_model("replay", scenario.cassette)
    try:
        customer = ScriptedCustomer(scenario.script or [])
        return await run_scenario(scenario, directory, agent, customer, mode="demo", tracer=tracer)
    finally:
        await agent.aclose()


def format_header(run: ScenarioRun) -> str:
    """What the demo runs on: the shipped example business, a replayed model, a throwaway SQLite file."""
    cassette = run.scenario.cassette
    return (
        f"Asistente demo: conversation {run.scenario.name!r} on the embedded defaults\n"
        f"model replayed from evals/cassettes/{cassette.name} ({run.played}/{run.recorded} answers; "
        "no API key, no network) · local calendar · SQLite"
    )


def _chat_line(who: str, text: str) -> str:
    indent = " " * (_NAME_WIDTH + 3)
    first, *rest = text.splitlines() or [""]
    lines = [f"{who:<{_NAME_WIDTH}} › {first}"] + [f"{indent}{line}".rstrip() for line in rest]
    return "\n".join(lines)


def format_transcript(run: ScenarioRun) -> str:
    """The conversation as a chat: customer and assistant lines, tool calls indented between them."""
    scenario = run.scenario
    customer = scenario.customer.profile_name or scenario.customer.wa_id
    now = scenario.now.astimezone(run.timezone)
    lines = [
        f"WhatsApp · {scenario.customer.wa_id} ({customer}) · {describe_moment(now)} ({run.timezone.key})",
        "",
    ]
    tool_indent = " " * (_NAME_WIDTH + 3)
    previous: TurnRecord | None = None
    for record in run.turns:
        if record.kind == "event":
            lines.append(_chat_line("[evento]", record.text))
        else:
            lines.append(_chat_line(customer, record.text))
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


def format_appointments(run: ScenarioRun) -> str:
    """The appointments table after the conversation, one row per appointment, times local to the business."""
    header = ("id", "service", f"start ({run.timezone.key})", "end", "status", "source", "price", "client")
    rows = [header]
    for a in run.appointments:
        start, end = a.start_at.astimezone(run.timezone), a.end_at.astimezone(run.timezone)
        client = run.wa_id_of(a) or "-"
        price = f"{a.price_eur:g} €" if a.price_eur is not None else "-"
        rows.append((a.id, a.service, f"{start:%Y-%m-%d %H:%M}", f"{end:%H:%M}", a.status, a.source, price, client))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    table = ["  ".join(f"{cell:<{widths[i]}}" for i, cell in enumerate(row)).rstrip() for row in rows]
    if len(rows) == 1:
        table.append("(no appointments)")
    database = run.database_url.removeprefix("sqlite:///")
    return "\n".join([f"appointments table ({database}):", *table])
