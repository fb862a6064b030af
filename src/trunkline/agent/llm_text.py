"""From a chat model's token stream to sentences a TTS can speak, sans-IO.

``SentenceSplitter.feed(delta)`` returns each sentence as soon as it is complete, so the
first sentence is synthesized while the model is still writing the second (the time to
first audio is the time to the first sentence, not to the whole reply). A sentence ends
at ``.``, ``!`` or ``?`` (and any closing quote or bracket) followed by white space, or
at a line break. Not after a common abbreviation ("Dr.", "e.g.") or a lone initial. A
run of text longer than ``MAX_SENTENCE_CHARS`` without an end is cut at its last comma
or space, so an unpunctuated paragraph cannot hold the first audio back.

:func:`speakable` strips what reads badly aloud: Markdown emphasis, headings, bullets
and code marks that chat models add out of habit.
"""

from __future__ import annotations

import re

__all__ = ["MAX_SENTENCE_CHARS", "SentenceSplitter", "speakable"]

#: Longest text held back waiting for a sentence end (about 12 s of speech). Past it,
#: the text is cut at a comma or a space.
MAX_SENTENCE_CHARS = 200

_END = re.compile(r"[.!?]+[\"')\]]*(?=\s)|\n+")
_ABBREVIATIONS = frozenset(
    [
        "mr",
        "mrs",
        "ms",
        "dr",
        "prof",
        "st",
        "sr",
        "jr",
        "vs",
        "etc",
        "e.g",
        "i.e",
        "a.m",
        "p.m",
        "approx",
        "inc",
        "ltd",
        "co",
    ]
)
_MARKDOWN = re.compile(r"(\*\*|__|\*|`+|^#{1,6}\s*|^\s*[-*+]\s+|^\s*\d+\.\s+(?=\S))", re.M)


def speakable(text: str) -> str:
    """``text`` without Markdown marks, white space normalised."""
    return " ".join(_MARKDOWN.sub("", text).split())


class SentenceSplitter:
    """Accumulates text deltas and gives back whole sentences (see the module docstring)."""

    def __init__(self) -> None:
        self._buf = ""

    def feed(self, delta: str) -> list[str]:
        """Add a delta; return the sentences it completes, cleaned for speech."""
        self._buf += delta
        out: list[str] = []
        start = 0
        for m in _END.finditer(self._buf):
            if m.group().startswith((".", "!", "?")) and _abbreviation(
                self._buf[start : m.start()]
            ):
                continue
            out.append(self._buf[start : m.end()])
            start = m.end()
        self._buf = self._buf[start:]
        while len(self._buf) > MAX_SENTENCE_CHARS:
            cut = self._buf.rfind(", ", 0, MAX_SENTENCE_CHARS)
            if cut <= 0:
                cut = self._buf.rfind(" ", 0, MAX_SENTENCE_CHARS)
            cut = cut + 1 if cut > 0 else MAX_SENTENCE_CHARS
            out.append(self._buf[:cut])
            self._buf = self._buf[cut:]
        return [s for s in (speakable(piece) for piece in out) if s]

    def flush(self) -> list[str]:
        """The text left at the end of the reply (a last sentence without its stop)."""
        rest, self._buf = speakable(self._buf), ""
        return [rest] if rest else []

    def drop(self) -> str:
        """Forget the incomplete sentence (the reply broke off); return what it was."""
        rest, self._buf = self._buf, ""
        return rest


def _abbreviation(sentence: str) -> bool:
    """Whether ``sentence`` ends with an abbreviation, an initial or a list number."""
    words = sentence.split()
    if not words:
        return False
    last = words[-1].lower().rstrip(".")
    if len(words) == 1 and last.isdigit():
        return True  # "2." opening a numbered list item
    return last in _ABBREVIATIONS or (len(last) == 1 and last.isalpha() and len(words) > 1)
