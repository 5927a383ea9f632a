"""Calendly's webhook signature (`Calendly-Webhook-Signature: t=...,v1=...`): HMAC-SHA256 of "{t}.{raw body}"."""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import datetime

# ASCII only: `str.isdigit()` also accepts characters such as "²" that `int()` then refuses, and a non-hex `v1`
# can never match a hex digest (compared as bytes, so non-ASCII text cannot make `compare_digest` raise).
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_HEX = re.compile(r"[0-9a-fA-F]{1,128}")


class CalendlySignatureError(ValueError):
    """Why a Calendly signature was refused (missing, malformed, stale or wrong)."""


def calendly_signature(signing_key: str, timestamp: int, body: bytes) -> str:
    """The `v1` value Calendly sends: hex HMAC-SHA256 of "{t}.{raw body}" with the webhook signing key."""
    message = str(timestamp).encode() + b"." + body
    return hmac.new(signing_key.encode(), message, hashlib.sha256).hexdigest()


def verify_calendly_signature(
    signing_key: str, header: str | None, body: bytes, *, now: datetime, tolerance_seconds: float
) -> None:
    """Raise `CalendlySignatureError` unless `header` (`t=...,v1=...`) signs `body` within the tolerance."""
    if not header:
        raise CalendlySignatureError("missing Calendly-Webhook-Signature header")
    timestamp: int | None = None
    candidates: list[bytes] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        value = value.strip()
        if name == "t" and _TIMESTAMP.fullmatch(value):
            timestamp = int(value)
        elif name == "v1" and _HEX.fullmatch(value):
            candidates.append(value.lower().encode("ascii"))
    if timestamp is None or not candidates:
        raise CalendlySignatureError("malformed Calendly-Webhook-Signature header")
    # An old (or far-future) timestamp means a replayed delivery, even with a correct HMAC.
    if abs(now.timestamp() - timestamp) > tolerance_seconds:
        raise CalendlySignatureError("stale Calendly-Webhook-Signature timestamp")
    expected = calendly_signature(signing_key, timestamp, body).encode("ascii")
    if not any(hmac.compare_digest(expected, candidate) for candidate in candidates):
        raise CalendlySignatureError("Calendly-Webhook-Signature does not match")
