"""Twilio's webhook signature (`X-Twilio-Signature`), checked with the official validator."""

from __future__ import annotations

from collections.abc import Mapping

from twilio.request_validator import RequestValidator, get_signature_algorithm


def twilio_signature_valid(
    auth_token: str,
    url: str,
    params: Mapping[str, str],
    signature: str | None,
    *,
    signature_settings: str | None = None,
) -> bool:
    """Check a Twilio webhook with the official validator (HMAC-SHA1 by default; HMAC-SHA256 when the request's
    `X-Twilio-Webhooks-Signature-Settings` header says so)."""
    if not signature:
        return False
    algorithm = get_signature_algorithm(signature_settings)
    return bool(RequestValidator(auth_token).validate(url, dict(params), signature, algorithm=algorithm))
