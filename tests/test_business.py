"""Business YAML: the shipped example loads, lenient service matching, errors name the field."""

from __future__ import annotations

from datetime import date, time
from pathlib import Path

import pytest

from core.business import Business, BusinessConfigError, load_business, parse_business

ROOT = Path(__file__).resolve().parents[1]
_ONE_SERVICE = "[{name: A, duration_minutes: 30, price_eur: 1}]"


def test_example_is_a_madrid_salon(business: Business) -> None:
    assert business.timezone == "Europe/Madrid" and business.language == "es"
    assert business.phone_country_code == "34"  # national numbers on Calendly forms are Spanish
    corte = business.find_service("Corte y Peinado")
    assert corte is not None and corte.duration_minutes == 45 and corte.price_eur == 25
    assert corte.calendly_event_type is not None
    # Tuesday: two ranges with a lunch break between them.
    tuesday = business.hours_on(date(2026, 11, 24))
    assert [(r.start, r.end) for r in tuesday] == [(time(9, 30), time(14, 0)), (time(16, 0), time(20, 0))]
    assert business.hours_on(date(2026, 11, 30)) == ()  # Monday closed
    assert business.hours_on(date(2026, 12, 8)) == ()  # holiday


@pytest.mark.parametrize("wording", ["corte y peinado", "CORTE Y  PEINADO", "corte", "Haircut", "córte"])
def test_service_names_match_leniently(business: Business, wording: str) -> None:
    service = business.find_service(wording)
    assert service is not None and service.name == "Corte y Peinado"


def test_unknown_or_ambiguous_service_is_none(business: Business) -> None:
    assert business.find_service("manicura") is None


def test_load_prefers_the_given_file(tmp_path: Path) -> None:
    path = tmp_path / "business.yaml"
    path.write_text((ROOT / "business.example.yaml").read_text().replace("Peluquería RB", "Salón Ana"))
    assert load_business(path).name == "Salón Ana"


@pytest.mark.parametrize(
    ("yaml_text", "field"),
    [
        ("name: X\nservices: []\nopening_hours: {}\n", "services"),
        (
            "name: X\ntimezone: Mars/Olympus\nservices: [{name: A, duration_minutes: 30, price_eur: 1}]\n"
            "opening_hours: {}\n",
            "timezone",
        ),
        (
            "name: X\nservices: [{name: A, duration_minutes: -5, price_eur: 1}]\nopening_hours: {}\n",
            "services.0.duration_minutes",
        ),
        (
            "name: X\nservices: [{name: A, duration_minutes: 30, price_eur: 1}]\n"
            "opening_hours: {tuesday: ['14:00-09:00']}\n",
            "opening_hours.tuesday",
        ),
        (
            "name: X\nservices: [{name: A, duration_minutes: 30, price_eur: 1}]\nopening_hours: {funday: closed}\n",
            "opening_hours.funday",
        ),
        ("name: [unclosed\n", "not valid YAML"),
        *(
            (
                f"name: X\nphone_country_code: {code}\nservices: {_ONE_SERVICE}\nopening_hours: {{}}\n",
                "phone_country_code",
            )
            for code in ('"3400"', '"+"', '"0"', '"34a"', '""', "-34", "true")
        ),
    ],
)
def test_broken_yaml_names_the_field(yaml_text: str, field: str) -> None:
    with pytest.raises(BusinessConfigError) as info:
        parse_business(yaml_text, "business.yaml")
    assert field in str(info.value)
    assert "business.yaml" in str(info.value)


@pytest.mark.parametrize(
    ("written", "code"), [('"34"', "34"), ("34", "34"), ('"+1"', "1"), ('"351"', "351"), ("null", None)]
)
def test_phone_country_code_is_one_to_three_digits(written: str, code: str | None) -> None:
    text = f"name: X\nphone_country_code: {written}\nservices: {_ONE_SERVICE}\nopening_hours: {{}}\n"
    assert parse_business(text, "business.yaml").phone_country_code == code
