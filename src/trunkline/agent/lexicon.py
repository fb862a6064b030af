"""Words: how phrases are normalized, and which words the embedded recognizer knows.

The same normalization applies to the spec's example phrases, to the grammar, and to
what the recognizer hears, so "Talk to a person!" in a spec and "talk to a person" from
pocketsphinx compare equal.

A grammar word missing from pocketsphinx's dictionary makes the whole JSGF grammar fail
to load, so the spec validator checks every grammar word here and reports the line.
"""

from __future__ import annotations

import functools
import logging
import os
import re

_log = logging.getLogger(__name__)

_NOT_WORD = re.compile(r"[^a-z0-9'{}_]+")
_ALT_PRONUNCIATION = re.compile(r"\(\d+\)$")


def words(text: str) -> tuple[str, ...]:
    """Lower-case words of ``text``: punctuation and hyphens split, apostrophes kept.

    ``"Order #12345, please!"`` -> ``("order", "12345", "please")``. Braces and
    underscores survive so that ``{value}`` placeholders in carrier phrases stay whole.
    """
    lowered = text.lower().replace("\u2019", "'").replace("\u2018", "'")
    out = []
    for raw in _NOT_WORD.split(lowered):
        word = raw.strip("'")
        if word:
            out.append(word)
    return tuple(out)


def dictionary_path() -> str | None:
    """Where pocketsphinx's en-us pronunciation dictionary lives, if it is installed."""
    try:
        import pocketsphinx
    except ImportError:
        return None
    path = os.path.join(pocketsphinx.get_model_path(), "en-us", "cmudict-en-us.dict")
    return path if os.path.exists(path) else None


@functools.cache
def known_words() -> frozenset[str] | None:
    """Every word of the en-us dictionary (about 135,000), loaded once; None without it."""
    path = dictionary_path()
    if path is None:
        _log.warning("pocketsphinx dictionary not found; grammar words are not checked")
        return None
    out: set[str] = set()
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            head, _, _ = line.partition(" ")
            if head:
                out.add(_ALT_PRONUNCIATION.sub("", head))
    return frozenset(out)


def unknown_words(phrase: tuple[str, ...]) -> list[str]:
    """Words of ``phrase`` the recognizer's dictionary lacks (empty when it is absent)."""
    known = known_words()
    if known is None:
        return []
    return [w for w in phrase if w not in known]
