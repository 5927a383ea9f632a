"""The yes grammar against the labelled table (the spec), plus buttons, bursts and names."""

from __future__ import annotations

import pytest

from agent.confirmation import Reply, answer_confirms, classify, confirm_payload, is_clear_yes
from tests.agent.confirmation_replies import ENGLISH, SPANISH


@pytest.mark.parametrize(("reply", "expected"), SPANISH + ENGLISH)
def test_labelled_replies(reply: str, expected: bool) -> None:
    assert is_clear_yes(reply) is expected


def test_the_table_is_large_and_balanced() -> None:
    rows = SPANISH + ENGLISH
    assert len(rows) >= 100 and len(SPANISH) >= 50 and len(ENGLISH) >= 50
    assert sum(label for _, label in rows) > len(rows) / 3 and sum(not label for _, label in rows) > len(rows) / 4


def test_the_customers_own_name_is_a_filler_but_another_word_is_not() -> None:
    assert is_clear_yes("Sí, María, gracias", names=["María López"])
    assert not is_clear_yes("Sí, María, gracias")
    assert classify("gracias 🙏") == "neutral" and classify("gracias 🙏, a las 11") == "other"


def test_a_button_confirms_only_its_own_question() -> None:
    assert answer_confirms([Reply("Sí", confirm_payload("p1"))], "p1")
    # A reminder's "Confirmar asistencia" button, or an older question's, never confirms this one.
    assert not answer_confirms([Reply("Confirmar asistencia", "confirm_attendance")], "p1")
    assert not answer_confirms([Reply("Sí", confirm_payload("p0"))], "p1")


def test_in_a_burst_a_later_doubt_beats_an_earlier_yes() -> None:
    assert not answer_confirms([Reply("sí"), Reply("espera")], "p1")
    assert not answer_confirms([Reply("", confirm_payload("p1")), Reply("no, mejor el viernes")], "p1")
    assert answer_confirms([Reply("sí"), Reply("gracias!")], "p1")
    assert not answer_confirms([Reply("gracias")], "p1")
