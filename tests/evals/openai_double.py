"""A local OpenAI-compatible chat-completions server for evaluation tests, playing three roles at once.

Which role a request is for is read from the request itself, as a real server would see it:
- judge: a structured-output request (`response_format` json_schema, what openevals' LLM-as-judge sends through
  `ChatOpenAI.with_structured_output`, or a forced `tool_choice`);
- agent: a request with `tools` (the assistant's graph always binds its tools);
- customer: a request whose system prompt carries the simulated customer's marker (prompts/evals/customer.md).
Anything else is answered 400 and recorded as role "unknown"; like OpenAI, a request with `parallel_tool_calls`
but no `tools` is answered 400 too.

Each role is a policy: a function from the request body to the assistant message to answer. Every request is
recorded (role, body) and every answer carries `usage` (tokens counted as characters / 4, deterministic), so tests
can check what each model was asked and what the report counted.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from evals.simulated_customer import CUSTOMER_MARKER, STOP
from tests.json_server import JsonServer

Json = dict[str, Any]
Role = Literal["agent", "customer", "judge", "unknown"]
Policy = Callable[[Json], Json]
API_KEY = "sk-openai-double"
MODEL = "double-model"


@dataclass(frozen=True)
class Received:
    """One request as it arrived, with the role it was dispatched to and the usage answered."""

    role: Role
    body: Json
    prompt_tokens: int = 0
    completion_tokens: int = 0


def _tokens(value: object) -> int:
    return max(1, len(json.dumps(value, ensure_ascii=False)) // 4)


def role_of(body: Json, marker: str = CUSTOMER_MARKER) -> Role:
    """Which model `body` is a request to (see the module doc)."""
    response_format = body.get("response_format") or {}
    if response_format.get("type") == "json_schema" or body.get("tool_choice") not in (None, "auto", "none"):
        return "judge"
    if body.get("tools"):
        return "agent"
    system = " ".join(
        str(m.get("content")) for m in body.get("messages", []) if m.get("role") in ("system", "developer")
    )
    return "customer" if marker in system else "unknown"


def _refusal(path: str, body: Json, role: Role) -> str | None:
    if role == "unknown":
        return f"double: no role for a request to {path}"
    if "parallel_tool_calls" in body and not body.get("tools"):
        # What OpenAI answers (HTTP 400): a model built for tools must not be reused bare for the customer or judge.
        return (
            "Invalid value for 'parallel_tool_calls': 'parallel_tool_calls' is only allowed when 'tools' are specified."
        )
    return None


@dataclass
class OpenAIDouble:
    """The server: `with OpenAIDouble(agent=..., customer=..., judge=...) as double:` then point clients at `url`."""

    agent: Policy
    customer: Policy
    judge: Policy
    marker: str = CUSTOMER_MARKER
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._server = JsonServer(self.answer)
        self.url = self._server.url

    def answer(self, path: str, body: Json) -> tuple[int, Json]:
        """The HTTP status and JSON answer for one request, recorded with the role it went to."""
        role = role_of(body, self.marker) if path.endswith("/chat/completions") else "unknown"
        refused = _refusal(path, body, role)
        if refused is not None:
            with self._lock:
                self.received.append(Received(role, body))
            return 400, {"error": {"message": refused, "type": "invalid_request_error", "code": None, "param": None}}
        policy = {"agent": self.agent, "customer": self.customer, "judge": self.judge}[role]
        try:
            message = {"role": "assistant", "content": None, **policy(body)}
        except Exception as exc:  # a broken policy is a clear 500 naming it, not a dropped connection
            with self._lock:
                self.received.append(Received(role, body))
            return 500, {"error": {"message": f"double: {role} policy failed: {exc!r}", "type": "server_error"}}
        for call in message.get("tool_calls") or []:
            call.setdefault("id", f"call_{next(self._ids)}")
            call.setdefault("type", "function")
        usage = (_tokens(body.get("messages")), _tokens(message))
        with self._lock:
            self.received.append(Received(role, body, *usage))
        return 200, {
            "id": f"chatcmpl-{next(self._ids)}",
            "object": "chat.completion",
            "created": 1795541402,
            "model": str(body.get("model", MODEL)),
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": "tool_calls" if message.get("tool_calls") else "stop",
                    "logprobs": None,
                }
            ],
            "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)},
        }

    def of(self, role: Role) -> list[Received]:
        """The requests dispatched to `role`, in arrival order."""
        with self._lock:
            return [r for r in self.received if r.role == role]

    def __enter__(self) -> OpenAIDouble:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()


# --- Policies -------------------------------------------------------------------------------------------------------


def text(content: str) -> Json:
    """An assistant message with text only."""
    return {"content": content}


def tool_call(name: str, **arguments: Any) -> Json:
    """An assistant message calling one tool."""
    return {"tool_calls": [{"type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}]}


def scripted_customer(lines: Mapping[str, Sequence[str]]) -> Policy:
    """The customer whose system prompt contains key `k` says `lines[k]` in order, then the stop signal.

    Stateless: the customer's own earlier messages are the `assistant` messages of the request (openevals swaps the
    roles), so every trial of a scenario starts the same script again.
    """

    def policy(body: Json) -> Json:
        messages = body.get("messages", [])
        system = str(messages[0].get("content")) if messages else ""
        said = sum(1 for m in messages if m.get("role") == "assistant")
        for key, script in lines.items():
            if key in system:
                return text(script[said] if said < len(script) else STOP)
        return text(STOP)

    return policy


def judge_scores(score: float = 1.0, reasoning: str = "Friendly, short and clear.") -> Policy:
    """A judge answering `{"reasoning", "score"}` as openevals' schema asks."""
    return lambda body: text(
        json.dumps({"reasoning": f"{reasoning} Thus, the score should be: {score}.", "score": score})
    )


def _history(messages: list[Json]) -> tuple[dict[str, str], str]:
    """(tool name per call id, the customer's last message)."""
    names = {c["id"]: c["function"]["name"] for m in messages for c in m.get("tool_calls") or []}
    users = [str(m.get("content") or "") for m in messages if m.get("role") == "user"]
    return names, users[-1] if users else ""


def _asked_time(said: str) -> str | None:
    # "5pm", "a las 17:00", "17h": the first hour of the day the customer names, as HH:MM.
    for found in re.finditer(r"\b(\d{1,2})(?::(\d{2}))?\s*(pm|h\b)?", said.lower()):
        hour = int(found.group(1)) + (12 if found.group(3) == "pm" and int(found.group(1)) < 12 else 0)
        if 8 <= hour <= 21:
            return f"{hour:02d}:{found.group(2) or '00'}"
    return None


def _availability(messages: list[Json], names: dict[str, str]) -> Json | None:
    results = [
        m for m in messages if m.get("role") == "tool" and names.get(m.get("tool_call_id", "")) == "check_availability"
    ]
    return json.loads(results[-1]["content"]) if results else None


def _unanswered(messages: list[Json]) -> list[Json]:
    """Tool results the assistant has not spoken about yet (a write confirmed by the customer's yes comes before
    that yes in the history)."""
    spoke = max((i for i, m in enumerate(messages) if m.get("role") == "assistant" and m.get("content")), default=-1)
    return [m for m in messages[spoke + 1 :] if m.get("role") == "tool"]


def _about(result: Json, tool: str | None) -> Json:
    if tool == "book_appointment":
        if result.get("ok"):
            return text(f"Booked ✅ {result.get('service')} on {result.get('day')} at {result['start_time'][-5:]}.")
        return text("Sorry, I could not book that time.")
    days = result.get("days") or []
    if not result.get("ok") or not days:
        return text("Sorry, there is nothing free then.")
    return text(f"On {days[0]['day']} I have {', '.join(days[0]['start_times'])}. What time suits you?")


def booking_agent(body: Json) -> Json:
    """A rule-based agent that books: check_availability for tomorrow, a text offering the times, book_appointment
    at the time the customer names (on the day of the availability result), and a text once the booking is done."""
    messages: list[Json] = body.get("messages", [])
    names, said = _history(messages)
    pending = _unanswered(messages)
    if pending:
        last = pending[-1]
        return _about(json.loads(str(last.get("content") or "{}")), names.get(str(last.get("tool_call_id"))))
    available = _availability(messages, names)
    asked = _asked_time(said)
    if available is not None and asked is not None and available.get("days"):
        start = f"{available['days'][0]['date']}T{asked}:00"
        return tool_call("book_appointment", service=available["service"], start_time=start)
    context = " ".join(str(m.get("content")) for m in messages if m.get("role") == "system")
    tomorrow = re.search(r"(?:mañana|tomorrow): [^(\n]*\((\d{4}-\d{2}-\d{2})\)", context)
    if tomorrow is None:
        return text("Hello! How can I help?")
    return tool_call("check_availability", service="Corte y Peinado", date_from=tomorrow.group(1))
