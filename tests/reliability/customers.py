"""Customers writing on WhatsApp, as Twilio delivers them: signed form posts to the webhook, one attempt each
(Twilio does not resend by default), and the ledger of what was sent, when, and how the webhook answered.

Each message carries a marker: the text an answer to it must contain (the model double echoes `ref-xxxxxx`; a
booking request is answered by the confirmation question, a "sí" by the booking's outcome).
"""

from __future__ import annotations

import json
import secrets
import string
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl

import httpx
from twilio.request_validator import RequestValidator

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
WEBHOOK = "/webhook/whatsapp"
# Twilio gives up on a webhook after 15 s.
TWILIO_TIMEOUT = 15.0
QUESTION_MARKER = "✂️ Corte y Peinado"  # in the confirmation question, whatever its language


def new_ref() -> str:
    """A reference the model double echoes: `ref-` and six lowercase letters or digits."""
    return "ref-" + "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(6))


def wa_id(number: int) -> str:
    """Customer `number`'s WhatsApp address."""
    return f"whatsapp:+3461{number:07d}"


@dataclass
class Sent:
    """One customer message and the webhook's answer (status None: no answer within Twilio's 15 s)."""

    wa_id: str
    sid: str
    body: str
    marker: str
    sent_at: float  # monotonic
    status: int | None = None
    seconds: float = 0.0

    @property
    def acknowledged(self) -> bool:
        """Twilio got a 2xx: the message is ours now, and Twilio will not send it again."""
        return self.status is not None and 200 <= self.status < 300


class Customers:
    """Sends customer messages to the server and remembers them (thread-safe: customers write concurrently)."""

    def __init__(self, base_url: str, auth_token: str, account_sid: str, business_number: str) -> None:
        self._base_url = base_url
        self._validator = RequestValidator(auth_token)
        self._account_sid = account_sid
        self._to = business_number
        self._template = dict(parse_qsl((FIXTURES / "twilio-inbound-whatsapp.form").read_text().strip()))
        self._lock = threading.Lock()
        self.sent: list[Sent] = []

    def say(self, number: int, text: str, *, marker: str | None = None, tagged: bool = True) -> Sent:
        """Customer `number` writes `text`, with a fresh reference appended unless `tagged` is off (a bare "sí");
        an answer must contain `marker`, by default that reference."""
        ref = new_ref() if tagged else ""
        text = f"{text} ({ref})" if ref else text
        marker = marker or ref
        if not marker:
            raise ValueError("an untagged message needs a marker")
        sid = "SM" + secrets.token_hex(16)
        form = dict(self._template)
        address = wa_id(number)
        form.update(
            {
                "MessageSid": sid,
                "SmsMessageSid": sid,
                "SmsSid": sid,
                "AccountSid": self._account_sid,
                "Body": text,
                "From": address,
                "WaId": address.removeprefix("whatsapp:+"),
                "To": f"whatsapp:{self._to}",
                "ProfileName": f"Cliente {number}",
                "ChannelMetadata": json.dumps(
                    {"type": "whatsapp", "data": {"context": {"ProfileName": f"Cliente {number}"}}}
                ),
            }
        )
        url = self._base_url + WEBHOOK
        headers = {"X-Twilio-Signature": self._validator.compute_signature(url, form)}
        sent = Sent(address, sid, text, marker, time.monotonic())
        try:
            response = httpx.post(url, data=form, headers=headers, timeout=TWILIO_TIMEOUT)
            sent.status = response.status_code
        except httpx.HTTPError:
            sent.status = None
        sent.seconds = time.monotonic() - sent.sent_at
        with self._lock:
            self.sent.append(sent)
        return sent

    def acknowledged(self) -> list[Sent]:
        """Messages the webhook answered with 2xx."""
        with self._lock:
            return [s for s in self.sent if s.acknowledged]
