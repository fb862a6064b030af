"""Word error rate: Levenshtein alignment of a hypothesis against a reference, word by word.

``wer(reference, hypothesis)`` normalises both texts (``lab.textnorm``, version
``NORMALIZER_VERSION``), aligns their words with the fewest substitutions (S), deletions
(D) and insertions (I), and gives ``(S + D + I) / N`` for a reference of N words, with
the alignment itself, so a report can show which words went wrong.

Among alignments of equal cost, the backtrace prefers a match or substitution, then a
deletion, then an insertion: "a b" against "x" is one substitution and one deletion.

An empty reference has no rate: WER is 0 when the hypothesis is empty too, and None
when it is not (every word is an insertion and there is nothing to divide by). Over many
utterances, add the counts up (``WerResult.combine``) rather than averaging rates.

The distance table is computed a row at a time with numpy (the insertion step is a
running minimum), so a 1,000-word transcript aligns in milliseconds; its size is capped
by ``MAX_CELLS``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from trunkline.lab.textnorm import NORMALIZER_VERSION, normalize

__all__ = ["MAX_CELLS", "NORMALIZER_VERSION", "AlignedWord", "WerResult", "align", "wer"]

#: Largest distance table (reference words + 1) x (hypothesis words + 1): 64 MiB of
#: int32, a 4,000-word transcript against another. A call's transcript is hundreds.
MAX_CELLS = 16_000_000

Op = Literal["ok", "sub", "del", "ins"]


@dataclass(frozen=True, slots=True)
class AlignedWord:
    """One step of the alignment: ``ref``/``hyp`` words (None for the side that has none)."""

    op: Op
    ref: str | None
    hyp: str | None


@dataclass(frozen=True, slots=True)
class WerResult:
    """Counts of an alignment and the alignment itself.

    Attributes:
        substitutions: S.
        deletions: D, reference words the hypothesis lacks.
        insertions: I, hypothesis words the reference lacks.
        reference_words: N.
        alignment: the steps, in reference order.
        normalizer: the normaliser version the texts went through.
    """

    substitutions: int
    deletions: int
    insertions: int
    reference_words: int
    alignment: tuple[AlignedWord, ...] = ()
    normalizer: str = NORMALIZER_VERSION

    @property
    def errors(self) -> int:
        """S + D + I."""
        return self.substitutions + self.deletions + self.insertions

    @property
    def hits(self) -> int:
        """Reference words recognised correctly."""
        return self.reference_words - self.substitutions - self.deletions

    @property
    def wer(self) -> float | None:
        """(S + D + I) / N; 0 for two empty texts, None for words against an empty reference."""
        if self.reference_words:
            return self.errors / self.reference_words
        return 0.0 if self.errors == 0 else None

    @staticmethod
    def combine(results: Iterable[WerResult]) -> WerResult:
        """The counts of several alignments added up (the alignment is not kept).

        Raises:
            ValueError: results normalised by different versions.
        """
        s = d = i = n = 0
        versions = set()
        for r in results:
            s, d, i, n = (
                s + r.substitutions,
                d + r.deletions,
                i + r.insertions,
                n + r.reference_words,
            )
            versions.add(r.normalizer)
        if len(versions) > 1:
            raise ValueError(f"WERs under different normaliser versions: {sorted(versions)}")
        return WerResult(s, d, i, n, (), versions.pop() if versions else NORMALIZER_VERSION)


def wer(reference: str, hypothesis: str) -> WerResult:
    """Normalise both texts and align their words (see the module docstring).

    Raises:
        ValueError: the texts are too long to align (``MAX_CELLS``).
    """
    return align(normalize(reference).split(), normalize(hypothesis).split())


def align(reference: Sequence[str], hypothesis: Sequence[str]) -> WerResult:
    """Align two word sequences as they are (no normalisation).

    Raises:
        ValueError: ``(len(reference) + 1) * (len(hypothesis) + 1) > MAX_CELLS``.
    """
    n, m = len(reference), len(hypothesis)
    if (n + 1) * (m + 1) > MAX_CELLS:
        raise ValueError(f"{n} x {m} words is too long to align (MAX_CELLS = {MAX_CELLS})")
    vocabulary: dict[str, int] = {}
    ref_ids = np.array([vocabulary.setdefault(w, len(vocabulary)) for w in reference], np.int32)
    hyp_ids = np.array([vocabulary.setdefault(w, len(vocabulary)) for w in hypothesis], np.int32)
    cols = np.arange(m + 1, dtype=np.int32)
    table = np.empty((n + 1, m + 1), dtype=np.int32)
    table[0] = cols
    for i in range(1, n + 1):
        prev = table[i - 1]
        row = np.empty(m + 1, dtype=np.int32)
        row[0] = i
        row[1:] = np.minimum(prev[:-1] + (hyp_ids != ref_ids[i - 1]), prev[1:] + 1)
        # Insertions: row[j] = min(row[j], row[j - 1] + 1), a running minimum of row - j.
        table[i] = np.minimum.accumulate(row - cols) + cols
    return _backtrace(table, reference, hypothesis)


def _backtrace(
    table: npt.NDArray[np.int32], reference: Sequence[str], hypothesis: Sequence[str]
) -> WerResult:
    steps: list[AlignedWord] = []
    counts = {"sub": 0, "del": 0, "ins": 0}
    i, j = len(reference), len(hypothesis)
    while i > 0 or j > 0:
        here = table[i, j]
        if i > 0 and j > 0:
            same = reference[i - 1] == hypothesis[j - 1]
            if here == table[i - 1, j - 1] + (0 if same else 1):
                op: Op = "ok" if same else "sub"
                steps.append(AlignedWord(op, reference[i - 1], hypothesis[j - 1]))
                i, j = i - 1, j - 1
                if not same:
                    counts["sub"] += 1
                continue
        if i > 0 and here == table[i - 1, j] + 1:
            steps.append(AlignedWord("del", reference[i - 1], None))
            counts["del"] += 1
            i -= 1
        else:
            steps.append(AlignedWord("ins", None, hypothesis[j - 1]))
            counts["ins"] += 1
            j -= 1
    steps.reverse()
    return WerResult(counts["sub"], counts["del"], counts["ins"], len(reference), tuple(steps))
