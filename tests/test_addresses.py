"""WhatsApp addresses: one parser for every place a person types a number."""

from __future__ import annotations

import pytest

from core.addresses import as_whatsapp_address, parse_whatsapp_address, phone_of


def test_phone_and_address_round_trip() -> None:
    assert phone_of("whatsapp:+34600123456") == "+34600123456"
    assert as_whatsapp_address(" +34600123456 ") == "whatsapp:+34600123456"
    assert as_whatsapp_address("whatsapp:+14155238886") == "whatsapp:+14155238886"


def test_parse_requires_e164() -> None:
    assert parse_whatsapp_address("whatsapp:+34600123456") == "whatsapp:+34600123456"
    assert parse_whatsapp_address("34600123456", require_plus=False) == "whatsapp:+34600123456"
    for bad in ("34600123456", "+0600123456", "+34 600", "hola", ""):
        with pytest.raises(ValueError, match="E.164"):
            parse_whatsapp_address(bad)
