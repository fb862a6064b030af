"""The text normaliser WER is computed after, pinned by ``NORMALIZER_VERSION``.

A WER compares words, not spellings: "OK, it's 42." and "okay it is forty two" are the
same utterance. Reports store the version next to every WER, and any change to the rules
below that changes some output must bump it, since WERs under two versions do not compare.

Version 1 (English), in order:

1. Case folded; Unicode decomposed (NFKD) with accents dropped ("Café" -> "cafe");
   curly and modifier apostrophes become ``'``; any other non-ASCII character becomes a
   space. ``[tags]`` and ``<tags>`` (recognizer markers such as ``<unk>``, ``[noise]``)
   are removed.
2. Contractions expanded: "can't" -> "can not", "won't" -> "will not", "let's" -> "let
   us", then "n't" -> " not", "'re" -> " are", "'ve" -> " have", "'ll" -> " will", "'d" ->
   " would", "i'm" -> "i am", and "'s" -> " is" after it, that, there, here, what, where,
   who, how, he, she. Any other "'s" is a possessive: the apostrophe is dropped.
3. Numbers in digits become words:

   - a run of 4 or more digits, or of 2 or more starting with 0, is an identifier (an
     order number, a phone number, a PIN) and is read digit by digit: "1042" -> "one
     zero four two", "007" -> "zero zero seven";
   - 1 to 3 digits are a quantity: "42" -> "forty two", "305" -> "three hundred five"
     (no "and");
   - digits grouped by commas are a quantity whatever the length: "1,500" -> "one
     thousand five hundred" (up to trillions);
   - a decimal point reads "point" then each digit: "3.14" -> "three point one four";
   - ordinals are quantities: "21st" -> "twenty first", "100th" -> "one hundredth";
   - "%" reads "percent", "$12" -> "twelve dollars", "$1.50" -> "one dollar fifty
     cents", "&" -> "and"; a colon between digits ("3:30") is a space.

4. Periods inside a word are dropped ("o.k." -> "ok", "u.s." -> "us"), as are remaining
   apostrophes; every other character that is not a-z becomes a space.
5. Words: "ok" -> "okay", "alright" -> "all right", "cannot" -> "can not", "gonna" ->
   "going to", "wanna" -> "want to"; the fillers "uh", "um", "uhm", "umm", "erm", "hmm",
   "mm" are removed.

The output is lowercase a-z words joined by single spaces, and normalising it again
changes nothing.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["NORMALIZER_VERSION", "normalize", "number_words"]

NORMALIZER_VERSION = "1"

#: Digits with thousands separators are read as a quantity up to this many groups
#: (trillions); longer ones are read digit by digit.
_MAX_GROUPS = 5

_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_SCALES = ("", "thousand", "million", "billion", "trillion")
_ORDINAL_WORDS = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}

_APOSTROPHES = str.maketrans({c: "'" for c in "\u2018\u2019\u02bc\u00b4`"})
_TAGS = re.compile(r"\[[^\]]*\]|<[^>]*>")
_SPECIAL_CONTRACTIONS = {
    "can't": "can not",
    "won't": "will not",
    "shan't": "shall not",
    "ain't": "is not",
    "let's": "let us",
    "y'all": "you all",
}
_SPECIAL = re.compile(r"\b(" + "|".join(map(re.escape, _SPECIAL_CONTRACTIONS)) + r")\b")
_SUFFIXES = (
    (re.compile(r"\b([a-z]+)n't\b"), r"\1 not"),
    (re.compile(r"\b([a-z]+)'re\b"), r"\1 are"),
    (re.compile(r"\b([a-z]+)'ve\b"), r"\1 have"),
    (re.compile(r"\b([a-z]+)'ll\b"), r"\1 will"),
    (re.compile(r"\b([a-z]+)'d\b"), r"\1 would"),
    (re.compile(r"\bi'm\b"), "i am"),
    (re.compile(r"\b(it|that|there|here|what|where|who|how|he|she)'s\b"), r"\1 is"),
)
_MONEY = re.compile(r"\$(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d\d))?(?!\d)")
_GROUPED = re.compile(r"(?<![\d,])\d{1,3}(?:,\d{3})+(?![\d,])")
_DECIMAL = re.compile(r"(\d+)\.(\d+)")
_ORDINAL = re.compile(r"(\d+)(st|nd|rd|th)\b")
_DIGITS = re.compile(r"\d+")
_INNER_PERIOD = re.compile(r"(?<=[a-z])\.(?=[a-z])")
_NOT_LETTER = re.compile(r"[^a-z]+")
_WORDS = {
    "ok": "okay",
    "alright": "all right",
    "cannot": "can not",
    "gonna": "going to",
    "wanna": "want to",
}
_FILLERS = frozenset({"uh", "um", "uhm", "umm", "erm", "hmm", "mm"})


def _below_thousand(n: int) -> list[str]:
    words: list[str] = []
    hundreds, rest = divmod(n, 100)
    if hundreds:
        words += [_ONES[hundreds], "hundred"]
    if rest >= 20:
        words.append(_TENS[rest // 10])
        if rest % 10:
            words.append(_ONES[rest % 10])
    elif rest or not words:
        words.append(_ONES[rest])
    return words


def number_words(n: int) -> str:
    """A non-negative integer below 10**15 in words: 1500 -> "one thousand five hundred".

    Raises:
        ValueError: ``n`` negative or 10**15 or more.
    """
    if not 0 <= n < 1000 ** len(_SCALES):
        raise ValueError(f"number_words takes 0 <= n < 10**15, got {n}")
    if n == 0:
        return "zero"
    words: list[str] = []
    for power in range(len(_SCALES) - 1, -1, -1):
        group = n // 1000**power % 1000
        if group:
            words += _below_thousand(group)
            if _SCALES[power]:
                words.append(_SCALES[power])
    return " ".join(words)


def _digit_by_digit(digits: str) -> str:
    return " ".join(_ONES[int(d)] for d in digits)


def _integer(digits: str) -> str:
    """A run of digits by the identifier-or-quantity rule (see the module docstring)."""
    if len(digits) >= 4 or (len(digits) >= 2 and digits[0] == "0"):
        return _digit_by_digit(digits)
    return number_words(int(digits))


def _quantity(digits: str) -> str:
    """Digits that are known to be a quantity (grouped, ordinal, money)."""
    digits = digits.replace(",", "")
    if len(digits.lstrip("0")) > 3 * _MAX_GROUPS:
        return _digit_by_digit(digits)
    return number_words(int(digits))


def _ordinal(match: re.Match[str]) -> str:
    words = _quantity(match.group(1)).split()
    last = words[-1]
    if last in _ORDINAL_WORDS:
        words[-1] = _ORDINAL_WORDS[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return " " + " ".join(words) + " "


def _money(match: re.Match[str]) -> str:
    whole = _quantity(match.group(1))
    out = whole + (" dollar" if whole == "one" else " dollars")
    if match.group(2) is not None and int(match.group(2)):
        cents = number_words(int(match.group(2)))
        out += " " + cents + (" cent" if cents == "one" else " cents")
    return " " + out + " "


def _numbers(text: str) -> str:
    text = text.replace("%", " percent ").replace("&", " and ")
    text = _MONEY.sub(_money, text)
    text = _GROUPED.sub(lambda m: " " + _quantity(m.group(0)) + " ", text)
    text = _DECIMAL.sub(
        lambda m: f" {_integer(m.group(1))} point {_digit_by_digit(m.group(2))} ", text
    )
    text = _ORDINAL.sub(_ordinal, text)
    return _DIGITS.sub(lambda m: " " + _integer(m.group(0)) + " ", text)


def _fold(text: str) -> str:
    """Step 1 up to the tags: ASCII, lower case, accents dropped, one apostrophe."""
    text = unicodedata.normalize("NFKD", text.translate(_APOSTROPHES).casefold())
    text = "".join(c for c in text if not unicodedata.combining(c))
    # NFKD can yield capitals ("ℌ" -> "H") and new apostrophe variants: fold again.
    text = text.translate(_APOSTROPHES)
    return "".join(c if c.isascii() else " " for c in text).lower()


def normalize(text: str) -> str:
    """Normalise ``text`` for WER (version ``NORMALIZER_VERSION``; see the module docstring)."""
    text = _TAGS.sub(" ", _fold(text))
    text = _SPECIAL.sub(lambda m: _SPECIAL_CONTRACTIONS[m.group(1)], text)
    for pattern, replacement in _SUFFIXES:
        text = pattern.sub(replacement, text)
    text = _numbers(text)
    text = _INNER_PERIOD.sub("", text).replace("'", "")
    words: list[str] = []
    for word in _NOT_LETTER.split(text):
        if word and word not in _FILLERS:
            words.append(_WORDS.get(word, word))
    return " ".join(words)
