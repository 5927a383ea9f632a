"""Is the customer's reply a clear yes? Only an unambiguous yes (or a quick-reply button) executes a write."""

from __future__ import annotations

import re
import unicodedata

# Whole replies that mean yes, after normalisation. Anything longer or mixed ("sí, pero a las 11") is not a yes.
_YES = {
    "si",
    "sí",
    "sip",
    "sii",
    "siii",
    "vale",
    "ok",
    "okay",
    "okey",
    "oki",
    "de acuerdo",
    "confirmo",
    "confirmar",
    "confirmado",
    "confirma",
    "perfecto",
    "claro",
    "claro que si",
    "por supuesto",
    "adelante",
    "hecho",
    "genial",
    "yes",
    "yep",
    "yeah",
    "sure",
    "confirm",
    "confirmed",
    "correct",
    "go ahead",
    "please do",
    "do it",
    "👍",
    "✅",
    "si confirmo",
    "si por favor",
    "si perfecto",
    "si vale",
    "vale perfecto",
    "si claro",
    "yes please",
    "yes confirm",
    "ok perfecto",
    "si adelante",
    "perfecto gracias",
    "si gracias",
    "vale gracias",
    "ok gracias",
    "yes thanks",
    "yes thank you",
}
_BUTTON_YES = {"yes", "si", "confirm", "confirm_yes", "confirmar", "ok"}
_FILLER = re.compile(r"[^\w\s👍✅]", flags=re.UNICODE)


def _normalise(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    without_accents = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(_FILLER.sub(" ", without_accents).split())


_YES_NORMALISED = {_normalise(y) for y in _YES}


def is_clear_yes(text: str, button_payload: str | None = None) -> bool:
    """True for a quick-reply 'yes' payload or a reply that is nothing but a yes ("Sí", "vale!", "Yes please")."""
    if button_payload is not None and _normalise(button_payload).replace(" ", "_") in _BUTTON_YES:
        return True
    return _normalise(text) in _YES_NORMALISED


_ENGLISH_HINTS = {
    "hi",
    "hello",
    "please",
    "appointment",
    "book",
    "tomorrow",
    "thanks",
    "want",
    "can",
    "the",
    "yes",
    "cancel",
    "haircut",
    "would",
    "like",
    "time",
    "today",
    "i",
}
_SPANISH_HINTS = {
    "hola",
    "quiero",
    "cita",
    "mañana",
    "manana",
    "gracias",
    "por",
    "favor",
    "tenéis",
    "teneis",
    "hueco",
    "para",
    "el",
    "la",
    "sí",
    "si",
    "corte",
    "puedo",
    "buenas",
    "buenos",
    "días",
    "dias",
    "que",
    "de",
}


def guess_language(text: str) -> str | None:
    """'en' or 'es' when the words make it clear, else None (keep what we knew)."""
    words = set(re.findall(r"[\wáéíóúñ]+", text.casefold()))
    english, spanish = len(words & _ENGLISH_HINTS), len(words & _SPANISH_HINTS)
    if english > spanish:
        return "en"
    if spanish > english:
        return "es"
    return None
