"""Test doubles for the server: a fake agent, the local Twilio double (twilio_double), signing helpers and a polling
wait."""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
from twilio.request_validator import RequestValidator

from agent.api import IncomingText, TurnResult
from integrations.calendly.signature import calendly_signature
from store import Database
from tests.conftest import FIXTURES
from tests.server.twilio_double import TwilioDouble as TwilioDouble  # its home; long imported from here
from tools.whatsapp import MessageSender

PUBLIC_BASE = "https://asistente.example.com"
CUSTOMER = "whatsapp:+34600123456"


def fixture_text(name: str) -> str:
    """A shared wire-format fixture, as text."""
    return (FIXTURES / name).read_text(encoding="utf-8").strip()


def fixture_json(name: str) -> Any:
    """A shared wire-format fixture, parsed."""
    return json.loads(fixture_text(name))


def inbound_form(sid: str, body: str, *, wa_id: str = CUSTOMER, **extra: str) -> dict[str, str]:
    """The fixture's inbound WhatsApp form with a new MessageSid, sender and body (every other field kept)."""
    form = dict(parse_qsl(fixture_text("twilio-inbound-whatsapp.form"), keep_blank_values=True))
    digits = wa_id.removeprefix("whatsapp:+")
    form.update({"MessageSid": sid, "SmsMessageSid": sid, "SmsSid": sid, "Body": body, "From": wa_id, "WaId": digits})
    form.update(extra)
    return form


@dataclass
class TurnCall:
    """One call the fake agent received."""

    kind: str
    wa_id: str
    texts: list[str]


@dataclass
class FakeAgent:
    """A `ConversationAgent` that echoes, records every call and tracks concurrent turns per customer.

    `gate`, when set, makes the first customer turn wait on it (to kill a worker mid-turn). In a system turn it
    sends `system_reply` through `sender`, as the real agent does with `send_whatsapp`.
    """

    delay: float = 0.0
    sender: MessageSender | None = None
    system_reply: str | None = None
    reply_text: Callable[[list[str]], str] | None = None
    gate: asyncio.Event | None = None
    calls: list[TurnCall] = field(default_factory=list)
    completed: list[TurnCall] = field(default_factory=list)
    entered: asyncio.Event = field(default_factory=asyncio.Event)
    _running: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    max_concurrent: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    async def _track(self, call: TurnCall, work: Callable[[], Awaitable[None]]) -> None:
        self.calls.append(call)
        self._running[call.wa_id] += 1
        self.max_concurrent[call.wa_id] = max(self.max_concurrent[call.wa_id], self._running[call.wa_id])
        try:
            await work()
            self.completed.append(call)
        finally:
            self._running[call.wa_id] -= 1

    async def customer_turn(
        self,
        wa_id: str,
        messages: Sequence[IncomingText],
        *,
        profile_name: str | None = None,
        run_id: str | None = None,
    ) -> TurnResult:
        """Echo the folded messages."""
        texts = [m.body for m in messages]
        call = TurnCall("customer", wa_id, texts)

        async def work() -> None:
            self.entered.set()
            if self.gate is not None and not self.gate.is_set():
                await self.gate.wait()
            await asyncio.sleep(self.delay)

        await self._track(call, work)
        text = self.reply_text(texts) if self.reply_text else "echo: " + " | ".join(texts)
        return TurnResult(replies=(text,))

    async def system_turn(
        self, wa_id: str, event: str, *, event_id: str | None = None, run_id: str | None = None
    ) -> TurnResult:
        """Record the event and, if configured, tell the customer through the sender."""
        call = TurnCall("system", wa_id, [event])

        async def work() -> None:
            if self.sender is not None and self.system_reply is not None:
                await self.sender.send(wa_id, self.system_reply, kind="system")

        await self._track(call, work)
        return TurnResult()

    def twin(self) -> FakeAgent:
        """A second agent (for another worker) sharing the concurrency tracking with this one."""
        other = FakeAgent(delay=self.delay)
        other._running = self._running
        other.max_concurrent = self.max_concurrent
        return other

    def customer_texts(self) -> list[str]:
        """Every customer message the agent completed a turn on, in call order."""
        return [text for call in self.completed if call.kind == "customer" for text in call.texts]


def twilio_signature(token: str, path: str, form: dict[str, str]) -> str:
    """The signature Twilio would send, computed with the official validator."""
    return str(RequestValidator(token).compute_signature(PUBLIC_BASE + path, form))


async def post_signed(
    client: httpx.AsyncClient, token: str, path: str, form: dict[str, str], *, signature: str | None = "auto"
) -> httpx.Response:
    """POST a form as Twilio does: form-encoded and signed (or with the given / no signature)."""
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if signature == "auto":
        headers["X-Twilio-Signature"] = twilio_signature(token, path, form)
    elif signature is not None:
        headers["X-Twilio-Signature"] = signature
    return await client.post(path, content=urlencode(form), headers=headers)


def calendly_headers(key: str, body: bytes, timestamp: int) -> dict[str, str]:
    """Headers of a signed Calendly delivery."""
    return {
        "Content-Type": "application/json",
        "Calendly-Webhook-Signature": f"t={timestamp},v1={calendly_signature(key, timestamp, body)}",
    }


async def wait_until(predicate: Callable[[], Awaitable[bool]], *, within: float = 5.0) -> None:
    """Poll `predicate` until true; fail the test after `within` seconds."""
    deadline = time.monotonic() + within
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


async def outbox_settled(db: Database, count: int = 1, *, within: float = 5.0) -> list[dict[str, Any]]:
    """Wait until the outbox holds at least `count` rows, none of them still pending or sending; return them."""

    async def done() -> bool:
        rows = await db.fetch_all("SELECT status FROM outbox")
        return len(rows) >= count and all(r["status"] not in ("pending", "sending") for r in rows)

    await wait_until(done, within=within)
    return await db.fetch_all("SELECT * FROM outbox ORDER BY id")
