"""Active speech level (ITU-T P.56 method B), the reference level for SNR and loudness.

Speech is mostly pauses, so its plain RMS says more about how much it pauses than how
loud it is. P.56 measures the level over the *active* part only:

1. an envelope ``q`` follows ``|x|`` through two one-pole smoothers with a 30 ms time
   constant;
2. for each of 16 thresholds ``c_j`` (1, 2, 4 ... 32768: one per bit of a 16-bit
   sample), a sample is active while ``q >= c_j``, and for 200 ms after (the hangover
   that bridges the gaps between syllables); ``a_j`` counts active samples;
3. ``A_j = 10 log10(sum(x^2) / a_j)`` is the level if ``c_j`` were the right threshold.
   The right one sits a margin ``M = 15.9 dB`` below the level it yields, so the answer
   is where ``A_j - 20 log10(c_j)`` crosses ``M``, interpolated between thresholds.

Levels are in dBov: dB relative to the power of a full-scale square wave (32768), the
same scale as ``media.tones.rms_dbfs``; a full-scale sine reads -3.01 dBov. Nominal
telephone speech is -26 dBov (P.56, P.800).

The envelope recursions run in blocks, each one a closed-form cumulative sum (exact,
no per-sample Python loop): 10 s of audio takes a few milliseconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from trunkline.media.audio import SAMPLE_RATE

__all__ = ["NOMINAL_SPEECH_DBOV", "SpeechLevel", "active_speech_level", "dbov"]

Floats = npt.NDArray[np.float64]

#: Nominal active level of telephone speech (ITU-T P.56 / P.800), dBov.
NOMINAL_SPEECH_DBOV = -26.0
#: P.56 envelope time constant (s).
_TIME_CONSTANT_S = 0.03
#: P.56 hangover (s): activity lasts this long after the envelope falls below a threshold.
_HANGOVER_S = 0.2
#: P.56 margin (dB) between the active level and the threshold that selects it.
_MARGIN_DB = 15.9
#: Thresholds 2**0 .. 2**15: one per bit of a 16-bit sample.
_THRESHOLDS = 2.0 ** np.arange(16)
#: Full scale of a 16-bit sample: 0 dBov is a square wave of this amplitude.
_FULL_SCALE = 32768.0
#: Samples per envelope block: g**-512 stays below 10 at 8 kHz, so the closed form is exact
#: to double precision.
_BLOCK = 512


@dataclass(frozen=True, slots=True)
class SpeechLevel:
    """A P.56 measurement.

    Attributes:
        level_dbov: active speech level, dBov.
        activity: fraction of the samples that are active (0..1].
    """

    level_dbov: float
    activity: float

    @property
    def power(self) -> float:
        """Active mean square, in squared 16-bit sample units."""
        return float(_FULL_SCALE**2 * 10.0 ** (self.level_dbov / 10.0))


def dbov(power: float) -> float:
    """Mean square of 16-bit samples -> dBov; ``-inf`` for zero."""
    return 10.0 * math.log10(power / _FULL_SCALE**2) if power > 0 else -math.inf


def _one_pole(x: Floats, g: float) -> Floats:
    """``y[n] = g y[n-1] + (1 - g) x[n]`` from ``y[-1] = 0``, block by block in closed form."""
    y = np.empty_like(x)
    powers = g ** np.arange(_BLOCK, dtype=np.float64)  # g**i
    inverse = 1.0 / powers  # g**-i
    prev = 0.0
    for start in range(0, len(x), _BLOCK):
        block = x[start : start + _BLOCK]
        m = len(block)
        acc = np.cumsum(block * inverse[:m])
        out = powers[:m] * (g * prev + (1.0 - g) * acc)
        y[start : start + m] = out
        prev = float(out[-1])
    return y


def active_speech_level(samples: npt.NDArray[np.int16]) -> SpeechLevel | None:
    """P.56 method B active speech level of 8 kHz 16-bit samples.

    Returns:
        the level, or None when nothing in ``samples`` is active (silence, empty input,
        or a signal that never reaches 1 LSB).
    """
    x = np.asarray(samples, dtype=np.float64).ravel()
    n = len(x)
    if n == 0:
        return None
    square_sum = float(np.dot(x, x))
    if square_sum == 0.0:
        return None
    g = math.exp(-1.0 / (_TIME_CONSTANT_S * SAMPLE_RATE))
    q = _one_pole(_one_pole(np.abs(x), g), g)
    hangover = round(_HANGOVER_S * SAMPLE_RATE)
    idx = np.arange(n)
    counts = np.empty(len(_THRESHOLDS))
    for j, c in enumerate(_THRESHOLDS):
        above = q >= c
        # Index of the latest sample at or above c (-hangover-1 before the first one),
        # so a sample counts while it lies within the hangover after that sample.
        last = np.maximum.accumulate(np.where(above, idx, -hangover - 1))
        counts[j] = np.count_nonzero(idx - last <= hangover)
    return _crossing(square_sum, counts, n)


def _crossing(square_sum: float, counts: Floats, n: int) -> SpeechLevel | None:
    """Interpolate the threshold where ``A_j - C_j`` falls to the margin."""
    levels = np.full(len(counts), -np.inf)
    active = counts > 0
    if not active.any():
        return None
    levels[active] = 10.0 * np.log10(square_sum / counts[active])
    deltas = levels - 20.0 * np.log10(_THRESHOLDS)
    below = np.nonzero(deltas <= _MARGIN_DB)[0]
    if len(below) == 0:  # louder than every threshold allows: take the highest
        j = len(counts) - 1
        return _level(levels[j], counts[j], n)
    j = int(below[0])
    if j == 0 or not active[j]:
        k = max(j - 1, 0)
        return _level(levels[k], counts[k], n) if active[k] else None
    t = (deltas[j - 1] - _MARGIN_DB) / (deltas[j - 1] - deltas[j])
    level = levels[j - 1] + t * (levels[j] - levels[j - 1])
    count = counts[j - 1] + t * (counts[j] - counts[j - 1])
    return _level(level, count, n)


def _level(level_lsb_db: float, count: float, n: int) -> SpeechLevel:
    full_scale_db = 20.0 * math.log10(_FULL_SCALE)
    return SpeechLevel(float(level_lsb_db) - full_scale_db, min(1.0, float(count) / n))
