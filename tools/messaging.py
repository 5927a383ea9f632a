"""`send_whatsapp`: the only way a message reaches the customer in a system turn."""

from __future__ import annotations

from typing import Annotated

from langchain_core.tools import tool
from langgraph.prebuilt import ToolRuntime
from pydantic import Field

from tools.context import ToolContext
from tools.results import Refusal, ok

MAX_MESSAGE_CHARS = 4000


@tool
async def send_whatsapp(
    message: Annotated[str, Field(description="The text to send, in the customer's language.")],
    runtime: ToolRuntime[ToolContext],
) -> str:
    """Send a WhatsApp message to the customer in this chat, right now.

    Use it to tell the customer about a calendar change or a reminder (system events). In a normal reply to the
    customer just answer with text instead; that answer is sent automatically.
    """
    ctx = runtime.context
    text = message.strip()
    if not text:
        return Refusal("empty_message", "The message is empty; write the text to send.").result()
    if len(text) > MAX_MESSAGE_CHARS:
        return Refusal("too_long", f"Keep it under {MAX_MESSAGE_CHARS} characters.").result()
    await ctx.services.sender.send(ctx.turn.wa_id, text, kind="system" if ctx.turn.kind == "system" else "reply")
    return ok(status="queued")


@tool
async def handoff_to_staff(
    reason: Annotated[str, Field(description="What the customer needs, in one sentence, for the staff.")],
    runtime: ToolRuntime[ToolContext],
) -> str:
    """Pass the conversation to a person at the salon.

    Use it when the customer asks for a person, has a complaint, or needs something you cannot do. Staff are
    alerted with the reason; from then on they answer this customer themselves. Tell the customer that someone
    from the team will write soon.
    """
    ctx = runtime.context
    if ctx.services.handoff is None:
        return Refusal(
            "no_staff_channel",
            "No staff channel is configured. Give the customer the salon's phone number instead.",
            business_phone=ctx.services.business.phone,
        ).result()
    reason = reason.strip() or "The customer asked for a person."
    await ctx.services.handoff.hand_off(ctx.turn.wa_id, reason)
    return ok(status="handed_off", note="The assistant is paused for this customer until staff resume it.")
