"""Which language the customer writes in, so that every text they get is in it.

Lingua (a maintained detector built for short texts) decides among the languages a salon in Spain hears; the
answer counts only when it is confident and names a language we have texts for. "ok", "sí" or "👍" say
nothing, and the language we already knew stays.
"""

from __future__ import annotations

from functools import cache

from lingua import Language, LanguageDetector, LanguageDetectorBuilder

SUPPORTED = {Language.SPANISH: "es", Language.ENGLISH: "en"}
# Also told apart, so that French or Catalan is not forced into Spanish or English (they keep what we knew).
_CANDIDATES = (*SUPPORTED, Language.FRENCH, Language.GERMAN, Language.ITALIAN, Language.PORTUGUESE, Language.CATALAN)
# Confident enough: the best language scores SURE, or at least MIN_CONFIDENCE and twice the runner-up (set on the
# table in tests/agent/test_language.py: "hi, I want a haircut" is English, "hola", "vale" or "claro" undecided).
SURE = 0.6
MIN_CONFIDENCE = 0.35
MIN_LEAD = 2.0
MIN_LETTERS = 4


@cache
def _detector() -> LanguageDetector:
    # Built once per process; the models of these few languages load on first use.
    return LanguageDetectorBuilder.from_languages(*_CANDIDATES).with_minimum_relative_distance(0.1).build()


def detect_language(text: str) -> str | None:
    """'es' or 'en' when the text clearly is in that language, else None (keep what we knew)."""
    if sum(ch.isalpha() for ch in text) < MIN_LETTERS:
        return None
    confidences = _detector().compute_language_confidence_values(text)
    if not confidences:
        return None
    best, runner_up = confidences[0], confidences[1]
    confident = best.value >= SURE or (best.value >= MIN_CONFIDENCE and best.value >= MIN_LEAD * runner_up.value)
    if not confident:
        return None
    return SUPPORTED.get(best.language)
