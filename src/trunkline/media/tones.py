"""Test and signalling audio: sines, DTMF, silence, noise, and a level meter.

Everything is 8 kHz mono s16le (``media.audio``) and deterministic: the same arguments
give the same bytes, noise included (it takes a seed). Levels are in dBFS relative to a
full-scale square wave, so a full-scale sine reads -3.01 dBFS; amplitudes are
fractions of full scale (1.0 = 32767).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from trunkline.media.audio import SAMPLE_RATE
from trunkline.media.errors import MediaUsageError

__all__ = ["DTMF_FREQUENCIES", "dtmf_tone", "rms_dbfs", "silence", "sine", "white_noise"]

_NYQUIST = SAMPLE_RATE / 2
_FULL_SCALE = 32767.0

# ITU-T Q.23 §2: the keypad's rows use the low group, its columns the high group.
_LOW_GROUP = (697.0, 770.0, 852.0, 941.0)
_HIGH_GROUP = (1209.0, 1336.0, 1477.0, 1633.0)
_KEYPAD = ("123A", "456B", "789C", "*0#D")

#: Digit -> (low, high) frequency pair in Hz, per ITU-T Q.23.
DTMF_FREQUENCIES: dict[str, tuple[float, float]] = {
    key: (_LOW_GROUP[row], _HIGH_GROUP[col])
    for row, keys in enumerate(_KEYPAD)
    for col, key in enumerate(keys)
}

#: Each DTMF component's amplitude: -12 dBFS peak, so the pair peaks at -6 dBFS and
#: survives G.711 without clipping (Q.24 puts the two groups within a few dB).
DTMF_AMPLITUDE = 0.25


def _samples(ms: int) -> int:
    if not isinstance(ms, int) or ms < 0:
        raise MediaUsageError(f"ms must be a non-negative int, got {ms!r}")
    return ms * SAMPLE_RATE // 1000


def _check_amplitude(amplitude: float) -> None:
    if not 0.0 <= amplitude <= 1.0:
        raise MediaUsageError(f"amplitude must be within 0..1 of full scale, got {amplitude}")


def _to_pcm(x: npt.NDArray[np.float64]) -> bytes:
    return np.clip(np.rint(x * _FULL_SCALE), -32768, 32767).astype("<i2").tobytes()


def _sine(freq_hz: float, n: int) -> npt.NDArray[np.float64]:
    return np.sin(2 * np.pi * freq_hz * np.arange(n) / SAMPLE_RATE)


def sine(freq_hz: float, ms: int, amplitude: float = 0.3) -> bytes:
    """A sine of ``freq_hz`` for ``ms`` milliseconds, starting at phase 0.

    Raises:
        MediaUsageError: a frequency outside 0 .. 4000 Hz (exclusive), negative ``ms``,
            or an amplitude outside 0..1.
    """
    if not 0.0 <= freq_hz < _NYQUIST:
        raise MediaUsageError(f"frequency must be within 0..{_NYQUIST:.0f} Hz, got {freq_hz}")
    _check_amplitude(amplitude)
    return _to_pcm(amplitude * _sine(freq_hz, _samples(ms)))


def dtmf_tone(digit: str, ms: int = 100) -> bytes:
    """The DTMF tone of ``digit`` (0-9, *, #, A-D; case-insensitive) for ``ms`` ms.

    Raises:
        MediaUsageError: not a DTMF digit, or negative ``ms``.
    """
    pair = DTMF_FREQUENCIES.get(digit.upper()) if isinstance(digit, str) else None
    if pair is None:
        raise MediaUsageError(f"not a DTMF digit: {digit!r}")
    n = _samples(ms)
    return _to_pcm(DTMF_AMPLITUDE * (_sine(pair[0], n) + _sine(pair[1], n)))


def silence(ms: int) -> bytes:
    """``ms`` milliseconds of digital silence.

    Raises:
        MediaUsageError: negative ``ms``.
    """
    return bytes(2 * _samples(ms))


def white_noise(ms: int, amplitude: float, seed: int) -> bytes:
    """Gaussian white noise whose RMS is ``amplitude`` of full scale (0.1 = -20 dB).

    Peaks beyond full scale are clipped (rare below amplitude 0.25). The same
    ``seed`` gives the same bytes.

    Raises:
        MediaUsageError: negative ``ms`` or an amplitude outside 0..1.
    """
    _check_amplitude(amplitude)
    rng = np.random.default_rng(seed)
    return _to_pcm(rng.normal(0.0, amplitude, _samples(ms)))


def rms_dbfs(pcm: bytes) -> float:
    """RMS level in dBFS (full-scale square wave = 0); ``-inf`` for silence or no audio.

    Raises:
        MediaUsageError: odd-length ``pcm``.
    """
    if len(pcm) % 2:
        raise MediaUsageError(f"PCM must be whole 16-bit samples, got {len(pcm)} bytes")
    if not pcm:
        return -math.inf
    x = np.frombuffer(pcm, "<i2").astype(np.float64)
    rms = float(np.sqrt(np.mean(x * x)))
    return 20.0 * math.log10(rms / 32768.0) if rms else -math.inf
