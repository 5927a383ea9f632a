"""`send_whatsapp`: the only way a message reaches the customer in a system turn."""

from __future__ import annotations

from typing import Annotated

from langchain_core.tools import tool
from langgraph.prebuilt import ToolRuntime
from pydantic import Field

from tools.context import Context
from tools.results import ToolRefusal, ok

MAX_MESSAGE_CHARS = 4000


@tool
async def send_whatsapp(
    message: Annotated[str, Field(description="The text to send, in the customer's language.")],
    runtime: ToolRuntime[Context],
) -> str:
    """Send a WhatsApp message to the customer in this chat, right now.

    Use it to tell the customer about a calendar change or a reminder (system events). In a normal reply to the
    customer just answer with text instead; that answer is sent automatically.
    """
    ctx = runtime.context
    text = message.strip()
    if not text:
        return ToolRefusal("empty_message", "The message is empty; write the text to send.").result()
    if len(text) > MAX_MESSAGE_CHARS:
        return ToolRefusal("too_long", f"Keep it under {MAX_MESSAGE_CHARS} characters.").result()
    await ctx.sender.send(ctx.wa_id, text, kind="system" if ctx.turn == "system" else "reply")
    return ok(status="queued")
