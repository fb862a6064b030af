"""Sample-rate conversion for offline audio (WAV prompts, TTS output), not the call path.

Band-limited interpolation with a Kaiser-windowed sinc, evaluated at the exact rational
position of every output sample (no drift, any pair of integer rates). When the ratio
reduces to a small fraction (22050 -> 8000 is 160/441) the filter has few distinct
phases, so the weights are computed once per phase and reused (a polyphase filter);
otherwise they are computed per block of outputs.

Quality, for a conversion between rates A and B with Nyquist N = min(A, B) / 2:

- passband 0 .. 0.85 N is flat: ripple well under 0.01 dB (3.4 kHz at 8 kHz output,
  the top of the telephone band);
- stopband from N up is at least ``STOPBAND_DB`` (80 dB) down, so downsampling
  (espeak-ng's 22.05 kHz, 16 kHz ASR audio, 44.1/48 kHz prompts -> 8 kHz) does not
  alias, and upsampling does not leave images;
- between 0.85 N and N the response rolls off (-6 dB at 0.925 N): a 3.9 kHz tone loses
  more than 20 dB on its way from 16 kHz to 8 kHz.

The filter is linear phase and centred, so output sample k is aligned with input time
k * A / B: there is no added delay. Edges are padded with zeros, which fades the first
and last few milliseconds by at most the filter's half length.
"""

from __future__ import annotations

from math import ceil, gcd, pi

import numpy as np
import numpy.typing as npt

from trunkline.media.errors import MediaUsageError

__all__ = ["MAX_RATE", "STOPBAND_DB", "resample", "resample_float"]

Floats = npt.NDArray[np.float64]

#: Stopband attenuation the Kaiser window is designed for (dB).
STOPBAND_DB = 80.0
#: Passband edge as a fraction of the lower Nyquist frequency.
PASSBAND_FRACTION = 0.85
#: The highest rate accepted: what audio interfaces ship (768 kHz); the filter's length
#: grows with the input rate, so an absurd rate would mean an absurd filter.
MAX_RATE = 768_000
#: Filter weights computed at a time (bounds the memory of one block: 8 MiB).
_BLOCK_WEIGHTS = 1 << 20
#: A phase table (phases x taps weights) is precomputed when it fits in this (32 MiB).
_MAX_TABLE_WEIGHTS = 4 << 20

_KAISER_BETA = 0.1102 * (STOPBAND_DB - 8.7)  # Kaiser's formula for A > 50 dB


def _check_rate(name: str, rate: int) -> None:
    if not isinstance(rate, int) or not 0 < rate <= MAX_RATE:
        raise MediaUsageError(f"{name} must be an int in 1..{MAX_RATE}, got {rate!r}")


def resample(pcm: bytes, from_rate: int, to_rate: int) -> bytes:
    """Convert 16-bit signed little-endian mono PCM from ``from_rate`` to ``to_rate`` Hz.

    The output has ``ceil(n * to_rate / from_rate)`` samples for ``n`` input samples,
    rounded to the nearest integer sample and clipped to 16 bits.

    Raises:
        MediaUsageError: odd-length ``pcm`` or a rate outside 1..``MAX_RATE``.
    """
    if len(pcm) % 2:
        raise MediaUsageError(f"PCM must be whole 16-bit samples, got {len(pcm)} bytes")
    _check_rate("from_rate", from_rate)
    _check_rate("to_rate", to_rate)
    if from_rate == to_rate:
        return bytes(pcm)
    samples = np.frombuffer(pcm, "<i2").astype(np.float64)
    out = resample_float(samples, from_rate, to_rate)
    return np.clip(np.rint(out), -32768, 32767).astype("<i2").tobytes()


def resample_float(samples: Floats, from_rate: int, to_rate: int) -> Floats:
    """Resample a 1-D float array (any scale); see the module docstring for the filter.

    Raises:
        MediaUsageError: ``samples`` is not 1-D, or a rate is outside 1..``MAX_RATE``.
    """
    _check_rate("from_rate", from_rate)
    _check_rate("to_rate", to_rate)
    if samples.ndim != 1:
        raise MediaUsageError(f"resample_float takes a 1-D array, got shape {samples.shape}")
    x = samples.astype(np.float64, copy=False)
    if from_rate == to_rate:
        return x.copy()
    n_out = ceil(len(x) * to_rate / from_rate)
    if n_out == 0:
        return np.zeros(0)
    nyquist = min(from_rate, to_rate) / 2
    cutoff = (1 + PASSBAND_FRACTION) / 2 * nyquist  # middle of the transition band
    transition = (1 - PASSBAND_FRACTION) * nyquist
    # Kaiser's length estimate N = (A - 8) / (2.285 * transition in rad/sample),
    # in input samples; the filter spans N / 2 samples either side of each output.
    taps_estimate = (STOPBAND_DB - 8) / (2.285 * 2 * pi * transition / from_rate)
    half = max(2, ceil(taps_estimate / 2))
    taps = 2 * half
    filt = _Filter(2 * cutoff / from_rate, half)

    padded = np.concatenate((np.zeros(half), x, np.zeros(half + 1)))
    offsets = np.arange(-half + 1, half + 1)  # taps relative to floor(position)
    g = gcd(from_rate, to_rate)
    phases = to_rate // g
    table = None
    if phases * taps <= _MAX_TABLE_WEIGHTS:
        table = filt.weights(np.arange(phases) * g / to_rate)

    out = np.empty(n_out)
    block = max(64, _BLOCK_WEIGHTS // taps)
    for start in range(0, n_out, block):
        k = np.arange(start, min(n_out, start + block), dtype=np.int64)
        position = k * from_rate  # input time of output k, times to_rate (exact)
        base = position // to_rate
        remainder = position % to_rate
        if table is not None:
            weights = table[remainder // g]
        else:
            weights = filt.weights(remainder / to_rate)
        window = padded[(base + half)[:, None] + offsets[None, :]]
        out[start : start + len(k)] = np.einsum("ij,ij->i", window, weights)
    return out


class _Filter:
    """Kaiser-windowed sinc with cutoff ``fc`` (cycles/input sample), half length ``half``."""

    def __init__(self, fc: float, half: int) -> None:
        self.fc = fc
        self.half = half
        self.offsets = np.arange(-half + 1, half + 1, dtype=np.float64)
        self.norm = np.i0(_KAISER_BETA)

    def weights(self, frac: Floats) -> Floats:
        """Weights for outputs ``frac`` (0 <= frac < 1) past an input sample, one row each.

        Each row is normalised to sum to 1, so every phase passes DC exactly.
        """
        d = self.offsets[None, :] - frac[:, None]  # input sample minus output time
        ratio = np.clip(d / (self.half + 1), -1.0, 1.0)
        window = np.i0(_KAISER_BETA * np.sqrt(1.0 - ratio * ratio)) / self.norm
        w: Floats = np.sinc(self.fc * d) * window
        w /= w.sum(axis=1, keepdims=True)
        return w
