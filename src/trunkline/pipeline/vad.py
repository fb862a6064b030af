"""Voice activity detection: webrtcvad per 20 ms frame, an energy gate, and hysteresis.

Theory of operation
-------------------
Each inbound frame is classified voiced or not, then :class:`Hysteresis` turns the
per-frame verdicts into talkspurts:

- speech *starts* after ``start_frames`` voiced frames in a row (a click, a cough or a
  noise onset is shorter), reported by the confirming frame;
- speech *stops* after ``stop_frames`` unvoiced frames in a row; the report carries the
  index of the last voiced frame, because that (not the confirmation) is when the
  caller stopped. Ending the *turn* is the endpointer's business: a talkspurt stop is
  only a pause until the state's endpoint silence has passed.

The classifier is webrtcvad (a GMM over six sub-bands, ~3 µs a frame), behind an energy
gate: frames quieter than ``min_dbfs`` are unvoiced without asking it. The gate does two
jobs. It saves the webrtcvad call on the quiet frames that make up most of a call (the
caller listens while the agent talks), and it hides webrtcvad's onset behaviour: its
noise model adapts only after four or five frames, so any quiet noise (line hiss, a
fresh call's first frames) reads as voiced for long enough to start a talkspurt.
Loud steady noise (over about -40 dBFS) still reads as speech in modes 0-2; mode 3
adapts to it within seconds. The gate first tries a byte test that needs no numpy call
(about 0.5 against 2 µs): a frame whose every sample lies within ±128 (-48 dBFS at
most: digital silence and most line hiss) is under any floor above that, so only
louder frames have their energy summed.

Frames are counted, and every time here is a frame index: legs keep a strict 20 ms
cadence (a lost packet plays as silence), so counting frames is the media clock.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import webrtcvad

from trunkline.media.audio import FRAME_BYTES, FRAME_SAMPLES, SAMPLE_RATE
from trunkline.pipeline.frames import Frame, SpeechStarted, SpeechStopped
from trunkline.pipeline.processor import Processor

#: Voiced frames in a row that start a talkspurt: 60 ms, longer than a click or a cough.
START_FRAMES = 3
#: Unvoiced frames in a row that end a talkspurt: 200 ms, longer than the gaps between
#: syllables and words; the turn itself ends later, after the endpoint silence.
STOP_FRAMES = 10
#: Frames quieter than this (RMS, dBFS) are unvoiced. Active speech on a phone line is
#: around -20 to -30 dBFS; line noise sits below -50.
MIN_DBFS = -45.0
#: Byte -> the high byte of that byte sign-extended to 16 bits. A little-endian s16
#: sample lies in [-128, 127] exactly when its high byte is this of its low byte.
_SIGN_EXTEND = bytes(0xFF if b & 0x80 else 0x00 for b in range(256))
#: Largest sample magnitude of a frame that passes the byte test above.
_SMALL = 128


def energy_floor(min_dbfs: float) -> float:
    """The sum of squared samples of one frame whose RMS level is ``min_dbfs``."""
    rms: float = 32768.0 * 10.0 ** (min_dbfs / 20.0)
    return rms * rms * FRAME_SAMPLES


class Hysteresis:
    """Turns per-frame voiced/unvoiced verdicts into talkspurt starts and stops (sans-IO)."""

    __slots__ = ("_run", "last_speech", "speaking", "start_frames", "stop_frames")

    def __init__(self, start_frames: int = START_FRAMES, stop_frames: int = STOP_FRAMES) -> None:
        if start_frames < 1 or stop_frames < 1:
            raise ValueError("start_frames and stop_frames must be at least 1")
        self.start_frames = start_frames
        self.stop_frames = stop_frames
        self.speaking = False
        self.last_speech = 0  # index of the last voiced frame of the current talkspurt
        self._run = 0  # voiced frames in a row (silent) or unvoiced in a row (speaking)

    def update(self, voiced: bool, frame: int) -> SpeechStarted | SpeechStopped | None:
        """Feed the verdict of frame number ``frame``; returns a transition, if any."""
        if self.speaking:
            if voiced:
                self._run = 0
                self.last_speech = frame
                return None
            self._run += 1
            if self._run >= self.stop_frames:
                self.speaking = False
                self._run = 0
                return SpeechStopped(self.last_speech)
            return None
        if not voiced:
            self._run = 0
            return None
        self._run += 1
        if self._run >= self.start_frames:
            self.speaking = True
            self._run = 0
            self.last_speech = frame
            return SpeechStarted(frame)
        return None

    def reset(self) -> None:
        self.speaking = False
        self._run = 0


class VadProcessor(Processor):
    """Classifies each audio frame and pushes ``SpeechStarted``/``SpeechStopped`` before it.

    ``frame`` is the index of the last audio frame seen (the first is 1): the media clock
    the rest of the pipeline reads. ``classify`` replaces webrtcvad (tests).
    """

    __slots__ = ("_floor", "_is_speech", "_small_is_quiet", "frame", "hysteresis", "voiced_frames")

    def __init__(
        self,
        mode: int = 2,
        *,
        start_frames: int = START_FRAMES,
        stop_frames: int = STOP_FRAMES,
        min_dbfs: float = MIN_DBFS,
        classify: Callable[[bytes], bool] | None = None,
    ) -> None:
        super().__init__()
        if classify is None:
            if not 0 <= mode <= 3:
                raise ValueError(f"webrtcvad mode must be 0..3, got {mode}")
            vad = webrtcvad.Vad(mode)

            def classify(pcm: bytes) -> bool:
                return bool(vad.is_speech(pcm, SAMPLE_RATE))

        self._is_speech = classify
        self._floor = energy_floor(min_dbfs)
        # The byte test may call a frame quiet only if every such frame is under the floor.
        self._small_is_quiet = self._floor > _SMALL * _SMALL * FRAME_SAMPLES
        self.hysteresis = Hysteresis(start_frames, stop_frames)
        self.frame = 0
        self.voiced_frames = 0

    @property
    def speaking(self) -> bool:
        """True inside a talkspurt (between SpeechStarted and SpeechStopped)."""
        return self.hysteresis.speaking

    def voiced(self, pcm: bytes) -> bool:
        """The per-frame verdict: loud enough, and speech to the classifier."""
        if len(pcm) != FRAME_BYTES:
            return False
        if self._small_is_quiet and pcm[1::2] == pcm[0::2].translate(_SIGN_EXTEND):
            return False  # every sample within ±128: under the floor, no sum needed
        samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float32)
        if float(np.dot(samples, samples)) < self._floor:
            return False
        return self._is_speech(pcm)

    def process_frame(self, frame: Frame) -> None:
        if isinstance(frame, bytes):
            self.frame += 1
            voiced = self.voiced(frame)
            if voiced:
                self.voiced_frames += 1
            change = self.hysteresis.update(voiced, self.frame)
            if change is not None:
                self.push(change)
        self.push(frame)
