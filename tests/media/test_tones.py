"""Tone, DTMF, silence and noise generators, and the level meter."""

from __future__ import annotations

import math

import numpy as np
import pytest

from trunkline.media.errors import MediaUsageError
from trunkline.media.tones import (
    DTMF_FREQUENCIES,
    dtmf_tone,
    rms_dbfs,
    silence,
    sine,
    white_noise,
)


def _samples(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, "<i2").astype(np.float64)


def _goertzel_power(pcm: bytes, freq: float) -> float:
    """Power of one frequency (the classic DTMF detector)."""
    x = _samples(pcm)
    coeff = 2 * math.cos(2 * math.pi * freq / 8000)
    s1 = s2 = 0.0
    for v in x:
        s1, s2 = v + coeff * s1 - s2, s1
    return s1 * s1 + s2 * s2 - coeff * s1 * s2


def test_sine_length_pitch_and_level() -> None:
    pcm = sine(1000.0, 250)
    assert len(pcm) == 250 * 8 * 2
    x = _samples(pcm)
    spectrum = np.abs(np.fft.rfft(x))
    assert np.argmax(spectrum) * 8000 / len(x) == 1000.0
    assert abs(x.max() - 0.3 * 32767) <= 1
    assert abs(rms_dbfs(pcm) - 20 * math.log10(0.3 / math.sqrt(2))) < 0.01
    assert x[0] == 0.0  # starts at phase 0


def test_full_scale_sine_does_not_wrap() -> None:
    x = _samples(sine(2000.0, 10, amplitude=1.0))
    assert x.max() == 32767 and x.min() == -32767


@pytest.mark.parametrize("digit", sorted(DTMF_FREQUENCIES))
def test_dtmf_tone_has_exactly_its_q23_pair(digit: str) -> None:
    pcm = dtmf_tone(digit)
    assert len(pcm) == 100 * 16
    low, high = DTMF_FREQUENCIES[digit]
    powers = {
        f: _goertzel_power(pcm, f)
        for f in (697.0, 770.0, 852.0, 941.0, 1209.0, 1336.0, 1477.0, 1633.0)
    }
    strongest = sorted(powers, key=powers.__getitem__)[-2:]
    assert sorted(strongest) == [low, high]
    others = [p for f, p in powers.items() if f not in (low, high)]
    assert max(others) < 0.01 * min(powers[low], powers[high])


def test_dtmf_table_is_q23() -> None:
    assert DTMF_FREQUENCIES["1"] == (697.0, 1209.0)
    assert DTMF_FREQUENCIES["5"] == (770.0, 1336.0)
    assert DTMF_FREQUENCIES["9"] == (852.0, 1477.0)
    assert DTMF_FREQUENCIES["0"] == (941.0, 1336.0)
    assert DTMF_FREQUENCIES["*"] == (941.0, 1209.0)
    assert DTMF_FREQUENCIES["#"] == (941.0, 1477.0)
    assert DTMF_FREQUENCIES["D"] == (941.0, 1633.0)
    assert len(DTMF_FREQUENCIES) == 16


def test_dtmf_accepts_lowercase_letters_and_rejects_the_rest() -> None:
    assert dtmf_tone("a", 40) == dtmf_tone("A", 40)
    for bad in ("E", "", "12", "+"):
        with pytest.raises(MediaUsageError):
            dtmf_tone(bad)


def test_dtmf_does_not_clip() -> None:
    x = _samples(dtmf_tone("D", 500))
    assert np.abs(x).max() < 0.51 * 32767


def test_silence() -> None:
    assert silence(20) == bytes(320)
    assert silence(0) == b""
    assert rms_dbfs(silence(100)) == -math.inf


def test_white_noise_is_seeded_flat_and_at_its_level() -> None:
    a = white_noise(1000, 0.1, seed=1)
    assert a == white_noise(1000, 0.1, seed=1)
    assert a != white_noise(1000, 0.1, seed=2)
    assert abs(rms_dbfs(a) - (-20.0)) < 0.3
    spectrum = np.abs(np.fft.rfft(_samples(a))) ** 2
    half = len(spectrum) // 2
    ratio_db = 10 * math.log10(spectrum[1:half].mean() / spectrum[half:].mean())
    assert abs(ratio_db) < 1.0  # white: as much energy above 2 kHz as below


def test_rms_dbfs_reference_is_a_full_scale_square() -> None:
    square = np.tile(np.array([32767, -32768], "<i2"), 400).tobytes()
    assert abs(rms_dbfs(square)) < 0.001
    assert rms_dbfs(b"") == -math.inf
    with pytest.raises(MediaUsageError):
        rms_dbfs(b"\x00")


@pytest.mark.parametrize(
    "call",
    [
        lambda: sine(4000.0, 10),
        lambda: sine(-1.0, 10),
        lambda: sine(440.0, -1),
        lambda: sine(440.0, 10, amplitude=1.5),
        lambda: silence(-5),
        lambda: white_noise(10, -0.1, seed=0),
        lambda: dtmf_tone("1", ms=-1),
    ],
)
def test_misuse_is_a_usage_error(call) -> None:
    with pytest.raises(MediaUsageError):
        call()
