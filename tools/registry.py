"""Which tools the model gets, and which of them change the calendar (and so need the customer's yes)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from langchain_core.tools import BaseTool

from tools.availability import check_availability
from tools.booking import book_appointment, confirm_booking
from tools.changes import cancel_appointment, confirm_cancellation, confirm_reschedule, reschedule_appointment
from tools.context import ToolContext
from tools.messaging import handoff_to_staff, send_whatsapp
from tools.profile import lookup_client, remember_client_details

# Validates a write call and renders the confirmation question; raises ToolRefusal when the call is invalid.
Confirmer = Callable[[ToolContext, dict[str, object]], Awaitable[str]]


@dataclass(frozen=True)
class WriteTool:
    """A tool that changes something, with the check that runs before the customer is asked."""

    tool: BaseTool
    confirm: Confirmer


# Tools that change no appointment run at once (the profile is the customer's own, told by them).
READ_TOOLS: tuple[BaseTool, ...] = (
    check_availability,
    lookup_client,
    remember_client_details,
    send_whatsapp,
    handoff_to_staff,
)
WRITE_TOOLS: dict[str, WriteTool] = {
    w.tool.name: w
    for w in (
        WriteTool(book_appointment, confirm_booking),
        WriteTool(cancel_appointment, confirm_cancellation),
        WriteTool(reschedule_appointment, confirm_reschedule),
    )
}
ALL_TOOLS: tuple[BaseTool, ...] = (*READ_TOOLS, *(w.tool for w in WRITE_TOOLS.values()))
TOOLS_BY_NAME: dict[str, BaseTool] = {t.name: t for t in ALL_TOOLS}
