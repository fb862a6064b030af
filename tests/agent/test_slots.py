"""Slot values: parsing spoken forms and free text, validation, keypad, read-back."""

from __future__ import annotations

from types import MappingProxyType

import pytest

from tests.agent.conftest import TODAY
from trunkline.agent.lexicon import words
from trunkline.agent.slots import (
    DEFAULT_NO,
    DEFAULT_YES,
    find_in_text,
    from_dtmf,
    parse_exact,
    spoken,
)
from trunkline.agent.spec import (
    DateFormat,
    DateRule,
    DigitsRule,
    InputMode,
    ListRule,
    SlotRule,
    SlotSpec,
    SlotType,
    YesNoRule,
)


def slot(rule: SlotRule, kind: SlotType, name: str = "s") -> SlotSpec:
    return SlotSpec(name, kind, rule, None, None, (("{value}",),), InputMode.ANY, False, None)


DIGITS = slot(DigitsRule(3, 5), SlotType.DIGITS)
DATE = slot(DateRule(tuple(DateFormat), False), SlotType.DATE)
YES_NO = slot(YesNoRule(DEFAULT_YES, DEFAULT_NO), SlotType.YES_NO)
SIZE = slot(
    ListRule(MappingProxyType({"small": ("small", "little"), "large": ("large", "big")})),
    SlotType.LIST,
)


@pytest.mark.parametrize(
    ("text", "value", "valid"),
    [
        ("one two three", "123", True),
        ("oh oh seven", "007", True),
        ("4 5 6 7", "4567", True),
        ("12345", "12345", True),
        ("one two", "12", False),
        ("one two three four five six", "123456", False),
    ],
)
def test_digits_exact(text: str, value: str, valid: bool) -> None:
    heard = parse_exact(DIGITS, words(text), TODAY)
    assert heard is not None and (heard.value, heard.valid) == (value, valid)


def test_digits_in_free_text_take_the_longest_run() -> None:
    heard = find_in_text(DIGITS, words("I have one account and it is nine 8 seven six"), TODAY)
    assert heard is not None and heard.value == "9876"
    assert parse_exact(DIGITS, words("it is one two three"), TODAY) is None
    assert find_in_text(DIGITS, words("no numbers here"), TODAY) is None


@pytest.mark.parametrize(
    ("text", "iso"),
    [
        ("today", "2025-01-06"),
        ("tomorrow", "2025-01-07"),
        ("monday", "2025-01-13"),  # today is a Monday: "monday" is next week's
        ("this wednesday", "2025-01-08"),
        ("march the third", "2025-03-03"),
        ("the thirty first of december", "2025-12-31"),
        ("january sixth", "2025-01-06"),
        ("2025-02-01", "2025-02-01"),
    ],
)
def test_dates(text: str, iso: str) -> None:
    heard = parse_exact(DATE, words(text), TODAY)
    assert heard is not None and heard.valid and heard.value == iso


def test_bad_dates_are_heard_but_invalid() -> None:
    for text, reason in [
        ("february thirtieth", "no such date"),
        ("2024-12-31", "date is in the past"),
        ("2025-13-01", "no such date"),
    ]:
        heard = find_in_text(DATE, words(f"um {text} I guess"), TODAY)
        assert heard is not None and (heard.valid, heard.reason) == (False, reason), text
    past_ok = slot(DateRule((DateFormat.ISO,), True), SlotType.DATE)
    heard = parse_exact(past_ok, words("2024-12-31"), TODAY)
    assert heard is not None and heard.valid


def test_yes_no_longest_phrase_wins() -> None:
    cases = {"yeah sure": True, "that's not right": False, "no thank you": False, "yes": True}
    for text, value in cases.items():
        heard = find_in_text(YES_NO, words(text), TODAY)
        assert heard is not None and heard.value is value, text
    assert find_in_text(YES_NO, words("maybe later"), TODAY) is None


def test_list_synonyms_map_to_the_canonical_value() -> None:
    heard = find_in_text(SIZE, words("a big one please"), TODAY)
    assert heard is not None and heard.value == "large"
    assert parse_exact(SIZE, ("little",), TODAY) is not None
    assert parse_exact(SIZE, ("huge",), TODAY) is None


def test_keypad_values() -> None:
    heard = from_dtmf(DIGITS, "1234")
    assert heard is not None and heard.valid and heard.value == "1234"
    bad = from_dtmf(DIGITS, "12*4")
    assert bad is not None and not bad.valid
    yes, no = from_dtmf(YES_NO, "1"), from_dtmf(YES_NO, "2")
    assert yes is not None and no is not None and (yes.value, no.value) == (True, False)
    assert from_dtmf(YES_NO, "3") is None
    assert from_dtmf(DATE, "0101") is None


def test_read_back_forms() -> None:
    assert spoken(DIGITS, "00712") == "0 0 7 1 2"
    assert spoken(DATE, "2025-01-10") == "Friday, January 10"
    assert spoken(DATE, "not a date") == "not a date"
    assert spoken(YES_NO, True) is True
