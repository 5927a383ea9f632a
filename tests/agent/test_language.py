"""Which language a customer writes in: a labelled table of real first messages (the spec), and the profile."""

from __future__ import annotations

import pytest

from agent.api import IncomingText
from agent.language import detect_language
from tests.agent.conftest import CUSTOMER, Harness
from tests.scripted_model import call, says, uses

# (message, language it must be detected as; None = too short or unclear, keep what we knew)
LABELLED: list[tuple[str, str | None]] = [
    ("Do you have anything on Thursday morning for a cut?", "en"),
    ("Hi, I'd like to book a haircut for tomorrow", "en"),
    ("hi, I want a haircut", "en"),
    ("Can I come in on Friday afternoon?", "en"),
    ("I need to cancel my appointment", "en"),
    ("Could you move my appointment to next week?", "en"),
    ("How much is a beard trim?", "en"),
    ("What time do you close today?", "en"),
    ("Thanks so much, see you then!", "en"),
    ("good morning", "en"),
    ("yes please", "en"),
    ("tomorrow", "en"),
    ("Where are you located?", "en"),
    ("¿tenéis hueco mañana para corte?", "es"),
    ("Hola, quería pedir cita para cortarme el pelo", "es"),
    ("quiero cita", "es"),
    ("¿Me podéis cambiar la cita al viernes?", "es"),
    ("Tengo que cancelar mi cita del jueves", "es"),
    ("¿Cuánto cuesta un tinte?", "es"),
    ("¿A qué hora cerráis hoy?", "es"),
    ("buenos días", "es"),
    ("hasta luego", "es"),
    ("gracias", "es"),
    ("mañana por la tarde", "es"),
    ("perfecto, nos vemos", "es"),
    ("tenéis algo el sábado?", "es"),
    ("ok", None),
    ("sí", None),
    ("vale", None),
    ("hola", None),
    ("👍", None),
    ("10:30", None),
    ("no", None),
    ("claro", None),
    ("Bonjour, je voudrais un rendez-vous", None),  # French: not a language we answer in; keep what we knew
    ("Buongiorno, vorrei prenotare un taglio", None),
    ("Bom dia, queria marcar um corte", None),
    ("Guten Tag, ich hätte gern einen Termin", None),
    ("", None),
    ("...", None),
]


@pytest.mark.parametrize(("text", "expected"), LABELLED)
def test_labelled_messages(text: str, expected: str | None) -> None:
    assert detect_language(text) == expected


async def test_the_language_is_kept_in_the_profile_and_used_for_the_question(harness: Harness) -> None:
    h = harness
    h.model.extend(uses(call("book_appointment", service="corte", start_time="2026-11-26T10:00:00")), says("Sure."))
    asked = await h.say("Do you have anything on Thursday morning for a cut? 10 would be great")
    assert asked.awaiting_confirmation and "Thursday 26 November" in asked.replies[0]
    assert (await h.clients.get(CUSTOMER)).language == "en"  # type: ignore[union-attr]
    # "ok" says nothing about the language: the profile's stays.
    await h.assistant.customer_turn(CUSTOMER, [IncomingText(body="ok")])
    assert (await h.clients.get(CUSTOMER)).language == "en"  # type: ignore[union-attr]
