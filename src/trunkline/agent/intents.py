"""Intent matching for free speech, when the grammar did not match the whole utterance.

With the state's grammar loaded, the recognizer only returns grammar sentences and
:class:`~trunkline.agent.grammar.GrammarMatcher` decides. With the general language model
(or an external ASR), callers say "uh yes I'd like to check on my order please"; here an
intent matches when every content word of one of its example phrases occurs in the
utterance (stop words such as "I", "to", "please" do not count), the example with most
content words winning; failing that, a close string match (difflib ratio) on the
content words catches small recognition slips ("order stature").
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from trunkline.agent.spec import IntentSpec

_STOPWORDS_TEXT = """
    a an the i i'd i'm i'll me my mine to of on in at for with and or is it it's its be
    please want wanna would like can could you your we our just about some need uh um
    er ah oh hi hello yes yeah okay so well do does this that there
"""
STOPWORDS = frozenset(_STOPWORDS_TEXT.split())
# How close the content words must be, as a difflib ratio, when not all of them occur.
FUZZY_RATIO = 0.8


class IntentIndex:
    """Content words of every example phrase of a list of intents, in priority order."""

    def __init__(self, intents: Sequence[IntentSpec]) -> None:
        self._examples: list[tuple[str, frozenset[str], str]] = []
        for intent in intents:
            for example in intent.examples:
                content = [w for w in example if w not in STOPWORDS] or list(example)
                self._examples.append((intent.name, frozenset(content), " ".join(content)))

    def best(self, words: Sequence[str]) -> str | None:
        """The intent the words most plausibly ask for, or None."""
        if not words:
            return None
        heard = frozenset(words)
        best: tuple[int, str] | None = None
        for name, content, _ in self._examples:
            if content <= heard and (best is None or len(content) > best[0]):
                best = (len(content), name)
        if best is not None:
            return best[1]
        text = " ".join(w for w in words if w not in STOPWORDS)
        if not text:
            return None
        scored = [
            (difflib.SequenceMatcher(None, text, joined).ratio(), name)
            for name, _, joined in self._examples
        ]
        ratio, name = max(scored, default=(0.0, ""), key=lambda pair: pair[0])
        return name if ratio >= FUZZY_RATIO else None
