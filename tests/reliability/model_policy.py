"""How the model double plays the assistant: deterministically, from the conversation it is sent.

- A customer asking for a "cita": `check_availability` for the next days, then `book_appointment` for the time they
  named ("a las 10:15") or the first free one, with an e-mail made from their reference.
- After `book_appointment`'s result: "RESERVA HECHA" or "RESERVA FALLIDA (<error code>)".
- After `check_availability` failed: "SIN HORAS (<error code>)".
- Anything else: "RECIBIDO".
Every text ends with the references (`ref-xxxxxx`) of the customer messages it answers (those since the model's
last plain answer), so the suite can tell which message each reply belongs to.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

REF = re.compile(r"\bref-[a-z0-9]{6}\b")
_AT_TIME = re.compile(r"a las (\d{1,2}:\d{2})")
SERVICE = "Corte y Peinado"
BOOKED, NOT_BOOKED, NO_TIMES, RECEIVED = "RESERVA HECHA", "RESERVA FALLIDA", "SIN HORAS", "RECIBIDO"


def email_for(ref: str) -> str:
    """The e-mail the double books a customer under."""
    return f"{ref}@clientes.test"


def text_of(message: dict[str, Any]) -> str:
    """A chat message's text, whether its content is a string or a list of parts."""
    content = message.get("content")
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content or "")


def _unanswered_customer_texts(messages: list[dict[str, Any]]) -> list[str]:
    texts: list[str] = []
    for message in reversed(messages):
        if message.get("role") == "assistant" and not message.get("tool_calls"):
            break
        if message.get("role") == "user":
            texts.insert(0, text_of(message))
    return texts


def _results_this_step(messages: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Tool name -> parsed result, for the calls of the model's last message (results may precede a "sí")."""
    last = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=-1)
    if last < 0:
        return {}
    names = {c["id"]: c["function"]["name"] for c in messages[last].get("tool_calls") or []}
    found: dict[str, dict[str, Any]] = {}
    for message in messages[last + 1 :]:
        if message.get("role") == "tool" and message.get("tool_call_id") in names:
            try:
                found[names[message["tool_call_id"]]] = json.loads(text_of(message))
            except ValueError:
                found[names[message["tool_call_id"]]] = {"ok": False, "error": "unreadable"}
    return found


def _call(name: str, args: dict[str, Any]) -> dict[str, Any]:
    function = {"name": name, "arguments": json.dumps(args, ensure_ascii=False)}
    call = {"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function", "function": function}
    return {"role": "assistant", "content": None, "tool_calls": [call]}


def _say(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": text}


def _times(days: list[dict[str, Any]], step: int) -> list[tuple[str, str]]:
    """(date, HH:MM) for every start time of check_availability's days, ranges ("10:00-13:00") expanded."""
    found: list[tuple[str, str]] = []
    for day in days:
        for item in day.get("start_times", []):
            first, _, last = str(item).partition("-")
            moment = datetime.strptime(first, "%H:%M")
            end = datetime.strptime(last or first, "%H:%M")
            while moment <= end:
                found.append((str(day["date"]), f"{moment:%H:%M}"))
                moment += timedelta(minutes=step)
    return found


def _booking_request(messages: list[dict[str, Any]]) -> str | None:
    return next((text_of(m) for m in reversed(messages) if m.get("role") == "user" and "cita" in text_of(m)), None)


def answer(messages: list[dict[str, Any]], tools: set[str], timezone: str = "Europe/Madrid") -> dict[str, Any]:
    """The assistant message the double returns for this conversation."""
    refs = [ref for text in _unanswered_customer_texts(messages) for ref in REF.findall(text)]
    tail = " ".join(dict.fromkeys(refs))
    results = _results_this_step(messages)
    if "book_appointment" in results:
        result = results["book_appointment"]
        if result.get("ok") and result.get("status") == "booked":
            return _say(f"{BOOKED} {result.get('appointment_id', '')} {tail}".strip())
        return _say(f"{NOT_BOOKED} ({result.get('error', 'unknown')}) {tail}".strip())
    if "check_availability" in results:
        result = results["check_availability"]
        request = _booking_request(messages) or ""
        times = _times(result.get("days") or [], int(result.get("step_minutes") or 15)) if result.get("ok") else []
        if not times:
            return _say(f"{NO_TIMES} ({result.get('error', 'none_free')}) {tail}".strip())
        wanted = _AT_TIME.search(request)
        day, at = next((t for t in times if wanted and t[1] == wanted.group(1).zfill(5)), times[0])
        ref = next(iter(REF.findall(request)), "ref-000000")
        args = {"service": SERVICE, "start_time": f"{day}T{at}:00", "customer_email": email_for(ref)}
        return _call("book_appointment", {**args, "customer_name": f"Cliente {ref}"})
    texts = _unanswered_customer_texts(messages)
    if texts and any("cita" in t for t in texts) and "check_availability" in tools:
        first = datetime.now(ZoneInfo(timezone)).date() + timedelta(days=1)
        return _call(
            "check_availability",
            {"service": "corte", "date_from": _iso(first), "date_to": _iso(first + timedelta(days=7))},
        )
    return _say(f"{RECEIVED} {tail}".strip())


def _iso(day: date) -> str:
    return day.isoformat()
