"""Pronunciation variants for telephone speech, added to a decoder's dictionary.

Theory of operation
-------------------
The en-us acoustic model and its dictionary (CMUdict) describe wideband American
speech. Two things a phone caller does that the dictionary does not expect:

- **The band stops at 4 kHz.** /s/ puts most of its energy above it, so at a word's
  edge it often arrives as (near) silence: "six" sounds like "ix", "yes" like "ye".
  The grammar search then either drops the word or swaps in one without the fricative
  ("seven" -> "one"). A variant without a word-initial /s/ and one without a
  word-final /s/ or /z/ let the search match what is left. A word-initial /z/ keeps
  its voicing below 4 kHz and stays ("zero" without it matched the "r oh" of "four
  oh"); a word-final one is mostly devoiced in English, like an /s/. Inside a word the
  fricative sits between two phones that still constrain it, so it is kept.
- **Non-rhotic accents** (British, Australian, ...) drop /r/ before a consonant or at
  the end of a word, and end "-er" words on a schwa: "order" is AO D AH, not AO R D ER.

``add_variants`` adds these to a pocketsphinx dictionary as alternate pronunciations
(``six(2)``) for the words of a grammar. They are rules over phones, applied to every
word the same way, so they hold for any agent's grammar. Measured on the Acme phrases
in six espeak-ng voices that are not the benchmark's (``bench/asr_wer.py --dev``): WER
26.5% without variants, 21.3% with these (with the worker's other settings; dropping
every /s z/ of a word instead: 24.5%).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

__all__ = ["add_variants", "grammar_words", "telephone_variants"]

#: Fricatives that lose most of their energy above 4 kHz, at a word's start and end.
INITIAL_FRICATIVES = frozenset({"S"})
FINAL_FRICATIVES = frozenset({"S", "Z"})
VOWELS = frozenset(
    {"AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW"}
)
#: Alternates a dictionary keeps per word at most (CMUdict has up to ~6); the loop that
#: looks them up stops here even if a broken dictionary claims more.
MAX_ALTERNATES = 32

_RULE_REF = re.compile(r"<[^<>]*>")
_WORD = re.compile(r"[a-z][a-z'.\-]*")
_JSGF_KEYWORDS = frozenset({"public", "grammar", "import"})


class Dictionary(Protocol):
    """The part of ``pocketsphinx.Decoder`` the variants need."""

    def lookup_word(self, word: str) -> str | None: ...

    def add_word(self, word: str, phones: str, update: bool = ...) -> Any: ...


def grammar_words(jsgf: str) -> set[str]:
    """The words of a JSGF grammar text (rule names, keywords and the header left out)."""
    body = "\n".join(line for line in jsgf.splitlines() if not line.startswith(("#", "grammar ")))
    body = _RULE_REF.sub(" ", body.lower())
    return {w for w in _WORD.findall(body) if w not in _JSGF_KEYWORDS}


def _drop_edge_fricative(phones: Sequence[str], at: int) -> tuple[str, ...] | None:
    fricatives = INITIAL_FRICATIVES if at == 0 else FINAL_FRICATIVES
    if len(phones) < 2 or phones[at] not in fricatives:
        return None
    out = list(phones)
    del out[at]
    return tuple(out)


def _non_rhotic(phones: Sequence[str]) -> tuple[str, ...] | None:
    out: list[str] = []
    for i, phone in enumerate(phones):
        following = phones[i + 1] if i + 1 < len(phones) else None
        if phone == "R" and (following is None or following not in VOWELS):
            continue  # "start" S T AA T
        out.append("AH" if phone == "ER" and following is None else phone)  # "number"
    return tuple(out) if out and tuple(out) != tuple(phones) else None


def telephone_variants(phones: Sequence[str]) -> list[tuple[str, ...]]:
    """Variants of one pronunciation (see the module docstring), without duplicates."""
    found: list[tuple[str, ...]] = []
    for variant in (
        _drop_edge_fricative(phones, 0),
        _drop_edge_fricative(phones, -1),
        _non_rhotic(phones),
    ):
        if variant is not None and variant != tuple(phones) and variant not in found:
            found.append(variant)
    return found


def add_variants(dictionary: Dictionary, words: Iterable[str]) -> int:
    """Add the telephone variants of ``words`` as alternate pronunciations.

    Words the dictionary lacks are skipped (the grammar compiler reports them). Returns
    the number of pronunciations added.
    """
    added = 0
    for word in sorted(set(words)):
        base = dictionary.lookup_word(word)
        if base is None:
            continue
        prons = [tuple(base.split())]
        n = 2
        while n <= MAX_ALTERNATES:
            alt = dictionary.lookup_word(f"{word}({n})")
            if alt is None:
                break
            prons.append(tuple(alt.split()))
            n += 1
        have = set(prons)
        for pron in list(prons):
            for variant in telephone_variants(pron):
                if variant in have or n > MAX_ALTERNATES:
                    continue
                have.add(variant)
                dictionary.add_word(f"{word}({n})", " ".join(variant), False)
                n += 1
                added += 1
    return added
