"""Speech for the lab's measurement tests: espeak-ng rendered and converted to 8 kHz."""

from __future__ import annotations

import functools
import shutil
import subprocess

import numpy as np
import numpy.typing as npt
import pytest

from trunkline.media.wav import decode_wav

needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="espeak-ng is not installed"
)


@functools.cache
def _render(text: str, voice: str) -> bytes:
    wav = subprocess.run(
        ["espeak-ng", "-v", voice, "--stdout", "--", text],
        check=True,
        capture_output=True,
        timeout=30,
    ).stdout
    return decode_wav(wav)  # resampled to 8 kHz by trunkline.media


def speech(text: str, voice: str = "en-us") -> npt.NDArray[np.int16]:
    """``text`` spoken by espeak-ng at 8 kHz (cached per process; a fresh array each call)."""
    return np.frombuffer(_render(text, voice), "<i2").astype(np.int16)


def first_sound(samples: npt.NDArray[np.int16]) -> int:
    """Index of the first non-zero sample: espeak-ng leads with a few ms of silence."""
    nonzero = np.flatnonzero(samples)
    return int(nonzero[0]) if len(nonzero) else len(samples)
