"""The confirmation gate: a write runs only after the customer's yes to the question they actually received.

`review` validates a write call and renders its question (an invalid call goes straight back to the model, and
no question ever reveals another customer's data); the graph then pauses the thread. `decide` reads the answer:
the question must still be fresh (`TurnPolicy.confirmation_ttl`, never past the slot itself) and the answer a
clear yes to it (see `agent.confirmation`). Writes are refused outright in system turns, where no customer is
there to answer: the model tells the customer with `send_whatsapp`, and the change happens in their next turn.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

from langchain_core.messages import ToolCall, ToolMessage
from pydantic import ValidationError

from agent.confirmation import Reply, answer_confirms
from agent.state import PendingAction
from core.timeutil import localize
from tools.context import ToolContext, ToolServices, TurnContext
from tools.registry import WRITE_TOOLS
from tools.results import Refusal, problem

logger = logging.getLogger(__name__)

Decision = Literal["confirmed", "not_confirmed", "expired"]


def refusal(call: ToolCall, code: str, message: str, **fields: Any) -> ToolMessage:
    """A result that answers `call` without running it."""
    content = problem(code, message, **fields)
    return ToolMessage(content=content, tool_call_id=call["id"], name=call["name"], status="error")


def system_turn_refusal(call: ToolCall) -> ToolMessage:
    """Why a write cannot run during a calendar event or reminder."""
    return refusal(
        call,
        "needs_customer",
        "Nothing can be changed during a system event: the customer is not here to confirm. If they should act, "
        "tell them with send_whatsapp; the change is made when they answer.",
    )


def _invalid_arguments(call: ToolCall, exc: ValidationError) -> ToolMessage:
    details = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
    return refusal(call, "invalid_arguments", f"Fix the arguments and call {call['name']} again. {details}")


async def _slot_start(services: ToolServices, args: dict[str, Any]) -> datetime | None:
    # The question can never outlive the appointment it is about (the earliest slot involved).
    tz = services.business.tz
    starts: list[datetime] = []
    for key in ("start_time", "new_start_time"):
        if isinstance(args.get(key), datetime):
            starts.append(localize(args[key], tz))
    if args.get("appointment_id"):
        appointment = await services.appointments.get(str(args["appointment_id"]).strip())
        if appointment is not None:
            starts.append(appointment.start_at)
    return min(starts) if starts else None


async def review(
    call: ToolCall, turn: TurnContext, services: ToolServices, ttl: timedelta
) -> PendingAction | ToolMessage:
    """The pending action to ask the customer about, or the result that sends the call back to the model."""
    write = WRITE_TOOLS[call["name"]]
    try:
        args = write.tool.tool_call_schema.model_validate(call["args"]).model_dump()  # type: ignore[union-attr]
        question = await write.confirm(ToolContext(turn, services), args)
        slot = await _slot_start(services, args)
    except ValidationError as exc:
        return _invalid_arguments(call, exc)
    except Refusal as refused:
        return ToolMessage(content=refused.result(), tool_call_id=call["id"], name=call["name"])
    except Exception:
        logger.exception("confirmation check failed", extra={"tool": call["name"]})
        return refusal(call, "tool_failed", "The check failed unexpectedly; nothing was changed. Offer to try later.")
    now = services.clock.now()
    expires = now + ttl if slot is None else min(now + ttl, slot)
    return PendingAction(
        id=uuid.uuid4().hex[:12],
        tool_call=dict(call),
        question=question,
        asked_at=now.isoformat(),
        expires_at=expires.isoformat(),
    )


def decide(pending: PendingAction, replies: Sequence[Reply], now: datetime, names: Sequence[str]) -> Decision:
    """Whether the answer executes the pending write."""
    if not answer_confirms(replies, pending["id"], names=names):
        return "not_confirmed"
    if now >= datetime.fromisoformat(pending["expires_at"]):
        return "expired"
    return "confirmed"


def unconfirmed_result(call: ToolCall, decision: Decision, text: str) -> ToolMessage:
    """What the model reads when the write did not run, with the customer's words."""
    if decision == "expired":
        message = "The question expired before the customer answered, so nothing was changed. Ask again if needed."
    else:
        message = "The customer did not confirm, so nothing was changed. Their reply follows; act on what they said."
    content = problem("not_confirmed", message, reason=decision, customer_reply=text)
    return ToolMessage(content=content, tool_call_id=call["id"], name=call["name"])
