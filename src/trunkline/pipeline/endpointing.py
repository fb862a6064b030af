"""Endpointing: when the caller's turn is over, and when the caller has said nothing at all.

Theory of operation
-------------------
Sans-IO and frame-timed: time is the index of the inbound 20 ms frame (the VAD's count),
so a test drives it with integers and a stalled event loop cannot shorten a silence.

The endpointer is in one of three states:

- ``IDLE``: no utterance. If the no-input timer is armed (the agent finished speaking),
  reaching its deadline is ``NO_INPUT``.
- ``SPEECH``: the caller is talking (VAD talkspurt). Talking for longer than
  ``MAX_UTTERANCE_MS`` ends the turn anyway, so a stuck VAD (loud steady noise) cannot
  keep a call waiting forever.
- ``TRAILING``: the talkspurt stopped. A new talkspurt before the deadline continues the
  same utterance (a pause between words); reaching ``last_speech + silence`` ends the
  turn (``SILENCE``). The silence is per agent and per flow state (``ListenSpec.
  endpoint_silence_ms``).

Early endpointing is decided outside (a partial transcript that completes the state's
grammar); :meth:`Endpointer.end_early` ends the utterance and reports how many frames
sooner than the silence endpoint that was: the remaining silence when trailing, or the
whole endpoint silence (a lower bound) when the caller had not even paused yet.

:meth:`poll` is called once per frame and costs one integer comparison until
``deadline`` is reached.
"""

from __future__ import annotations

import enum
import math
import sys

from trunkline.media.audio import FRAME_MS

#: Deadline meaning "nothing scheduled".
NEVER = sys.maxsize
#: An utterance is cut after this long even if the VAD still hears speech: no prompt of
#: a phone flow asks for a 20-second answer, and a stuck VAD must not hang the call.
MAX_UTTERANCE_MS = 20_000


def frames_for(ms: int) -> int:
    """Whole frames covering ``ms`` milliseconds (at least one)."""
    return max(1, math.ceil(ms / FRAME_MS))


class EndpointState(enum.Enum):
    IDLE = "idle"
    SPEECH = "speech"
    TRAILING = "trailing"


class Endpoint(enum.StrEnum):
    """How a listening period ended."""

    SILENCE = "silence"  # endpoint silence after speech
    MAX_LENGTH = "max_length"  # MAX_UTTERANCE_MS of speech
    NO_INPUT = "no_input"  # the no-input timeout passed with no speech
    EARLY = "early"  # a partial transcript completed the grammar (see end_early)


class Endpointer:
    """Per-call endpointing state machine. All times are inbound frame indexes."""

    __slots__ = (
        "_current_silence",
        "_max_frames",
        "_no_input_at",
        "_silence",
        "deadline",
        "last_speech",
        "started_at",
        "state",
    )

    def __init__(self, silence_ms: int = 700, max_utterance_ms: int = MAX_UTTERANCE_MS) -> None:
        self._silence = frames_for(silence_ms)
        self._current_silence = self._silence  # the silence of the utterance in progress
        self._max_frames = frames_for(max_utterance_ms)
        self._no_input_at = NEVER
        self.state = EndpointState.IDLE
        self.started_at = 0
        self.last_speech = 0
        self.deadline = NEVER  # the frame at which poll() has something to report

    @property
    def silence_frames(self) -> int:
        return self._silence

    @property
    def in_utterance(self) -> bool:
        return self.state is not EndpointState.IDLE

    @property
    def no_input_armed(self) -> bool:
        return self._no_input_at != NEVER

    def configure(self, silence_ms: int) -> None:
        """Set the endpoint silence for the next utterances (the current one keeps its own)."""
        self._silence = frames_for(silence_ms)

    def shorten(self, silence_ms: int) -> None:
        """Use a shorter silence for the current utterance (a complete but extendable match)."""
        frames = frames_for(silence_ms)
        if self.state is EndpointState.TRAILING and self.last_speech + frames < self.deadline:
            self.deadline = self.last_speech + frames
        self._current_silence = frames

    def arm_no_input(self, frame: int, timeout_ms: int) -> None:
        """Start the no-input timer (the agent finished speaking at ``frame``)."""
        self._no_input_at = frame + frames_for(timeout_ms)
        if self.state is EndpointState.IDLE:
            self.deadline = self._no_input_at

    def disarm_no_input(self) -> None:
        self._no_input_at = NEVER
        if self.state is EndpointState.IDLE:
            self.deadline = NEVER

    def speech_started(self, frame: int) -> bool:
        """A talkspurt began. Returns True when it begins a new utterance."""
        self._no_input_at = NEVER
        new = self.state is EndpointState.IDLE
        if new:
            self.started_at = frame
            self._current_silence = self._silence
        self.state = EndpointState.SPEECH
        self.last_speech = frame
        self.deadline = self.started_at + self._max_frames
        return new

    def speech_stopped(self, last_speech: int) -> None:
        """The talkspurt ended; its last voiced frame was ``last_speech``."""
        if self.state is not EndpointState.SPEECH:
            return
        self.state = EndpointState.TRAILING
        self.last_speech = last_speech
        self.deadline = min(last_speech + self._current_silence, self.started_at + self._max_frames)

    def poll(self, frame: int) -> Endpoint | None:
        """What ended at ``frame``, if anything. Call once per frame."""
        if frame < self.deadline:
            return None
        state = self.state
        self._to_idle()
        if state is EndpointState.IDLE:
            return Endpoint.NO_INPUT
        if state is EndpointState.SPEECH or frame >= self.started_at + self._max_frames:
            return Endpoint.MAX_LENGTH
        return Endpoint.SILENCE

    def end_early(self, frame: int) -> int:
        """End the utterance now; returns the frames saved against the silence endpoint."""
        if self.state is EndpointState.TRAILING:
            saved = max(0, self.deadline - frame)
        elif self.state is EndpointState.SPEECH:
            saved = self._current_silence  # they had not paused: at least the whole silence
        else:
            saved = 0
        self._to_idle()
        return saved

    def abort(self) -> None:
        """Forget the current utterance (DTMF took the turn, the call ended)."""
        self._to_idle()

    def _to_idle(self) -> None:
        self.state = EndpointState.IDLE
        self._no_input_at = NEVER
        self.deadline = NEVER
