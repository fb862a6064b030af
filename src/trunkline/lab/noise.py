"""Background noise for synthetic callers: white, pink and babble, mixed at a target SNR.

The SNR is the one listening tests use: the speech's *active* level (ITU-T P.56, see
``lab.p56``) over the noise's mean power across the whole utterance. Pauses in the
speech do not lower the speech side, and the noise is stationary, so its plain mean
power is its level.

- **white**: Gaussian samples, flat spectrum.
- **pink**: white noise shaped in the frequency domain by ``1/sqrt(f)`` (power ``1/f``,
  -3.01 dB per octave), exact at every FFT bin rather than the ripple of a Voss-McCartney
  or IIR approximation. Below ``PINK_FLOOR_HZ`` the spectrum is flat: a true ``1/f``
  puts most of its power in sub-audio rumble that a telephone (300-3400 Hz) never
  passes, and an SNR computed over that power would make the audible noise too quiet.
  The FFT makes the noise circular (its end joins its start), harmless for noise.
- **babble**: several talkers at once. The caller passes speech clips (rendered by the
  TTS: the lab has no recordings); each is brought to the same active level, looped
  to the utterance's length from a random offset, and the clips are summed.

Each noise is scaled to a mean square of exactly 1 over the utterance before mixing, so
the SNR is exact rather than off by the sampling spread of a short draw.

Everything takes a ``numpy.random.Generator``: the same seed gives the same noise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from trunkline.lab.p56 import NOMINAL_SPEECH_DBOV, SpeechLevel, active_speech_level

__all__ = [
    "MAX_SNR_DB",
    "MIN_SNR_DB",
    "NOISE_KINDS",
    "PINK_FLOOR_HZ",
    "NoiseKind",
    "NoisyAudio",
    "add_noise",
    "noise_kind",
    "babble_noise",
    "pink_noise",
    "white_noise",
]

Floats = npt.NDArray[np.float64]
Samples = npt.NDArray[np.int16]
NoiseKind = Literal["white", "pink", "babble"]

NOISE_KINDS: tuple[NoiseKind, ...] = ("white", "pink", "babble")
#: Pink noise is 1/f from here up, flat below (see the module docstring).
PINK_FLOOR_HZ = 50.0
#: SNRs outside this range are not a test condition: below -20 dB the noise drowns any
#: speech, above 80 dB it is below 16-bit quantisation of nominal speech.
MIN_SNR_DB = -20.0
MAX_SNR_DB = 80.0
_SAMPLE_RATE = 8000


@dataclass(frozen=True, slots=True)
class NoisyAudio:
    """Speech with noise added.

    Attributes:
        samples: the mix, 16-bit.
        clipped: samples that went past full scale and were clipped.
        speech_level: the P.56 level the SNR was set against (None: the speech was
            silent and the reference level was used).
        noise_dbov: the noise's mean level, dBov.
    """

    samples: Samples
    clipped: int
    speech_level: SpeechLevel | None
    noise_dbov: float


def noise_kind(name: str) -> NoiseKind:
    """``name`` as a ``NoiseKind``.

    Raises:
        ValueError: not one of ``NOISE_KINDS``.
    """
    for kind in NOISE_KINDS:
        if name == kind:
            return kind
    raise ValueError(f"noise kind must be one of {NOISE_KINDS}, got {name!r}")


def white_noise(n: int, rng: np.random.Generator) -> Floats:
    """``n`` samples of Gaussian noise, scaled to a mean square of exactly 1."""
    return _unit(rng.standard_normal(_length(n)))


def pink_noise(n: int, rng: np.random.Generator) -> Floats:
    """``n`` samples of unit-variance pink noise (power ~ 1/f above ``PINK_FLOOR_HZ``).

    Fewer than 2 samples cannot carry a spectrum; they come back as zeros.
    """
    n = _length(n)
    if n < 2:
        return np.zeros(n)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, d=1.0 / _SAMPLE_RATE)
    spectrum /= np.sqrt(np.maximum(freqs, PINK_FLOOR_HZ))
    spectrum[0] = 0.0  # no DC offset
    x = np.fft.irfft(spectrum, n)
    return _unit(x)


def babble_noise(
    n: int, clips: Sequence[npt.NDArray[np.int16]], rng: np.random.Generator
) -> Floats:
    """``n`` samples of babble: the ``clips`` (one talker each) summed, unit variance.

    Each clip is scaled to the same active level, then looped from a random offset to
    cover ``n`` samples, so the talkers overlap without starting together.

    Raises:
        ValueError: no clip has any active speech.
    """
    n = _length(n)
    talkers = []
    for clip in clips:
        x = np.asarray(clip, dtype=np.float64).ravel()
        level = active_speech_level(np.asarray(clip, dtype=np.int16).ravel())
        if level is None:
            continue
        start = int(rng.integers(0, len(x)))
        reps = math.ceil((n + start) / len(x))
        talkers.append(np.tile(x, reps)[start : start + n] / math.sqrt(level.power))
    if not talkers:
        raise ValueError("babble needs at least one clip with active speech")
    return _unit(np.sum(talkers, axis=0))


def add_noise(
    speech: npt.NDArray[np.int16],
    kind: str,
    snr_db: float,
    rng: np.random.Generator,
    *,
    babble: Sequence[npt.NDArray[np.int16]] = (),
    reference_dbov: float | None = None,
) -> NoisyAudio:
    """Add ``kind`` noise to ``speech`` at ``snr_db`` below its active level.

    Args:
        speech: 8 kHz 16-bit samples.
        kind: ``white``, ``pink`` or ``babble``.
        snr_db: active speech level minus noise level, dB.
        rng: the noise's random source.
        babble: speech clips for ``babble`` (see ``babble_noise``).
        reference_dbov: the speech level to set the noise against, instead of
            measuring it: a call keeps one noise level across turns and pauses. When
            omitted and the speech is silent, ``NOMINAL_SPEECH_DBOV`` stands in.

    Raises:
        ValueError: an unknown kind, an SNR outside ``MIN_SNR_DB``..``MAX_SNR_DB``, or
            babble without a clip of speech.
    """
    kind = noise_kind(kind)
    if not MIN_SNR_DB <= snr_db <= MAX_SNR_DB:  # also refuses NaN
        raise ValueError(f"snr_db must be within {MIN_SNR_DB}..{MAX_SNR_DB}, got {snr_db}")
    if reference_dbov is not None and not -100.0 <= reference_dbov <= 10.0:
        raise ValueError(f"reference_dbov must be within -100..10, got {reference_dbov}")
    x = np.asarray(speech, dtype=np.int16).ravel()
    n = len(x)
    if kind == "white":
        noise = white_noise(n, rng)
    elif kind == "pink":
        noise = pink_noise(n, rng)
    else:
        noise = babble_noise(n, babble, rng)
    measured = active_speech_level(x) if reference_dbov is None else None
    if reference_dbov is not None:
        speech_dbov = reference_dbov
    elif measured is not None:
        speech_dbov = measured.level_dbov
    else:
        speech_dbov = NOMINAL_SPEECH_DBOV
    noise_dbov = speech_dbov - snr_db
    # Unit-variance noise times the RMS of the target level (dBov is relative to 32768).
    mix = x.astype(np.float64) + noise * 32768.0 * 10.0 ** (noise_dbov / 20.0)
    rounded = np.rint(mix)
    clipped = int(np.count_nonzero((rounded > 32767) | (rounded < -32768)))
    out = np.clip(rounded, -32768, 32767).astype(np.int16)
    return NoisyAudio(out, clipped, measured, noise_dbov)


def _unit(x: Floats) -> Floats:
    """Scale to unit variance (mean square 1); silence stays silence."""
    power = float(np.mean(x * x)) if len(x) else 0.0
    return x / math.sqrt(power) if power > 0 else x


def _length(n: int) -> int:
    if not isinstance(n, int | np.integer) or n < 0:
        raise ValueError(f"a sample count must be a non-negative int, got {n!r}")
    return int(n)
