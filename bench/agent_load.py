"""The callers of ``agent_density.py``: Twilio Media Streams callers that hold a conversation.

Theory of operation
-------------------
Each :class:`ScriptedCaller` is the lab's WebSocket caller (``LabWsCaller``: pre-encoded
u-law out, an ear on the audio it plays out, Twilio's playout and mark echoes), driven
by a small state machine inside its 20 ms pacer tick, so a thousand of them cost no
task and no timer each:

- ``GREETING``: the agent speaks first; wait until it has finished (the ear heard
  speech, nothing is left to play and ``HANGOVER_S`` of silence has passed);
- ``THINK``: a short pause, then queue the next utterance (``agent_script.caller_text``);
- ``SPEAKING``: the utterance's frames go out one per tick; the tick that sends the last
  one notes the time (``time.monotonic()`` right after the send);
- ``WAITING``: the first media message with speech in it ends the wait; its arrival
  time minus the last speech frame's send time is the turn latency, as the caller
  hears it (before playout, which adds up to one tick);
- ``LISTENING``: the reply plays out; once it has finished, back to ``THINK``.

A reply that does not come within ``REPLY_TIMEOUT_S`` counts as missed and the caller
speaks again, but measures no more turns: a late reply would be taken for the answer to
the next turn. Timing uses one clock (``time.monotonic()``) in one process.
"""

from __future__ import annotations

import enum
import time

import agent_script
from trunkline.lab.ear import MIN_LOUD_SAMPLES, ULAW_LOUD
from trunkline.lab.legs import LabWsCaller

#: Pause between the end of the agent's reply and the caller's answer.
THINK_S = 0.3
#: Longest wait for the agent's reply before the turn counts as missed.
REPLY_TIMEOUT_S = 8.0


class Phase(enum.Enum):
    GREETING = "greeting"
    THINK = "think"
    SPEAKING = "speaking"
    WAITING = "waiting"
    LISTENING = "listening"


class ScriptedCaller(LabWsCaller):
    """A caller that answers the agent turn after turn (see the module docstring).

    ``utterances`` maps each text the caller says to its u-law frames (shared by all
    callers). ``turns`` collects ``(turn, last_speech_sent, latency_s)`` per answered
    turn (``turn`` counts from 0, the answer to the greeting); ``missed`` the send time
    of every turn without a reply.
    """

    utterances: dict[str, list[bytes]]

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.phase = Phase.GREETING
        self.turn = 0
        self.speak_at = 0.0
        self.sent_at = 0.0
        self.turns: list[tuple[int, float, float]] = []
        self.missed: list[float] = []
        self.in_step = True  # no reply was missed: replies still pair with turns

    def on_tick(self, now: float) -> None:
        phase = self.phase
        sending = phase is Phase.SPEAKING and bool(self.out)
        super().on_tick(now)
        if sending:
            if not self.out:  # that tick sent the utterance's last frame
                self.sent_at = time.monotonic()
                self.phase = Phase.WAITING
            return
        if phase is Phase.WAITING:
            if now - self.sent_at > REPLY_TIMEOUT_S:
                self.missed.append(self.sent_at)
                self.in_step = False
                self._think(now)
        elif phase is Phase.THINK:
            if now >= self.speak_at:
                self.out.extend(self.utterances[agent_script.caller_text(self.turn)])
                self.turn += 1
                self.phase = Phase.SPEAKING
        elif phase is Phase.LISTENING or phase is Phase.GREETING:
            ear = self.ear
            if ear.segments and not self._playout and not ear.speaking(now):
                self._think(now)

    def _think(self, now: float) -> None:
        self.phase = Phase.THINK
        self.speak_at = now + THINK_S

    def _on_media(self, payload: bytes) -> None:
        if (
            self.phase is Phase.WAITING
            and payload.translate(ULAW_LOUD).count(1) >= MIN_LOUD_SAMPLES
        ):
            if self.in_step:
                self.turns.append((self.turn - 1, self.sent_at, time.monotonic() - self.sent_at))
            self.phase = Phase.LISTENING
        super()._on_media(payload)
