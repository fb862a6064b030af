"""Deepgram live-streaming messages, parsed; utterance bookkeeping, sans-IO.

Deepgram's live endpoint answers with JSON text messages. The one that matters is
``Results``::

    {"type": "Results", "start": 1.5, "duration": 0.8, "is_final": true,
     "speech_final": false, "from_finalize": false,
     "channel": {"alternatives": [{"transcript": "my order", "confidence": 0.97,
       "words": [{"word": "my", "start": 1.52, "end": 1.7, "confidence": 0.99,
                  "punctuated_word": "My"}, ...]}]}, ...}

``start``/``duration`` and word times are seconds of the audio the client has sent on
this connection. ``is_final: false`` is an interim guess for the audio so far;
``is_final: true`` closes a segment (its text will not change); ``from_finalize`` marks
the result that answers a ``Finalize`` message; ``speech_final`` is Deepgram's own
endpointing, which we do not use (the pipeline endpoints). Other types (``Metadata``,
``SpeechStarted``, ``UtteranceEnd``) carry nothing we need, except ``Error``.

:func:`parse_result` turns a message into a :class:`Segment` (or None for the other
types), raising ``ValueError`` for anything that is not shaped as Deepgram's.
:class:`Utterance` collects the final segments of the audio between two flushes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from trunkline.providers.asr import Final, WordTiming

__all__ = ["ServerError", "Segment", "Utterance", "normalize", "parse_result"]

_NOT_WORD = re.compile(r"[^\w'\s-]+")


class ServerError(ValueError):
    """An ``{"type": "Error", ...}`` message: the server reports a failure in-band."""


def normalize(text: str) -> str:
    """Lower-case words separated by single spaces, punctuation dropped (``Final.text``)."""
    return " ".join(_NOT_WORD.sub(" ", text.lower()).split())


@dataclass(frozen=True, slots=True)
class Segment:
    """One ``Results`` message, normalised."""

    start: float
    end: float
    text: str
    confidence: float
    words: tuple[WordTiming, ...]
    is_final: bool
    from_finalize: bool


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{what} is not a number")
    return float(value)


def parse_result(text: str) -> Segment | None:
    """Parse one text message; None for message types other than ``Results``.

    Raises:
        ServerError: an ``Error`` message (its description is the message).
        ValueError: not JSON, or a ``Results`` message missing a field we read.
    """
    try:
        doc = json.loads(text)
    except RecursionError:
        raise ValueError("message nests too deep") from None
    if not isinstance(doc, dict):
        raise ValueError("message is not a JSON object")
    if doc.get("type") == "Error":
        # The shape of in-band errors is not documented in detail; take what is there.
        detail = doc.get("description") or doc.get("message") or doc.get("variant") or "no detail"
        raise ServerError(str(detail)[:300])
    if doc.get("type") != "Results":
        return None
    start = _number(doc.get("start", 0.0), "start")
    duration = _number(doc.get("duration", 0.0), "duration")
    channel = doc.get("channel")
    alternatives = channel.get("alternatives") if isinstance(channel, dict) else None
    if not isinstance(alternatives, list):
        raise ValueError("Results has no channel.alternatives")
    best = alternatives[0] if alternatives else {"transcript": "", "confidence": 0.0}
    if not isinstance(best, dict) or not isinstance(best.get("transcript"), str):
        raise ValueError("Results alternative has no transcript")
    words = []
    for w in best.get("words") or []:
        if not isinstance(w, dict) or not isinstance(w.get("word"), str):
            raise ValueError("Results word is not an object with a 'word'")
        word = normalize(w["word"])
        if word:
            words.append(
                WordTiming(word, _number(w.get("start"), "start"), _number(w.get("end"), "end"))
            )
    confidence = _number(best.get("confidence", 0.0), "confidence")
    return Segment(
        start=start,
        end=start + duration,
        text=normalize(best["transcript"]),
        confidence=min(1.0, max(0.0, confidence)),
        words=tuple(words),
        is_final=doc.get("is_final") is True,
        from_finalize=doc.get("from_finalize") is True,
    )


@dataclass(slots=True)
class Utterance:
    """The audio between two flushes, in seconds of the stream, and its final segments.

    ``end`` is None while audio is still coming (not flushed yet).
    """

    start: float
    end: float | None = None
    segments: list[Segment] = field(default_factory=list)
    interim: Segment | None = None  # the latest guess for the audio past the segments

    def text(self, interim: str = "") -> str:
        """The final segments' text, then ``interim`` (the current guess)."""
        return " ".join(t for t in [*(s.text for s in self.segments), interim] if t)

    def covered(self, tolerance: float) -> bool:
        """Every second of the flushed audio has a final segment (within ``tolerance``)."""
        if self.end is None or not self.segments:
            return False
        return max(s.end for s in self.segments) >= self.end - tolerance

    def add(self, seg: Segment) -> None:
        """Take a result for this utterance's audio."""
        if seg.is_final:
            self.segments.append(seg)
            self.interim = None
        else:
            self.interim = seg

    def final(self, *, with_interim: bool = False) -> Final:
        """The ``Final``: text joined, confidence the mean, word times from our start.

        ``with_interim``: also the last interim guess past the final segments (when the
        final results never came, the guess is better than nothing).
        """
        spoken = [s for s in self.segments if s.text]
        if with_interim and self.interim is not None and self.interim.text:
            spoken.append(self.interim)
        text = " ".join(s.text for s in spoken)
        confidence = sum(s.confidence for s in spoken) / len(spoken) if spoken else 0.0
        words = tuple(
            WordTiming(w.word, max(0.0, w.start - self.start), max(0.0, w.end - self.start))
            for s in spoken
            for w in s.words
        )
        return Final(text, confidence if text else 0.0, words)
