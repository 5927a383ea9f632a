"""Pure pieces: signatures (known-answer vectors), splitting, Twilio form parsing, admin tokens, wording."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl

import pytest

from agent.event_texts import local_when
from core.business import Business
from core.urls import public_url
from integrations.calendly.signature import CalendlySignatureError, calendly_signature, verify_calendly_signature
from integrations.calendly.webhook_models import CalendlyWebhook, QuestionAnswer, event_uri_of_invitee
from integrations.twilio.models import TwilioInbound, TwilioStatusCallback, without_nul
from integrations.twilio.signature import twilio_signature_valid
from integrations.twilio.splitting import split_message
from server.http.auth import InvalidToken, mint_admin_token, verify_admin_token
from server.wording import template_variables
from tests.server.helpers import fixture_json, fixture_text

VECTOR_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
VECTOR_PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
    "Caller": "+14158675309",
}


def test_twilio_known_answer_vector() -> None:
    assert twilio_signature_valid("12345", VECTOR_URL, VECTOR_PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
    # The validator accepts the URL with the explicit default port too.
    with_port = VECTOR_URL.replace("mycompany.com", "mycompany.com:443")
    assert twilio_signature_valid("12345", with_port, VECTOR_PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
    expected = "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    assert not twilio_signature_valid("12345", VECTOR_URL, VECTOR_PARAMS | {"Digits": "9"}, expected)
    assert not twilio_signature_valid("54321", VECTOR_URL, VECTOR_PARAMS, expected)
    assert not twilio_signature_valid("12345", VECTOR_URL, VECTOR_PARAMS, None)


def test_public_url_is_built_from_the_configured_base() -> None:
    assert public_url("https://x.example/", "/webhook/whatsapp") == "https://x.example/webhook/whatsapp"
    assert (
        public_url("https://x.example/base", "/webhook/whatsapp", "a=1")
        == "https://x.example/base/webhook/whatsapp?a=1"
    )


NOW = datetime(2026, 11, 24, 21, 0, tzinfo=UTC)


def signed(body: bytes, *, at: datetime = NOW, key: str = "signing-key") -> str:
    t = int(at.timestamp())
    return f"t={t},v1={calendly_signature(key, t, body)}"


def test_calendly_signature_accepts_a_fresh_valid_header() -> None:
    body = b'{"event":"invitee.created"}'
    verify_calendly_signature("signing-key", signed(body), body, now=NOW, tolerance_seconds=180)
    verify_calendly_signature(
        "signing-key", signed(body, at=NOW - timedelta(seconds=179)), body, now=NOW, tolerance_seconds=180
    )
    t, _, v1 = signed(body).partition(",v1=")
    verify_calendly_signature("signing-key", f"{t}, v1=junk, v1={v1.upper()}", body, now=NOW, tolerance_seconds=180)


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "missing"),
        ("", "missing"),
        ("v1=abc", "malformed"),
        ("t=abc,v1=abc", "malformed"),
        ("t=1700000000", "malformed"),
        ("t=\u00b2,v1=" + "0" * 64, "malformed"),  # "²".isdigit() is True, int("²") raises
        ("t=\u0661\u0667,v1=" + "0" * 64, "malformed"),  # Arabic-Indic digits: only ASCII timestamps
        ("t=1700000000,v1=\u00e9" + "0" * 63, "malformed"),  # compare_digest(str, str) raises on non-ASCII
        ("t=1700000000,v1=not-hex", "malformed"),
        ("STALE", "stale"),
        ("FUTURE", "stale"),
        ("WRONGKEY", "does not match"),
    ],
)
def test_calendly_signature_refusals(header: str | None, reason: str) -> None:
    body = b'{"event":"invitee.created"}'
    header = {
        "STALE": signed(body, at=NOW - timedelta(seconds=181)),
        "FUTURE": signed(body, at=NOW + timedelta(seconds=181)),
        "WRONGKEY": signed(body, key="other"),
    }.get(header or "", header)
    with pytest.raises(CalendlySignatureError, match=reason):
        verify_calendly_signature("signing-key", header, body, now=NOW, tolerance_seconds=180)


def test_calendly_signature_is_over_the_raw_bytes() -> None:
    body = b'{"event": "invitee.created"}'
    reserialised = b'{"event":"invitee.created"}'
    with pytest.raises(CalendlySignatureError):
        verify_calendly_signature("signing-key", signed(body), reserialised, now=NOW, tolerance_seconds=180)


def test_split_keeps_short_texts_whole_and_cuts_long_ones_at_sentences() -> None:
    assert split_message("  hola  ") == ["hola"]
    assert split_message("") == []
    sentences = " ".join(f"Frase número {n} con algo de texto." for n in range(200))
    parts = split_message(sentences)
    assert all(len(p) <= 1600 for p in parts) and len(parts) > 1
    assert all(p.endswith(".") for p in parts)  # never in the middle of a sentence
    assert " ".join(parts) == sentences
    unbroken = "x" * 3500
    assert [len(p) for p in split_message(unbroken)] == [1600, 1600, 300]


def test_inbound_fixture_parses_with_unknown_fields_kept() -> None:
    form = dict(parse_qsl(fixture_text("twilio-inbound-whatsapp.form")))
    message = TwilioInbound.model_validate(form)
    assert message.address_of_sender == "whatsapp:+34600123456"
    assert (message.profile_name, message.wa_id, message.num_media) == ("Ghanshyam Agrawal", "34600123456", 0)
    assert message.text_for_agent() == "Hola, quiero una cita"
    assert message.model_extra is not None and message.model_extra["ChannelMetadata"].startswith("{")


def test_inbound_media_buttons_and_locations_become_text() -> None:
    base = {"MessageSid": "SM1", "From": "whatsapp:+34600123456"}
    media = TwilioInbound.model_validate(
        base
        | {"NumMedia": "2", "MediaUrl0": "https://m/0", "MediaContentType0": "image/jpeg", "MediaUrl1": "https://m/1"}
    )
    assert [m.url for m in media.media] == ["https://m/0", "https://m/1"]
    assert media.text_for_agent() == "[attachment: image/jpeg]\n[attachment: file]"
    button = TwilioInbound.model_validate(base | {"ButtonPayload": "confirm_yes", "ButtonText": "Sí", "Body": ""})
    assert (button.button_payload, button.text_for_agent()) == ("confirm_yes", "Sí")
    place = TwilioInbound.model_validate(base | {"Latitude": "40.4", "Longitude": "-3.7", "Label": "Casa"})
    assert place.text_for_agent() == "[location 40.4,-3.7: Casa]"


def test_status_callback_fixture() -> None:
    callback = TwilioStatusCallback.model_validate(dict(parse_qsl(fixture_text("twilio-status-callback-failed.form"))))
    assert (callback.outbox_status, callback.error_code) == ("failed", "63016")
    legacy = TwilioStatusCallback.model_validate({"MessageSid": "SM1", "SmsStatus": "delivered"})
    assert legacy.outbox_status == "delivered"
    # NUL cannot be stored in PostgreSQL text; Twilio relays whatever it was given.
    nul = TwilioStatusCallback.model_validate({"MessageSid": "SM\x001", "SmsStatus": "failed", "ErrorMessage": "x\x00"})
    assert (nul.message_sid, nul.outbox_status, nul.error_message) == ("SM1", "failed", "x")


def test_inbound_text_fields_lose_their_nul_characters() -> None:
    form = {"MessageSid": "SM1", "From": "whatsapp:+34\x00600123456", "Body": "\x00ho\x00la", "Extra\x00": "\x00"}
    message = TwilioInbound.model_validate(
        form | {"MediaUrl0": "https://m/\x001", "MediaContentType0": "image/\x00png"}
    )
    assert (message.from_, message.body, message.model_extra) == (
        "whatsapp:+34600123456",
        "hola",
        {"Extra": "", "MediaUrl0": "https://m/1", "MediaContentType0": "image/png"},
    )
    assert message.media[0].model_dump() == {"url": "https://m/1", "content_type": "image/png"}
    assert without_nul(form) == {"MessageSid": "SM1", "From": "whatsapp:+34600123456", "Body": "hola", "Extra": ""}


def test_calendly_fixtures_parse_and_identify_their_delivery() -> None:
    created = CalendlyWebhook.model_validate(fixture_json("calendly-invitee-created.json"))
    canceled = CalendlyWebhook.model_validate(fixture_json("calendly-invitee-canceled.json"))
    assert created.invitee().scheduled_event.uri.endswith("000000000002")
    assert canceled.invitee().cancellation is not None
    assert canceled.invitee().cancellation.reason == "No puedo ir"  # type: ignore[union-attr]
    assert created.delivery_key() != canceled.delivery_key()
    retried = CalendlyWebhook.model_validate(fixture_json("calendly-invitee-created.json"))
    assert created.delivery_key() == retried.delivery_key()
    invitee = created.invitee().model_copy(
        update={"text_reminder_number": "+34 600-123-456", "questions_and_answers": ()}
    )
    assert invitee.phone_candidates() == ["+34600123456"]
    assert invitee.phone_candidates("34") == ["+34600123456"]
    assert event_uri_of_invitee("https://a/scheduled_events/E/invitees/I") == "https://a/scheduled_events/E"


@pytest.mark.parametrize(
    ("answer", "without_code", "with_34"),
    [
        ("+34 600-123-456", ["+34600123456"], ["+34600123456"]),
        ("0034 600 12 34 56", ["+34600123456"], ["+34600123456"]),
        ("+1 (415) 523-8886", ["+14155238886"], ["+14155238886"]),
        # National numbers: read with the business's country code, never as "+600123456".
        ("600 123 456", [], ["+34600123456"]),
        ("(600) 12-34-56", [], ["+34600123456"]),
        ("34600123456", [], ["+34600123456", "+3434600123456"]),  # "+" forgotten: read both ways, international first
        # Not phone numbers at all.
        ("2026-11-30", [], []),
        ("30.11.2026", [], []),
        ("30-11-26", [], []),
        ("12345", [], []),
        ("1234 5678 9012 3456", [], []),  # 16 digits: longer than E.164 allows
        ("+34 60", [], []),
        ("600123456 o 611000111", [], []),
        ("", [], []),
    ],
)
def test_calendly_phone_answers_become_e164_only_when_they_are_phone_numbers(
    answer: str, without_code: list[str], with_34: list[str]
) -> None:
    invitee = CalendlyWebhook.model_validate(fixture_json("calendly-invitee-created.json")).invitee()
    invitee = invitee.model_copy(
        update={
            "text_reminder_number": None,
            "questions_and_answers": (QuestionAnswer(question="Teléfono", answer=answer),),
        }
    )
    assert invitee.phone_candidates() == without_code
    assert invitee.phone_candidates("34") == with_34


def test_admin_tokens_expire_and_are_bound_to_the_secret() -> None:
    week = timedelta(days=7)
    token = mint_admin_token("s" * 32, subject="ana", now=NOW, ttl=timedelta(minutes=5))
    assert verify_admin_token("s" * 32, token, now=NOW + timedelta(minutes=4), max_lifetime=week).subject == "ana"
    with pytest.raises(InvalidToken, match="expired"):
        verify_admin_token("s" * 32, token, now=NOW + timedelta(minutes=5), max_lifetime=week)
    with pytest.raises(InvalidToken):
        verify_admin_token("t" * 32, token, now=NOW, max_lifetime=week)


def test_times_are_worded_in_the_business_timezone(business: Business) -> None:
    start = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    assert local_when(start, business) == "martes 1 de diciembre, 10:30"
    # Twilio refuses empty template variables: an unknown name is "-"; a name on several lines becomes one line.
    assert template_variables(customer_name="Ana\nMaría", service="Tinte", start=start, business=business)["1"] == (
        "Ana María"
    )
    assert template_variables(customer_name=None, service="Tinte", start=start, business=business) == {
        "1": "-",
        "2": "Tinte",
        "3": "01/12/2026",
        "4": "10:30",
    }
