"""Resampling: pitch and level kept in the passband, aliases removed, exact lengths."""

from __future__ import annotations

import numpy as np
import pytest

from trunkline.media import resample as resample_module
from trunkline.media.errors import MediaUsageError
from trunkline.media.resample import MAX_RATE, resample, resample_float
from trunkline.media.tones import rms_dbfs


def _tone(freq: float, rate: int, seconds: float = 1.0, amplitude: float = 0.5) -> bytes:
    n = np.arange(int(rate * seconds))
    x = amplitude * 32767 * np.sin(2 * np.pi * freq * n / rate)
    return np.rint(x).astype("<i2").tobytes()


def _middle(pcm: bytes, rate: int) -> bytes:
    """Drop 50 ms at each end, where the zero padding fades the signal."""
    edge = rate // 20 * 2
    return pcm[edge:-edge]


def _zero_crossing_hz(pcm: bytes, rate: int) -> float:
    x = np.frombuffer(pcm, "<i2").astype(np.float64)
    rising = np.count_nonzero((x[:-1] < 0) & (x[1:] >= 0))
    return rising * rate / len(x)


def _peak_hz(pcm: bytes, rate: int) -> float:
    x = np.frombuffer(pcm, "<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * rate / len(x))


@pytest.mark.parametrize(
    ("from_rate", "to_rate"),
    [(16000, 8000), (22050, 8000), (48000, 8000), (8000, 16000), (8000, 44100)],
)
def test_1khz_keeps_its_pitch_and_level(from_rate: int, to_rate: int) -> None:
    source = _tone(1000.0, from_rate)
    out = resample(source, from_rate, to_rate)
    middle = _middle(out, to_rate)
    assert abs(_zero_crossing_hz(middle, to_rate) - 1000.0) < 5.0
    assert abs(_peak_hz(middle, to_rate) - 1000.0) < 2.0
    assert abs(rms_dbfs(middle) - rms_dbfs(_middle(source, from_rate))) < 0.05


def test_3400hz_is_still_in_the_passband() -> None:
    source = _tone(3400.0, 16000)
    out = _middle(resample(source, 16000, 8000), 8000)
    assert abs(rms_dbfs(out) - rms_dbfs(_middle(source, 16000))) < 0.1


def test_3900hz_is_attenuated_from_16k_to_8k() -> None:
    source = _tone(3900.0, 16000)
    out = _middle(resample(source, 16000, 8000), 8000)
    assert rms_dbfs(out) < rms_dbfs(source) - 20.0


@pytest.mark.parametrize("freq", [4100.0, 5000.0, 7000.0])
def test_tones_above_the_new_nyquist_do_not_alias(freq: float) -> None:
    source = _tone(freq, 16000)
    out = _middle(resample(source, 16000, 8000), 8000)
    assert rms_dbfs(out) < rms_dbfs(source) - 70.0


def test_upsampling_leaves_no_image() -> None:
    out = _middle(resample(_tone(1000.0, 8000), 8000, 16000), 16000)
    x = np.frombuffer(out, "<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    freqs = np.fft.rfftfreq(len(x), 1 / 16000)
    image = spectrum[(freqs > 6900) & (freqs < 7100)].max()  # 8000 - 1000 Hz
    assert 20 * np.log10(image / spectrum.max()) < -70.0


def test_dc_passes_exactly() -> None:
    source = np.full(4410, 1000, "<i2").tobytes()
    out = np.frombuffer(resample(source, 44100, 8000), "<i2")
    assert set(out[100:-100].tolist()) == {1000}


@pytest.mark.parametrize(
    ("n", "from_rate", "to_rate", "expected"),
    [
        (22050, 22050, 8000, 8000),
        (1, 22050, 8000, 1),
        (3, 16000, 8000, 2),
        (0, 16000, 8000, 0),
        (5, 8000, 16000, 10),
    ],
)
def test_output_length(n: int, from_rate: int, to_rate: int, expected: int) -> None:
    assert len(resample(bytes(2 * n), from_rate, to_rate)) == 2 * expected


def test_same_rate_is_identity() -> None:
    pcm = _tone(440.0, 8000, 0.1)
    assert resample(pcm, 8000, 8000) == pcm


def test_loud_input_clips_instead_of_wrapping() -> None:
    square = np.tile(np.array([32767] * 8 + [-32768] * 8, "<i2"), 200).tobytes()
    out = np.frombuffer(resample(square, 16000, 8000), "<i2")
    # Band-limiting a full-scale square overshoots (Gibbs); it must saturate, not wrap.
    assert out.max() == 32767 and out.min() == -32768


def test_block_path_matches_phase_table(monkeypatch: pytest.MonkeyPatch) -> None:
    x = np.frombuffer(_tone(1000.0, 22050, 0.2), "<i2").astype(np.float64)
    table = resample_float(x, 22050, 8000)
    monkeypatch.setattr(resample_module, "_MAX_TABLE_WEIGHTS", 0)
    monkeypatch.setattr(resample_module, "_BLOCK_WEIGHTS", 5000)  # several blocks
    blocks = resample_float(x, 22050, 8000)
    np.testing.assert_allclose(blocks, table, atol=1e-6)


def test_misuse_is_a_usage_error() -> None:
    with pytest.raises(MediaUsageError):
        resample(b"\x00", 16000, 8000)
    with pytest.raises(MediaUsageError):
        resample(b"", 0, 8000)
    with pytest.raises(MediaUsageError):
        resample(b"", 8000, MAX_RATE + 1)
    with pytest.raises(MediaUsageError):
        resample_float(np.zeros((2, 2)), 16000, 8000)
    assert issubclass(MediaUsageError, ValueError)
