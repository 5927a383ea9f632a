"""Diagnostics on what the customer read: their language, the facts the scenario needs conveyed, and no time or
price that appears nowhere in a tool result, the business file or the conversation (an invented slot or price)."""

from __future__ import annotations

import re
from typing import Literal

from evals.record import ScenarioRun
from evals.results import Check

# Common words of short salon messages: enough to tell Spanish from English, and independent of the language
# detector the agent itself uses (an evaluator should not share the code it judges).
_SPANISH_WORDS = (
    "el la los las de del que y en un una por para con tu te tus tienes tengo es está hola gracias cita "
    "hueco quieres sí hecho queda cuando qué cómo mañana tarde hoy nos vemos puedo aquí"
)
_ENGLISH_WORDS = (
    "the a an of and to in for with you your is are at on it hi hello thanks booked book would like what "
    "time tomorrow today see just me if here all set any we have"
)
_STOPWORDS = {"es": frozenset(_SPANISH_WORDS.split()), "en": frozenset(_ENGLISH_WORDS.split())}

_TIME = re.compile(r"(?<![\d:.,])([01]?\d|2[0-3])[:.h]([0-5]\d)(?![\d:])")
_RANGE = re.compile(
    r"([01]?\d|2[0-3])[:.]([0-5]\d)\s*(?:-|–|a|to|until|hasta)\s*(?:las\s+)?([01]?\d|2[0-3])[:.]([0-5]\d)"
)
_PRICE = re.compile(r"(?:€\s?(\d+(?:[.,]\d{1,2})?))|(?:(\d+(?:[.,]\d{1,2})?)\s?(?:€|euros?\b|EUR\b))", re.I)
_BARE_PRICE = re.compile(r'"price_eur":\s*"?(\d+(?:\.\d{1,2})?)|price_eur:\s*(\d+(?:\.\d{1,2})?)')


def detect_language(text: str) -> Literal["es", "en"] | None:
    """'es' or 'en' by common words (and Spanish-only punctuation); None when there is nothing to go on."""
    words = re.findall(r"[a-záéíóúñü]+", text.casefold())
    scores = {lang: sum(w in stop for w in words) for lang, stop in _STOPWORDS.items()}
    scores["es"] += 2 * sum(text.count(mark) for mark in "¿¡")
    if scores["es"] == scores["en"]:
        return None
    return "es" if scores["es"] > scores["en"] else "en"


def _customer_texts(run: ScenarioRun) -> list[str]:
    return [text for turn in run.turns for text in turn.reaching_customer]


def reply_language(run: ScenarioRun) -> Check:
    """Everything that reached the customer is in their language."""
    expected = run.scenario.language
    texts = _customer_texts(run)
    wrong = [t for t in texts if detect_language(t) not in (expected, None)]
    if wrong:
        return Check(name="language", passed=False, reason=f"not in {expected}: {wrong[0][:80]!r}")
    return Check(name="language", passed=True, reason=f"{len(texts)} message(s) in {expected}")


def facts_conveyed(run: ScenarioRun) -> Check | None:
    """Each fact of the scenario appears (any of its wordings) in something the customer read."""
    facts = run.scenario.expect.facts
    if not facts:
        return None
    text = "\n".join(_customer_texts(run)).casefold()
    missing = [fact.any_of[0] for fact in facts if not any(option.casefold() in text for option in fact.any_of)]
    score = 1 - len(missing) / len(facts)
    if missing:
        return Check(name="facts", passed=False, score=score, reason=f"not conveyed: {missing}")
    return Check(name="facts", passed=True, score=score, reason=f"{len(facts)} fact(s) conveyed")


def _minutes(hours: str, minutes: str) -> int:
    return int(hours) * 60 + int(minutes)


def _sources(run: ScenarioRun) -> str:
    # Where a time or a price may legitimately come from, besides the business file: tools, the customer, the
    # events, the agent's own confirmation questions (rendered from validated tool calls) and the clock.
    parts = [*run.tool_results, f"{run.scenario.now:%H:%M}"]
    for turn in run.turns:
        parts.append(turn.text)
        parts += [m.body for m in turn.sent if m.kind == "reminder"]
        parts += [call.describe() for call in turn.tool_calls]
        if turn.awaiting_confirmation:
            parts += turn.replies
    for appointment in run.scenario.seed.appointments:
        parts.append(f"{appointment.start:%H:%M}")
    return "\n".join(parts)


def _known_times(sources: str) -> tuple[set[int], list[tuple[int, int]]]:
    times = {_minutes(h, m) for h, m in _TIME.findall(sources)}
    ranges = [(_minutes(a, b), _minutes(c, d)) for a, b, c, d in _RANGE.findall(sources)]
    return times, ranges


def _prices(text: str) -> set[float]:
    found = {float((a or b).replace(",", ".")) for a, b in _PRICE.findall(text)}
    return found | {float(a or b) for a, b in _BARE_PRICE.findall(text)}


def nothing_invented(run: ScenarioRun) -> Check:
    """Every time and price in a reply appears in a tool result, the business file or the conversation (a time
    inside a range a tool offered counts: "from 16:00 to 19:15" grounds 17:00; opening hours do not)."""
    sources = _sources(run)
    times, ranges = _known_times(sources)
    # The business file grounds its own times exactly (opening hours are facts), but its ranges are not offers:
    # "16:00-20:00" opening hours do not make an unchecked 17:45 a free slot.
    times |= _known_times(run.business_text)[0]
    prices = _prices(sources + "\n" + run.business_text)
    invented: list[str] = []
    for text in _customer_texts(run):
        for hours, minutes in _TIME.findall(text):
            value = _minutes(hours, minutes)
            if value not in times and not any(low <= value <= high for low, high in ranges):
                invented.append(f"{hours}:{minutes}")
        invented += [f"{price:g} €" for price in _prices(text) if price not in prices]
    if invented:
        return Check(name="not_invented", passed=False, reason=f"not in any tool result or the business: {invented}")
    return Check(name="not_invented", passed=True, reason="every time and price has a source")
