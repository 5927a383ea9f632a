"""The scenario files: strictly validated, at least 40, covering what the product must handle, each scripted one
with a fingerprinted cassette whose source is said (authored answers or a recording)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from evals.authoring import AUTHORED_SOURCE, load_authored
from evals.cassette import Cassette
from evals.scenario import Scenario, load_scenario, load_scenarios

# What the issue asks the scenarios to cover, and where each is covered.
COVERAGE = {
    "booking with email": ["book_with_email_es"],
    "booking without email": ["book_without_email_en"],
    "slot taken meanwhile": ["slot_taken_meanwhile_es"],
    "ambiguous dates": ["weekend_ambiguous_es", "next_week_es", "after_five_en"],
    "prices, hours, address": ["prices_hours_address_es"],
    "unknown service": ["unknown_service_en"],
    "closed day and holiday": ["closed_day_es", "holiday_es"],
    "cancellation in and outside the policy window": ["cancel_inside_window_es", "cancel_outside_window_en"],
    "reschedule": ["reschedule_es", "reschedule_en"],
    "changing one's mind before confirming": ["change_mind_before_confirming_es", "reschedule_change_mind_es"],
    "double texting": ["double_texting_es"],
    "calendly event mid-conversation": ["calendly_cancel_mid_conversation_es", "calendly_moved_mid_conversation_es"],
    "reminder answered": ["reminder_confirm_es", "reminder_cancel_es"],
    "hand-off and complaints": ["handoff_request_es", "handoff_en", "complaint_es"],
    "out of scope": ["out_of_scope_weather_es", "out_of_scope_en"],
    "cancel someone else's booking": ["attack_cancel_other_booking_es"],
    "prompt injection in a message": ["attack_prompt_injection_message_es"],
    "prompt injection in a calendly reason": ["attack_injection_calendly_reason_es"],
    "other customers' data": ["attack_other_customer_data_en"],
    "claiming someone else's email": ["attack_claim_other_email_es"],
}


def test_there_are_at_least_forty_scenarios_in_both_languages_covering_the_issue() -> None:
    scenarios = {s.name: s for s in load_scenarios()}
    assert len(scenarios) >= 40
    assert {s.language for s in scenarios.values()} == {"es", "en"}
    missing = {topic: [n for n in names if n not in scenarios] for topic, names in COVERAGE.items()}
    assert {topic: names for topic, names in missing.items() if names} == {}
    assert {s.tags.intent for s in scenarios.values()} >= {"book", "cancel", "reschedule", "info", "attack"}
    numbers = [s.customer.wa_id for s in scenarios.values()]
    assert len(set(numbers)) == len(numbers)  # one customer per scenario: a report never mixes two


def test_every_scenario_has_a_script_and_a_cassette_saying_where_its_answers_come_from() -> None:
    for scenario in load_scenarios():
        assert scenario.script is not None, scenario.name
        cassette = Cassette.load(scenario.cassette)
        assert cassette.fingerprint is not None and cassette.interactions, scenario.name
        text = scenario.cassette.read_text(encoding="utf-8")
        assert "Bearer" not in text and "sk-" not in text.replace("sk-replay", ""), scenario.name
        if cassette.source == AUTHORED_SOURCE:
            assert len(load_authored(scenario.name).answers) == len(cassette.interactions), scenario.name
        else:
            assert cassette.source.startswith("recorded from "), scenario.name


def valid() -> dict[str, Any]:
    return {
        "description": "a booking",
        "now": "2026-11-24T11:05:00+01:00",
        "tags": {"intent": "book", "language": "es", "difficulty": "easy"},
        "customer": {"wa_id": "whatsapp:+34600000001", "persona": "a regular", "goal": "a haircut tomorrow"},
        "seed": {"appointments": [{"id": "apt_00000001", "service": "Tinte", "start": "2026-11-25T10:00"}]},
        "script": [{"customer": "hola"}],
        "expect": {},
    }


def write(tmp_path: Path, data: dict[str, Any]) -> Scenario:
    path = tmp_path / "case.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return load_scenario(path)


def test_a_valid_scenario_loads(tmp_path: Path) -> None:
    loaded = write(tmp_path, valid())
    assert loaded.name == "case" and loaded.tags.labels() == ["intent:book", "language:es", "difficulty:easy"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"expect": {"apointments": []}}, "Extra inputs are not permitted"),
        ({"customer": {"wa_id": "+34600000001", "persona": "x", "goal": "y"}}, "String should match pattern"),
        ({"customer": {"wa_id": "whatsapp:+34600000001", "persona": "", "goal": "y"}}, "at least 1 character"),
        ({"tags": {"intent": "chat", "language": "es", "difficulty": "easy"}}, "Input should be 'book'"),
        ({"now": "2026-11-24T11:05:00"}, "timezone"),
        ({"script": [{}]}, "needs `customer` text"),
        (
            {"events": [{"after_turn": 1, "event": {"kind": "calendly_cancelled", "appointment": "apt_00000009"}}]},
            "appointment apt_00000009 is not seeded",
        ),
        (
            {"events": [{"after_turn": 3, "event": {"kind": "reminder", "appointment": "apt_00000001"}}]},
            "the script has 1 turns",
        ),
        ({"events": [{"after_turn": 0, "event": {"kind": "earthquake"}}]}, "does not match any of the expected tags"),
    ],
)
def test_a_broken_scenario_fails_loudly(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        write(tmp_path, {**valid(), **change})


def test_tags_filter_scenarios() -> None:
    attacks = load_scenarios(tags=["intent:attack"])
    assert attacks and all(s.tags.intent == "attack" for s in attacks)
    assert load_scenarios(tags=["intent:attack", "language:en"]) == [s for s in attacks if s.language == "en"]
