"""The ASR worker's streaming 8 -> 16 kHz upsampler."""

from __future__ import annotations

import numpy as np

from trunkline.providers.asr_worker import Upsampler2x


def test_upsampler_keeps_batches_seamless() -> None:
    t = np.arange(8000) / 8000
    pcm = (np.sin(2 * np.pi * 440 * t) * 10000).astype("<i2").tobytes()
    whole = Upsampler2x().process(pcm)
    pieces = Upsampler2x()
    batched = b"".join(pieces.process(pcm[i : i + 1600]) for i in range(0, len(pcm), 1600))
    assert batched == whole
    y = np.frombuffer(whole, "<i2").astype(float)
    # The 440 Hz tone survives at 16 kHz: its peak is at 440 Hz.
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    assert abs(np.argmax(spectrum) * 16000 / len(y) - 440) < 5
