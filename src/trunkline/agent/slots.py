"""Slot values: the words each slot type understands, parsing, and validation.

Each slot type reads a value two ways:

- *exactly*, from the words the grammar matcher captured for the slot (the recognizer ran
  with the state's grammar, so the words are one of the forms below);
- *by search*, from free text (the general language model or an external ASR heard
  "um yes my number is one two three four five"), longest known phrase first, so
  "not right" wins over "right".

Values are JSON-able so snapshots and records can hold them: digits are strings (leading
zeros matter), dates ISO strings, yes/no booleans, list values their canonical name.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from trunkline.agent.spec import (
    DateFormat,
    DateRule,
    DigitsRule,
    InputMode,
    ListRule,
    SlotSpec,
    YesNoRule,
)

DIGIT_WORDS: Mapping[str, str] = {
    "zero": "0", "oh": "0", "one": "1", "two": "2", "three": "3", "four": "4",
    "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9",
}  # fmt: skip
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MONTHS = (
    "january", "february", "march", "april", "may", "june", "july", "august",
    "september", "october", "november", "december",
)  # fmt: skip
_ORDINAL_UNITS = (
    "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth",
)  # fmt: skip
_ORDINAL_TEENS = (
    "tenth", "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth", "sixteenth",
    "seventeenth", "eighteenth", "nineteenth",
)  # fmt: skip
# ORDINALS[n - 1] is the spoken form of day n, as words ("twenty first" is two words: the
# en-us dictionary has no hyphenated "twenty-first" for every day).
ORDINALS: tuple[tuple[str, ...], ...] = (
    *((u,) for u in _ORDINAL_UNITS),
    *((t,) for t in _ORDINAL_TEENS),
    ("twentieth",),
    *(("twenty", u) for u in _ORDINAL_UNITS),
    ("thirtieth",),
    ("thirty", "first"),
)
RELATIVE_DAYS: Mapping[tuple[str, ...], int] = {
    ("today",): 0,
    ("tomorrow",): 1,
    ("day", "after", "tomorrow"): 2,
    ("the", "day", "after", "tomorrow"): 2,
}
DEFAULT_YES = (
    "yes", "yeah", "yep", "sure", "correct", "right", "okay", "yes please",
    "that's right", "that is right", "that's correct", "of course",
)  # fmt: skip
DEFAULT_NO = (
    "no", "nope", "nah", "wrong", "incorrect", "no thanks", "no thank you", "not really",
    "that's wrong", "not right", "not correct", "that's not right", "that is not right",
)  # fmt: skip
# Digit keys for yes/no questions ("press one for yes, two for no").
DTMF_YES, DTMF_NO = "1", "2"

_NUMERAL = re.compile(r"^[0-9]+$")
_T = TypeVar("_T")
# Longest phrase searched for in free text; the longest built-in phrase has 5 words.
_MAX_PHRASE_WORDS = 8


@dataclass(frozen=True, slots=True)
class Heard:
    """A value heard for a slot; ``valid`` False carries why (said nothing to the caller)."""

    slot: str
    value: Any
    valid: bool
    reason: str = ""


Resolver = Callable[[dt.date], dt.date | None]


@functools.lru_cache(maxsize=32)
def date_forms(rule: DateRule) -> Mapping[tuple[str, ...], Resolver]:
    """Every spoken date form the rule allows, mapped to a function of today."""
    forms: dict[tuple[str, ...], Resolver] = {}
    if DateFormat.RELATIVE in rule.formats:
        for phrase, offset in RELATIVE_DAYS.items():
            forms[phrase] = _offset(offset)
    if DateFormat.WEEKDAY in rule.formats:
        for index, day in enumerate(WEEKDAYS):
            for prefix in ((), ("next",), ("this",)):
                forms[(*prefix, day)] = _weekday(index)
    if DateFormat.MONTH_DAY in rule.formats:
        for m, month in enumerate(MONTHS, start=1):
            for d, ordinal in enumerate(ORDINALS, start=1):
                resolver = _month_day(m, d)
                forms[(month, *ordinal)] = resolver
                forms[(month, "the", *ordinal)] = resolver
                forms[("the", *ordinal, "of", month)] = resolver
    return forms


@functools.lru_cache(maxsize=32)
def yes_no_forms(rule: YesNoRule) -> Mapping[tuple[str, ...], bool]:
    """Phrase words -> True/False."""
    forms = {tuple(p.split()): True for p in rule.yes}
    forms.update({tuple(p.split()): False for p in rule.no})
    return forms


def list_forms(rule: ListRule) -> dict[tuple[str, ...], str]:
    """Phrase words -> canonical value."""
    return {tuple(p.split()): canonical for canonical, ps in rule.values.items() for p in ps}


def parse_exact(slot: SlotSpec, words: tuple[str, ...], today: dt.date) -> Heard | None:
    """The value when ``words`` are exactly one form of the slot, else None."""
    rule = slot.rule
    if isinstance(rule, DigitsRule):
        digits = _digits(words)
        return None if digits is None else _check_digits(slot, rule, digits)
    if isinstance(rule, DateRule):
        return _date_exact(slot, rule, words, today)
    if isinstance(rule, YesNoRule):
        yn = yes_no_forms(rule).get(words)
        return None if yn is None else Heard(slot.name, yn, True)
    value = list_forms(rule).get(words)
    return None if value is None else Heard(slot.name, value, True)


def find_in_text(slot: SlotSpec, words: tuple[str, ...], today: dt.date) -> Heard | None:
    """Search free text for a value of the slot (the longest known phrase wins)."""
    rule = slot.rule
    if isinstance(rule, DigitsRule):
        run = _longest_digit_run(words)
        return None if run is None else _check_digits(slot, rule, run)
    if isinstance(rule, DateRule):
        if DateFormat.ISO in rule.formats:
            for i in range(len(words) - 2):
                if _iso_words(words[i : i + 3]) is not None:
                    return _date_exact(slot, rule, words[i : i + 3], today)
        found = _search(words, date_forms(rule))
        return None if found is None else _resolve_date(slot, rule, found, today)
    if isinstance(rule, YesNoRule):
        yn = _search(words, yes_no_forms(rule))
        return None if yn is None else Heard(slot.name, yn, True)
    value = _search(words, list_forms(rule))
    return None if value is None else Heard(slot.name, value, True)


def from_dtmf(slot: SlotSpec, digits: str) -> Heard | None:
    """A value typed on the keypad: digits slots take the digits, yes/no takes 1 or 2."""
    rule = slot.rule
    if isinstance(rule, DigitsRule):
        if not digits.isdigit():
            return Heard(slot.name, digits, False, "keys other than digits")
        return _check_digits(slot, rule, digits)
    if isinstance(rule, YesNoRule) and digits in (DTMF_YES, DTMF_NO):
        return Heard(slot.name, digits == DTMF_YES, True)
    return None


def accepts_dtmf(slot: SlotSpec) -> bool:
    """Whether keypad entry can fill the slot."""
    return slot.input is not InputMode.SPEECH and isinstance(slot.rule, DigitsRule | YesNoRule)


def accepts_speech(slot: SlotSpec) -> bool:
    """Whether spoken words can fill the slot."""
    return slot.input is not InputMode.DTMF


def spoken(slot: SlotSpec, value: Any) -> Any:
    """How a value is read out: digits one by one ("1 2 3", not "one hundred twenty
    three"), dates as "Friday, January 10"; others as they are."""
    if isinstance(value, str) and isinstance(slot.rule, DigitsRule):
        return " ".join(value)
    if isinstance(value, str) and isinstance(slot.rule, DateRule):
        try:
            day = dt.date.fromisoformat(value)
        except ValueError:
            return value
        weekday, month = WEEKDAYS[day.weekday()], MONTHS[day.month - 1]
        return f"{weekday.capitalize()}, {month.capitalize()} {day.day}"
    return value


def _digits(words: Iterable[str]) -> str | None:
    out = []
    for w in words:
        d = DIGIT_WORDS.get(w)
        if d is not None:
            out.append(d)
        elif _NUMERAL.match(w):
            out.append(w)
        else:
            return None
    return "".join(out) if out else None


def _longest_digit_run(words: tuple[str, ...]) -> str | None:
    best = ""
    current: list[str] = []
    for w in (*words, ""):
        d = DIGIT_WORDS.get(w) or (w if _NUMERAL.match(w) else None)
        if d is not None:
            current.append(d)
            continue
        run = "".join(current)
        if len(run) > len(best):
            best = run
        current = []
    return best or None


def _check_digits(slot: SlotSpec, rule: DigitsRule, digits: str) -> Heard:
    if len(digits) < rule.min_length:
        return Heard(slot.name, digits, False, f"too short ({len(digits)} digits)")
    if len(digits) > rule.max_length:
        return Heard(slot.name, digits, False, f"too long ({len(digits)} digits)")
    return Heard(slot.name, digits, True)


def _date_exact(
    slot: SlotSpec, rule: DateRule, words: tuple[str, ...], today: dt.date
) -> Heard | None:
    iso = _iso_words(words) if DateFormat.ISO in rule.formats else None
    if iso is not None:
        try:
            day = dt.date.fromisoformat(iso)
        except ValueError:
            return Heard(slot.name, iso, False, "no such date")
        return _check_date(slot, rule, day, today)
    resolver = date_forms(rule).get(words)
    return None if resolver is None else _resolve_date(slot, rule, resolver, today)


def _iso_words(words: tuple[str, ...]) -> str | None:
    """ "2025-01-10" arrives as three words (hyphens split words); join them back."""
    if len(words) == 3 and [len(w) for w in words] == [4, 2, 2] and all(map(str.isdigit, words)):
        return "-".join(words)
    return None


def _resolve_date(slot: SlotSpec, rule: DateRule, resolver: Resolver, today: dt.date) -> Heard:
    day = resolver(today)
    if day is None:
        return Heard(slot.name, None, False, "no such date")
    return _check_date(slot, rule, day, today)


def _check_date(slot: SlotSpec, rule: DateRule, day: dt.date, today: dt.date) -> Heard:
    if not rule.allow_past and day < today:
        return Heard(slot.name, day.isoformat(), False, "date is in the past")
    return Heard(slot.name, day.isoformat(), True)


def _offset(days: int) -> Resolver:
    return lambda today: today + dt.timedelta(days=days)


def _weekday(index: int) -> Resolver:
    # The next such day strictly after today: on a Friday, "friday" means a week ahead.
    def resolve(today: dt.date) -> dt.date:
        ahead = (index - today.weekday()) % 7 or 7
        return today + dt.timedelta(days=ahead)

    return resolve


def _month_day(month: int, day: int) -> Resolver:
    # The next such date on or after today; None when it does not exist (february thirtieth).
    def resolve(today: dt.date) -> dt.date | None:
        for year in (today.year, today.year + 1):
            try:
                candidate = dt.date(year, month, day)
            except ValueError:
                continue
            if candidate >= today:
                return candidate
        return None

    return resolve


def _search(words: tuple[str, ...], table: Mapping[tuple[str, ...], _T]) -> _T | None:
    n = len(words)
    for length in range(min(n, _MAX_PHRASE_WORDS), 0, -1):
        for start in range(n - length + 1):
            hit = table.get(words[start : start + length])
            if hit is not None:
                return hit
    return None
