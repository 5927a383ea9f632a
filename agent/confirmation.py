"""Is the customer's answer a clear yes to the question they last saw? Only then does a write run.

A small grammar, not a list of whole replies: after normalising (case, accents, repeated letters, punctuation), the
reply must be one or more affirmatives ("sí", "vale", "dale", "go ahead", "reserva"...) with nothing else but
politeness fillers ("gracias", "porfa", "please", 👍, the customer's own name). A question mark, a negation, a day,
a time, "pero"/"but" or any other word makes it not a yes, and the model reads the reply instead. The labelled
table in `tests/agent/confirmation_replies.py` is the specification.

A quick-reply button confirms only when its payload names the pending question (`confirm:<id>`), so a button
from an older message never confirms a different action. In a burst of messages, one that is not a yes (a later
"espera") outweighs any yes.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

Verdict = Literal["yes", "neutral", "other"]

_AFFIRMATIVES = """
si|sip|sipi|sii|yes|yep|yup|yeah|ya lo creo|vale|valee|ok|oka|okay|okey|oki|okis|okk|k|venga|dale|claro|
claro que si|por supuesto|desde luego|perfecto|perfecta|perfect|genial|great|estupendo|estupenda|fenomenal|
guay|de acuerdo|deacuerdo|dacuerdo|correcto|todo correcto|todo perfecto|todo bien|correct|that s right|
thats right|exacto|exactamente|eso es|asi es|adelante|hecho|confirmo|confirmado|confirmada|confirma|confirmar|
confirmalo|confirmala|reserva|reservalo|reservala|reservamelo|reservamela|hazlo|hagamoslo|cancela|cancelala|
cancelalo|cancelamela|cambiala|cambialo|cambiamela|muevela|muevelo|sure|sure thing|of course|absolutely|
definitely|alright|all right|fine|sounds good|sounds great|looks good|that works|works for me|go ahead|
go for it|confirm|confirmed|book it|cancel it|move it|change it|reschedule it|do it|please do|yes please|
lets do it|let s do it|👍|✅|👌|🆗|✔|
"""
_FILLERS = """
gracias|muchas gracias|mil gracias|muchisimas gracias|porfa|porfi|porfis|por favor|xfa|plis|pls|please|plz|
thanks|thank you|thank u|thx|ty|many thanks|cheers|de nada|🙏|😊|🙂|😀|😁|😃|😄|☺|❤|❤️|💕|💪|🥰|😍|✨|🤗|🙌|
👏|
"""

_QUESTION = re.compile(r"[?¿]")
_TOKEN = re.compile(r"[^\W\d_]+|\d+|[^\w\s]", flags=re.UNICODE)
_REPEATS = re.compile(r"([^\W\d_])\1{2,}", flags=re.UNICODE)
# Skin tones and variation selectors change nothing about what an emoji says.
_MODIFIERS = re.compile("[\U0001f3fb-\U0001f3ff\ufe0f\u200d]")
_PUNCTUATION = set(".,;:!¡-–—…*~'\"()[]")


def _normalise(text: str) -> str:
    text = _MODIFIERS.sub("", text.casefold())
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _REPEATS.sub(r"\1", plain)


def _phrases(spec: str) -> set[tuple[str, ...]]:
    words = (p.strip() for p in spec.replace("\n", "").split("|"))
    return {tuple(_tokens(w)) for w in words if w}


def _tokens(text: str) -> list[str]:
    return [t for t in _TOKEN.findall(_normalise(text)) if t not in _PUNCTUATION]


_AFFIRMATIVE_PHRASES = _phrases(_AFFIRMATIVES)
_FILLER_PHRASES = _phrases(_FILLERS)
_LONGEST = max(len(p) for p in _AFFIRMATIVE_PHRASES | _FILLER_PHRASES)


def classify(text: str, *, names: Iterable[str] = ()) -> Verdict:
    """'yes' for a reply that is only affirmatives (and fillers), 'neutral' for fillers alone ("gracias", 🙏),
    'other' for anything else, questions included."""
    if _QUESTION.search(text):
        return "other"
    tokens = _tokens(text)
    name_tokens = {t for name in names for t in _tokens(name)}
    # reachable[i]: the ways tokens[:i] can be read as phrases (None: not at all; True: with an affirmative).
    reachable: list[bool | None] = [None] * (len(tokens) + 1)
    reachable[0] = False
    for i in range(len(tokens)):
        if reachable[i] is None:
            continue
        for size in range(1, min(_LONGEST, len(tokens) - i) + 1):
            phrase = tuple(tokens[i : i + size])
            affirmative = phrase in _AFFIRMATIVE_PHRASES
            if affirmative or phrase in _FILLER_PHRASES or (size == 1 and phrase[0] in name_tokens):
                reachable[i + size] = bool(reachable[i + size]) or bool(reachable[i]) or affirmative
    affirmed = reachable[len(tokens)]
    if affirmed is None:
        return "other"
    return "yes" if affirmed else "neutral"


def is_clear_yes(text: str, *, names: Iterable[str] = ()) -> bool:
    """True for a reply that is nothing but a yes ("Sí", "vale!", "Sí porfa 👍", "Yes please")."""
    return classify(text, names=names) == "yes"


def confirm_payload(pending_id: str) -> str:
    """The quick-reply payload that confirms exactly the pending question `pending_id`."""
    return f"confirm:{pending_id}"


@dataclass(frozen=True)
class Reply:
    """One message of the customer's answer: its text and, for a quick-reply button, the button's payload."""

    text: str
    button_payload: str | None = None


def answer_confirms(replies: Sequence[Reply], pending_id: str, *, names: Iterable[str] = ()) -> bool:
    """Whether the customer's messages, together, confirm the pending question `pending_id`.

    A button counts only when its payload is this question's (its text is then ignored: it is the button's label,
    which may be "Confirmar" for some other message); every other message must be a yes or a mere filler, and at
    least one must be a yes.
    """
    names = tuple(names)
    confirmed = False
    for reply in replies:
        if reply.button_payload is not None:
            if reply.button_payload.strip().casefold() != confirm_payload(pending_id).casefold():
                return False
            confirmed = True
            continue
        verdict = classify(reply.text, names=names)
        if verdict == "other":
            return False
        confirmed = confirmed or verdict == "yes"
    return confirmed
