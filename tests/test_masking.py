"""core.masking: one set of rules for personal data in logs and LangSmith traces, table-tested."""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import re
import sys
import threading
from datetime import UTC, datetime
from typing import Any

import pytest
from langsmith.anonymizer import create_anonymizer

from core.logs import JsonFormatter
from core.masking import ANONYMIZER_MAX_DEPTH, Masker, customer_key, masking_replacer

REMEMBERED = ("María López", "María de la O", "Li Na", "Lucía")


@pytest.fixture
def masker() -> Masker:
    masker = Masker()
    masker.remember_names(*REMEMBERED)
    return masker


PHONES = [
    ("+34 600 12 34 56", "+***456"),
    ("+34600123456", "+***456"),
    ("+34 600 123 456", "+***456"),
    ("+34-600-123-456", "+***456"),
    ("+34.600.123.456", "+***456"),
    ("(+34) 600 123 456", "+***456"),
    ("(0034) 600123456", "+***456"),
    ("0034600123456", "+***456"),
    ("0034 600 12 34 56", "+***456"),
    ("600123456", "+***456"),
    ("600 12 34 56", "+***456"),
    ("600 123 456", "+***456"),
    ("600-123-456", "+***456"),
    ("91 123 45 67", "+***567"),
    ("whatsapp:+34600123456", "whatsapp:+***456"),
    ("whatsapp:34600123456", "whatsapp:+***456"),
    ("34600123456", "+***456"),
    ("34 600 123 456", "+***456"),
    ("+44 7700 900123", "+***123"),
    ("447700900123", "+***123"),
    ("+1 (555) 123-4567", "+***567"),
    ("%2B34600123456", "+***456"),
    ("llámame al 600123456.", "llámame al +***456."),
    ("Tel:600123456, gracias", "Tel:+***456, gracias"),
    ("+34 600 123 456 10 veces", "+***456 10 veces"),
    ("+34600123456 25 €", "+***456 25 €"),
    ("+44 7700 900123 600123456", "+***123 +***456"),
    ("600123456 / 700123456", "+***456 / +***456"),
]
EMAILS = [
    ("maria@example.com", "***@***"),
    ("Maria.Lopez+salon@Mail.Example.CO.uk", "***@***"),
    ("escribe a ANA_R-1@sub.dominio.es ya", "escribe a ***@*** ya"),
    ("600123456@s.whatsapp.net", "***@***"),
    ("email=ana%40example.com", "email=***@***"),
]
NAMES = [
    ("María López", "[name]"),
    ("maria lopez vino", "[name] vino"),
    ("MARÍA", "[name]"),
    ("Mari\u0301a", "[name]"),  # decomposed accent
    ("con López", "con [name]"),
    ("María de la O llegó", "[name] llegó"),
    ("hablé con Li Na hoy", "hablé con [name] hoy"),
    ("Lucía's cita", "[name]'s cita"),
    ("las 10:00 del martes", "las 10:00 del martes"),  # "de", "la", "del" are never masked alone
    ("Na", "Na"),  # a part under three letters only as part of the full name
    ("Me llamo Ana García", "Me llamo [name]"),
    ("me llamo Ana García Ruiz y", "me llamo [name] y"),
    ("Mi nombre es Pepe", "Mi nombre es [name]"),
    ("hola, soy Carmen", "hola, soy [name]"),
    ("SOY Íñigo.", "SOY [name]."),
    ("my name is John Smith", "my name is [name]"),
    ("I'm Peter", "I'm [name]"),
    ("I’m Peter", "I’m [name]"),
    ("I am Ann", "I am [name]"),
    ("this is Carla from the salon", "this is [name] from the salon"),
    ("Soy de Madrid", "Soy de Madrid"),
    ("Soy Madrileña", "Soy [name]"),  # over-masked, accepted
    ("soy yo", "soy yo"),
    (
        '{"ok": true, "name": "Ana Ruiz", "email": "a@b.es", "tool": "x"}',
        '{"ok": true, "name": "[name]", "email": "***@***", "tool": "x"}',
    ),  # noqa: E501
    (
        "{'name': 'book_appointment', 'args': {'customer_name': 'Pepe'}}",
        "{'name': 'book_appointment', 'args': {'customer_name': '[name]'}}",
    ),  # noqa: E501
    ("soy María, +34 600 12 34 56, maria@example.com", "soy [name], +***456, ***@***"),
]
LEFT_ALONE = [
    "1795541402",
    "1795541402123",
    "ts=1795541402.123456",
    "took 0.600123456 s",
    "2026-11-26T10:00:00+01:00",
    "2026-11-26T10:00:00-06:00",
    "2026-11-26 10:00",
    "26/11/2026",
    "26.11.2026",
    "10:00",
    "25 €",
    "€25.50",
    "1.234,50 €",
    "45 min",
    "123e4567-e89b-12d3-a456-426614174000",
    "9c5af58dfcd0400aa83a600123456789",
    "SM0123456789abcdef0123456789abcdef",
    "SM600123456abcdef0123456789abcdef",
    "https://api.calendly.com/scheduled_events/ABCD1234",
    "apt_0123456789",
    "apt_600123456",
    "call_9c5af58dfcd0400aa83a",
    "wa:SM0123456789abcdef0123456789abcdef",
    "HTTP 503 Service Unavailable",
    "status=429",
    "localhost:8080",
    "postgresql://postgres@127.0.0.1:5432/asistente_dev",
    "cust_0123456789abcdef",
    "+01:00",
    "1+1=2",
    "v1.2.3",
    "outbox 12345 attempts 3",
]


@pytest.mark.parametrize(("text", "expected"), PHONES + EMAILS + NAMES)
def test_mask_text_rules(masker: Masker, text: str, expected: str) -> None:
    assert masker.mask_text(text) == expected
    assert masker.mask_text(expected) == expected  # masking twice changes nothing more


@pytest.mark.parametrize("text", LEFT_ALONE)
def test_mask_text_leaves_ids_dates_prices_and_timestamps_alone(masker: Masker, text: str) -> None:
    assert masker.mask_text(text) == text


@pytest.mark.parametrize(
    ("value", "path", "expected"),
    [
        ("Ana Ruiz", ["args", "name"], "[name]"),
        ("anything at all", ["ProfileName"], "[name]"),
        ("Pepe", ["invitee", "first_name"], "[name]"),
        ("book_appointment", ["messages", 0, "tool_calls", 0, "name"], "book_appointment"),  # a tool, not a person
        ("x@y.com", ["args", "email"], "***@***"),
        ("not an address", ["invitee_email"], "[redacted]"),
        ("whatsapp:+34600123456", ["wa_id"], "whatsapp:+***456"),
        ("34600123456", ["WaId"], "+***456"),
        ("447700900123", ["form", "WaId"], "+***123"),  # a bare foreign number: caught by its key
        ("+34 600 12 34 56", ["text_reminder_number"], "+***456"),
        ("whatsapp:+34600123456", ["From"], "whatsapp:+***456"),
        ("+34600123456", ["phones", 1], "+***456"),  # list index skipped: free text rules still apply
        ("pending", ["from"], "pending"),  # a status transition, not an address
        ("sent", ["to"], "sent"),
        ("", ["email"], ""),
        ("llamar al 600123456", ["notes", 0], "llamar al +***456"),
        ("1795541402", ["ts"], "1795541402"),
        ("soy Carmen", [], "soy [name]"),
    ],
)
def test_mask_value_by_key_and_path(masker: Masker, value: str, path: list[str | int], expected: str) -> None:
    assert masker.mask_value(value, path) == expected


class Shown:
    def __str__(self) -> str:
        return "customer +34600123456"


def test_mask_data_walks_dicts_lists_and_stringifies_objects(masker: Masker) -> None:
    data = {
        "wa_id": "whatsapp:+34600123456",
        "detail": {"email": "ana@example.com", "notes": ("llamar al 600 123 456", "ok"), "count": 3},
        "number": 600123456,
        "ts": 1795541402,
        "flag": True,
        "missing": None,
        "object": Shown(),
        "+34600123456": "a phone as a key",
    }
    assert masker.mask_data(data) == {
        "wa_id": "whatsapp:+***456",
        "detail": {"email": "***@***", "notes": ["llamar al +***456", "ok"], "count": 3},
        "number": "+***456",
        "ts": 1795541402,
        "flag": True,
        "missing": None,
        "object": "customer +***456",
        "+***456": "a phone as a key",
    }


def test_a_name_nobody_remembered_is_not_masked_until_it_is() -> None:
    masker = Masker()
    text = "cita de Rocío Fernández a las 10:00"
    assert masker.mask_text(text) == text  # the registry is what knows names: without it they pass
    masker.remember_names("Rocío Fernández", None, "", "🌸")
    assert masker.mask_text(text) == "cita de [name] a las 10:00"
    assert masker.mask_text("ROCIO vino") == "[name] vino"


def test_the_registry_is_bounded_least_recently_remembered_first() -> None:
    masker = Masker(capacity=2)
    masker.remember_names("Alberto", "Beatriz")
    masker.remember_names("Alberto")  # refreshed: Beatriz is now the oldest
    masker.remember_names("Carmen")
    assert masker.mask_text("Alberto Beatriz Carmen") == "[name] Beatriz [name]"


def test_remembering_while_masking_from_other_threads() -> None:
    masker = Masker()
    names = [f"Cliente{chr(65 + i % 26)}{chr(65 + i // 26)}" for i in range(400)]
    errors: list[BaseException] = []

    def remember() -> None:
        for name in names:
            masker.remember_names(name)

    def mask() -> None:
        try:
            for name in names:
                masker.mask_text(f"{name} y +34600123456")
        except BaseException as exc:  # pragma: no cover - the failure being tested for
            errors.append(exc)

    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        threads = [threading.Thread(target=remember), *(threading.Thread(target=mask) for _ in range(3))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(previous)
    assert errors == []
    assert all(masker.mask_text(f"{name} y +34600123456") == "[name] y +***456" for name in names)


def test_json_logs_mask_message_extras_and_exceptions(masker: Masker) -> None:
    logger = logging.getLogger("tests.masking")
    try:
        raise ValueError('no "customer" for 0034600123456 (ana@example.com)')
    except ValueError:
        exc_info = sys.exc_info()
    record = logger.makeRecord(
        logger.name,
        logging.ERROR,
        __file__,
        1,
        "reply to %s failed at %s",
        ("+34 600 12 34 56", 1795541402),
        exc_info,
        extra={"wa_id": "whatsapp:+34600123456", "detail": {"email": "ana@example.com", "note": "soy María"}},
    )
    line = JsonFormatter(masker).format(record)
    parsed = json.loads(line)
    assert parsed["msg"] == "reply to +***456 failed at 1795541402"
    assert parsed["wa_id"] == "whatsapp:+***456"
    assert parsed["detail"] == {"email": "***@***", "note": "soy [name]"}
    assert 'ValueError: no "customer" for +***456 (***@***)' in parsed["exc"]
    for raw in ("600123456", "600 12 34 56", "ana@example.com", "María"):
        assert raw not in line


def test_json_logs_use_the_shared_masker_by_default() -> None:
    record = logging.LogRecord("tests", logging.INFO, __file__, 1, "from %s", ("600123456",), None)
    record.created = datetime(2026, 11, 26, 9, 0, tzinfo=UTC).timestamp()
    assert json.loads(JsonFormatter().format(record))["msg"] == "from +***456"


def test_langsmith_anonymizer_with_the_replacer_leaves_no_raw_value(masker: Masker) -> None:
    run = {
        "messages": [{"content": "soy María, +34 600 12 34 56, maria@example.com"}],
        "args": {"email": "x@y.com", "name": "Ana Ruiz"},
    }
    anonymize = create_anonymizer(masking_replacer(masker), max_depth=ANONYMIZER_MAX_DEPTH)
    masked = anonymize(copy.deepcopy(run))
    assert masked == {
        "messages": [{"content": "soy [name], +***456, ***@***"}],
        "args": {"email": "***@***", "name": "[name]"},
    }
    dumped = json.dumps(masked, ensure_ascii=False)
    for raw in ("María", "600", "12 34 56", "maria@", "example.com", "x@y.com", "Ana", "Ruiz"):
        assert raw not in dumped


def test_deep_runs_need_the_larger_max_depth(masker: Masker) -> None:
    deep: dict[str, Any] = {"content": "+34600123456"}
    for level in range(11):
        deep = {f"level{level}": deep}
    leaked = create_anonymizer(masking_replacer(masker))(copy.deepcopy(deep))  # langsmith's default depth, 10
    assert "+34600123456" in json.dumps(leaked)
    masked = create_anonymizer(masking_replacer(masker), max_depth=ANONYMIZER_MAX_DEPTH)(copy.deepcopy(deep))
    assert "+34600123456" not in json.dumps(masked) and "+***456" in json.dumps(masked)


KEY = b"k" * 32


def test_customer_key_is_stable_prefix_insensitive_and_keyed() -> None:
    key = customer_key("whatsapp:+34600123456", KEY)
    assert re.fullmatch(r"cust_[0-9a-f]{16}", key)
    assert customer_key("+34600123456", KEY) == key
    assert customer_key(" 34600123456 ", KEY) == key  # Twilio's WaId
    assert customer_key("whatsapp:+34600123457", KEY) != key
    assert customer_key("whatsapp:+34600123456", b"j" * 32) != key
    assert key != "cust_" + hashlib.sha256(b"+34600123456").hexdigest()[:16]  # not an enumerable plain hash
    assert Masker().mask_text(key) == key  # readable in logs and traces
    with pytest.raises(ValueError, match="16 bytes"):
        customer_key("+34600123456", b"short")
