"""Customers' personal data (phones, e-mails, names) masked out of logs and traces, by one set of rules.

Phones become `+***` and their last three digits (`whatsapp:+***456` for a WhatsApp address), e-mails `***@***`,
names `[name]`. Rules for numbers, chosen so that ids, prices, dates and timestamps stay readable:

* With a `+`, `00`, `(+34)` or URL-encoded `%2B` in front, 7 to 15 digits in groups (spaces, dots, dashes,
  parentheses) are a phone; a `+34`/`0034` number ends after its 11 digits (`+34 600 123 456 10 veces`).
* Bare digits are a phone when they are a Spanish national number (9 digits starting 6-9, grouped 3-3-3,
  3-2-2-2 or 2-3-2-2, optionally after `34`) or an unseparated run of 11 or 12 digits (a Twilio `WaId` such as
  `34600123456`). Runs of 10 and 13 digits are left alone: they are Unix timestamps (s, ms), as are digits glued
  to letters, `_` or a hex id's dash (`apt_0123456789`, UUIDs, Twilio SIDs). A bare foreign number of another
  length (`4477009001234`) is therefore not caught in free text; under a personal-data key it always is.

Names are masked when remembered (`remember_names`: the registry is what knows them) or when introduced
("soy Ana García", "my name is Ana"); a name nobody registered or introduced is not caught in free text.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

PHONE_MASK = "+***"
EMAIL_MASK = "***@***"
NAME_MASK = "[name]"
REDACTED = "[redacted]"
# LangChain messages nest deeper than create_anonymizer's default of 10 (inputs.messages[0][0].kwargs.tool_calls
# [0].args.email is 8 already), and strings below the limit are not visited at all, i.e. not masked.
ANONYMIZER_MAX_DEPTH = 64
_MAX_DATA_DEPTH = 32

_J = r"[ \u00a0.\-]"  # one separator between digit groups
_DIGITS = r"\d(?:(?:[ \u00a0.\-]|\s?\(|\)[ \u00a0\-]?)?\d)*"  # digits, groups may be parenthesised: (555) 123-4567
# Spanish national numbers as people group them: 600 123 456, 600 12 34 56, 91 123 45 67.
_NATIONAL = rf"[6-9]\d\d(?:{_J}?\d{{3}}){{2}}|[6-9]\d\d(?:{_J}?\d\d){{3}}|[89]\d{_J}?\d{{3}}(?:{_J}?\d\d){{2}}"
_PHONE = re.compile(
    rf"(?P<wa>whatsapp:)?(?:"
    rf"(?P<pre>(?<!\d)(?:\(\s?(?:\+|00)\s?[1-9]\d{{0,2}}\s?\)|(?:\+|%2[Bb])\s?|(?<![\w.,])00(?=[1-9])))"
    rf"{_J}?(?P<num>{_DIGITS})"
    rf"|(?<![\w+%])(?<!\d[.,])(?<![0-9A-Fa-f]-)(?P<bare>(?:34{_J}?)?(?:{_NATIONAL})|[1-9]\d{{10,11}})"
    rf"(?!\w)(?![.,]\d)(?!-[0-9A-Fa-f]))"
)
# A letter TLD (user@127.0.0.1 is no customer); the lookbehind starts matches only at a run's start (linear time).
_EMAIL = re.compile(r"(?<![\w.%+\-])[\w.%+\-]+(?:@|%40)[\w\-]+(?:\.[\w\-]+)*\.[^\W\d_]{2,}(?![\w\-])")
_WORD = re.compile(r"[^\W\d_](?:[^\W\d_]|[\u0300-\u036f])*")
_NAME_GAP = re.compile(r"[\s\-'’]{1,3}")
_CAPITALISED = r"[A-ZÀ-ÖØ-Þ](?:[^\W\d_]|[\u0300-\u036f]|['’\-](?=[^\W\d_]))*"
_INTRODUCTION = re.compile(
    r"(?<!\w)(?P<lead>(?i:me\s+llamo|mi\s+nombre\s+es|my\s+name\s+is|soy|i['’]m|i\s+am|this\s+is)\s+)"
    rf"{_CAPITALISED}(?:\s+{_CAPITALISED}){{0,2}}"
)
# JSON or Python-repr text (tool results, serialised tool-call arguments): "email": "ana@x.com".
_QUOTED_FIELD = re.compile(
    r"""(?P<q>["'])(?P<key>[A-Za-z_\-]{2,24})(?P=q)\s*:\s*"""
    r"""(?P<vq>["'])(?P<value>(?:\\.|(?!(?P=vq)).)*?)(?P=vq)"""
)
# Tool names ("book_appointment") sit under "name" in tool calls; no person's name has an underscore.
_IDENTIFIER = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)+")
_PHONE_FIELD = re.compile(r"(?P<wa>whatsapp:)?[\s+()0-9.\-]+|%2[Bb][0-9]+")

_NAME_KEYS = frozenset({"name", "profilename", "customername", "inviteename", "firstname", "lastname", "fullname"})
_CONTACT_KEYS = frozenset({"email", "inviteeemail", "phone", "phonenumber", "waid", "textremindernumber"})
_LOOSE_KEYS = frozenset({"from", "to"})  # also status transitions ("from": "pending"): masked only if phone-ish
# Particles of full names that are everyday words: never masked alone ("las 10:00 del martes").
_PARTICLES = frozenset({"del", "las", "los", "san", "santa", "van", "von", "der", "den", "dos", "das", "the", "and"})


def _fold(text: str) -> str:
    """Case- and accent-insensitive form: 'MARÍA' and 'maria' are the same name."""
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def _normal_key(key: str) -> str:
    return re.sub(r"[\s_\-]", "", key).lower()


def _phone_mask(digits: str, whatsapp: bool) -> str:
    return ("whatsapp:" if whatsapp else "") + PHONE_MASK + digits[-3:]


class _Names(NamedTuple):
    """An immutable view of the registry: readers take it in one attribute read, writers replace it."""

    words: frozenset[str]  # single words masked on their own (parts of >= 3 letters, one-word names)
    phrases: frozenset[str]  # whole names of several words, each word folded, joined by one space
    longest: int


class Masker:
    """Masks personal data in text and structured values; shares one bounded registry of remembered names.

    Safe to use from several threads (LangSmith serialises runs in a background thread): `remember_names`
    updates the registry under a lock and publishes a new immutable view; masking reads the current view.
    """

    __slots__ = ("_capacity", "_lock", "_names", "_view")

    def __init__(self, capacity: int = 10_000) -> None:
        self._capacity = capacity
        self._lock = threading.Lock()
        self._names: OrderedDict[str, tuple[str, ...]] = OrderedDict()  # folded full name -> its folded words
        self._view = _Names(frozenset(), frozenset(), 0)

    def remember_names(self, *names: str | None) -> None:
        """Mask these customers' names from now on (full name, and each part of three letters or more); the
        least recently remembered are forgotten beyond `capacity`. `None` and blank names are ignored."""
        entries = []
        for name in names:
            words = tuple(_fold(m.group()) for m in _WORD.finditer(name or ""))
            if words and sum(map(len, words)) >= 3 and " ".join(words) not in _PARTICLES:
                entries.append(words)
        if not entries:
            return
        with self._lock:
            changed = False
            for words in entries:
                full = " ".join(words)
                changed |= full not in self._names
                self._names[full] = words
                self._names.move_to_end(full)
            while len(self._names) > self._capacity:
                self._names.popitem(last=False)
                changed = True
            if changed:
                self._view = self._build_view()

    def _build_view(self) -> _Names:
        single = {w for words in self._names.values() for w in words if len(w) >= 3 and w not in _PARTICLES}
        single |= {words[0] for words in self._names.values() if len(words) == 1}
        phrases = {full for full, words in self._names.items() if len(words) > 1}
        longest = max((len(words) for words in self._names.values()), default=0)
        return _Names(frozenset(single), frozenset(phrases), longest)

    def mask_text(self, text: str) -> str:
        """`text` with phone numbers, e-mail addresses and names masked (see the module's rules)."""
        text = _QUOTED_FIELD.sub(self._quoted_field, text)
        text = _EMAIL.sub(EMAIL_MASK, text)
        text = _PHONE.sub(_phone_match, text)
        text = self._mask_remembered(text)
        return _INTRODUCTION.sub(lambda m: m.group("lead") + NAME_MASK, text)

    def _quoted_field(self, match: re.Match[str]) -> str:
        key, value = match.group("key"), match.group("value")
        if _normal_key(key) not in _NAME_KEYS | _CONTACT_KEYS | _LOOSE_KEYS:
            return match.group()  # the rest of mask_text sees it
        masked = self.mask_field(key, value)
        if masked == value:
            return match.group()
        return match.group()[: match.start("value") - match.start()] + masked + match.group("vq")

    def _mask_remembered(self, text: str) -> str:
        view = self._view
        if view.longest == 0:
            return text
        words = list(_WORD.finditer(text))
        folded = [_fold(m.group()) for m in words]
        spans: list[tuple[int, int]] = []
        i = 0
        while i < len(words):
            size = 0
            for n in range(min(view.longest, len(words) - i), 1, -1):
                joined = all(
                    _NAME_GAP.fullmatch(text, words[j].end(), words[j + 1].start()) for j in range(i, i + n - 1)
                )
                if joined and " ".join(folded[i : i + n]) in view.phrases:
                    size = n
                    break
            if not size and folded[i] in view.words:
                size = 1
            if size:
                spans.append((words[i].start(), words[i + size - 1].end()))
            i += size or 1
        for start, end in reversed(spans):
            text = text[:start] + NAME_MASK + text[end:]
        return text

    def mask_field(self, key: str, value: str) -> str:
        """`value` stored under `key`: the whole value is masked when the key names personal data (`name`, `email`,
        `wa_id`, `ProfileName`, ...; case, `_` and `-` ignored), whatever it looks like; otherwise `mask_text`."""
        normal = _normal_key(key)
        if not value.strip():
            return value
        if normal in _NAME_KEYS:
            return value if normal == "name" and _IDENTIFIER.fullmatch(value) else NAME_MASK
        contact = normal in _CONTACT_KEYS
        if contact or normal in _LOOSE_KEYS:
            stripped = value.strip()
            digits = re.sub(r"\D", "", stripped)
            if _PHONE_FIELD.fullmatch(stripped) and len(digits) >= 7:
                return _phone_mask(digits, stripped.startswith("whatsapp:"))
            if "@" in stripped:
                return EMAIL_MASK
            if contact or len(digits) >= 7:
                return REDACTED
        return self.mask_text(value)

    def mask_value(self, value: str, path: Sequence[str | int]) -> str:
        """A string found at `path` in a nested structure (the innermost key decides, list indexes skipped);
        the `(value, path)` shape LangSmith's `create_anonymizer` calls."""
        key = next((part for part in reversed(path) if isinstance(part, str)), None)
        return self.mask_field(key, value) if key is not None else self.mask_text(value)

    def mask_data(self, data: Any, path: tuple[str | int, ...] = ()) -> Any:
        """A copy of `data` (dicts, lists, tuples, scalars; other objects as their `str`) with every string
        masked by `mask_value` and dict keys by `mask_text`; for logs' `extra=` fields."""
        if len(path) > _MAX_DATA_DEPTH:
            return REDACTED
        if isinstance(data, str):
            return self.mask_value(data, path)
        if data is None or isinstance(data, bool | float):
            return data
        if isinstance(data, int):
            masked = self.mask_value(str(data), path)
            return data if masked == str(data) else masked
        if isinstance(data, dict):
            return {
                (self.mask_text(k) if isinstance(k, str) else k): self.mask_data(v, (*path, str(k)))
                for k, v in data.items()
            }
        if isinstance(data, list | tuple | set | frozenset):
            return [self.mask_data(item, (*path, i)) for i, item in enumerate(data)]
        return self.mask_value(str(data), path)


def _phone_match(match: re.Match[str]) -> str:
    whatsapp = match.group("wa") is not None
    bare = match.group("bare")
    if bare is not None:
        return _phone_mask(re.sub(r"\D", "", bare), whatsapp)
    span = match.group()
    country = re.sub(r"\D", "", match.group("pre")).removeprefix("00")  # "(+34)" -> "34"; "00" is no digit of it
    digits = country + re.sub(r"\D", "", match.group("num"))
    if len(digits) < 7:
        return span
    # Where a grouped number ends is a guess: Spanish numbers have 11 digits; others end at the last group
    # boundary within E.164's 15. What follows is scanned again.
    limit = 11 if digits.startswith("34") else 15
    start = match.start("num") - match.start()
    end, seen, boundary = len(span), len(country), None
    for index, char in enumerate(span[start:], start):
        if char.isdigit():
            seen += 1
            if seen == limit:
                end = index + 1
                break
            if index + 1 < len(span) and not span[index + 1].isdigit():
                boundary = index + 1
    if seen == limit and limit == 15 and len(digits) > 15 and boundary is not None:
        end = boundary
    if end == len(span):
        return _phone_mask(digits, whatsapp)
    head = country + re.sub(r"\D", "", span[start:end])
    return _phone_mask(head, whatsapp) + _PHONE.sub(_phone_match, span[end:])


def masking_replacer(masker: Masker | None = None) -> Callable[[str, list[str | int]], str]:
    """The replacer for `langsmith.anonymizer.create_anonymizer(replacer, max_depth=ANONYMIZER_MAX_DEPTH)`.

    LangSmith walks the run's inputs, outputs, metadata and error and calls `replacer(value, path)` on each string
    (it tells the one- from the two-argument form by counting parameters, hence a plain two-argument function).
    """
    chosen = masker or MASKER

    def replace(value: str, path: list[str | int]) -> str:
        return chosen.mask_value(value, path)

    return replace


def customer_key(wa_id: str, key: bytes) -> str:
    """A stable pseudonym for a customer: `cust_` and 16 hex characters of HMAC-SHA256(key, E.164 number).

    `whatsapp:+34600123456`, `+34600123456` and the WaId `34600123456` give the same pseudonym. Keyed because
    phone numbers are enumerable: Spain's mobiles are a few hundred million numbers, so a plain hash is reversed
    by hashing them all in minutes; without the key that table cannot be built. Raises ValueError for a key
    shorter than 16 bytes.
    """
    if len(key) < 16:
        raise ValueError("customer_key needs a key of at least 16 bytes")
    number = wa_id.strip().removeprefix("whatsapp:").strip()
    number = number if number.startswith("+") else "+" + number
    return "cust_" + hmac.new(key, number.encode(), hashlib.sha256).hexdigest()[:16]


MASKER = Masker()
"""The process-wide masker: logs and traces share its registry of names."""
