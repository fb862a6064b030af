"""``--app delay``: a reference agent with known delays, to check the lab's own accuracy.

It greets ``first_word_ms`` after answering and answers every caller utterance with a
tone ``reply_ms`` after the caller's last speech sample. Nothing else happens in it, so a
lab that measures it must find exactly those two figures (issue: ±10 ms at p50).

Both delays are timed to the sample, not to the 20 ms frame. Outbound audio leaves on
the pacer's ticks, and the app is called inside the tick that sends next, so it knows
when each queued frame will go: it pads the reply's first frame with as many samples of
silence as put the tone's first sample at the target time. Inbound, a SIP leg's jitter
buffer holds frames for a while; ``leg.inbound_age_s`` says how long, and the app counts
from the frame's arrival. A WebSocket leg delivers frames when they arrive but sends on
its own tick, which this app does not see: over WebSocket its delays are exact only to
within one frame (0-20 ms later than asked).

The caller's end of speech is its last sample louder than ``LOUD_LEVEL``, followed by
``END_SILENCE_S`` of quiet (so ``reply_ms`` must be longer than that).
"""

from __future__ import annotations

import math
from time import monotonic

import numpy as np

from trunkline.lab.ear import LOUD_LEVEL  # speech by the lab's own measure
from trunkline.media.audio import FRAME_BYTES, FRAME_SAMPLES, SAMPLE_RATE
from trunkline.net.leg import LegEvent, MediaLeg

#: Quiet after which the caller's utterance is over.
END_SILENCE_S = 0.3
TONE_HZ = 440.0
TONE_AMPLITUDE = 8000


def tone(ms: int) -> bytes:
    """A cosine burst (its first sample is at full amplitude, so its onset is exact)."""
    n = SAMPLE_RATE * ms // 1000
    t = np.arange(n) / SAMPLE_RATE
    return (np.cos(2 * math.pi * TONE_HZ * t) * TONE_AMPLITUDE).astype("<i2").tobytes()


class DelayApp:
    """The call handler (see the module docstring).

    Args:
        first_word_ms: answer to the greeting's first sample.
        reply_ms: the caller's last speech sample to the reply's first sample.
        tone_ms: length of the greeting and of each reply.
    """

    def __init__(self, first_word_ms: int = 300, reply_ms: int = 700, tone_ms: int = 500) -> None:
        if reply_ms <= END_SILENCE_S * 1000 + 60:
            raise ValueError(f"reply_ms must exceed {END_SILENCE_S * 1000 + 60:.0f} ms")
        if first_word_ms < 100:
            raise ValueError("first_word_ms must be at least 100 ms")
        self.first_word_s = first_word_ms / 1000
        self.reply_s = reply_ms / 1000
        self.tone = tone(tone_ms)

    async def __call__(self, leg: MediaLeg) -> None:
        sink = _DelaySink(self, leg, monotonic())
        leg.attach(sink)
        await leg.wait_closed()


class _DelaySink:
    def __init__(self, app: DelayApp, leg: MediaLeg, answered: float) -> None:
        self.app = app
        self.leg = leg
        self.greet_at: float | None = answered + app.first_word_s
        self.last_loud: float | None = None  # end of the caller's last loud sample

    def on_audio(self, pcm: bytes) -> None:
        now = monotonic()
        if self.greet_at is not None:
            self._play_at(self.greet_at, now)
            self.greet_at = None
        samples = np.frombuffer(pcm, dtype="<i2")
        loud = np.flatnonzero(np.abs(samples.astype(np.int32)) >= LOUD_LEVEL)
        arrived = now - self.leg.inbound_age_s(now)
        if loud.size:
            self.last_loud = arrived + (int(loud[-1]) + 1) / SAMPLE_RATE
        elif self.last_loud is not None and arrived - self.last_loud >= END_SILENCE_S:
            self._play_at(self.last_loud + self.app.reply_s, now)
            self.last_loud = None

    def on_event(self, event: LegEvent) -> None:
        """Nothing to do: DTMF, marks and hold do not change the reference's timing."""

    def _play_at(self, when: float, now: float) -> None:
        """Queue the tone so that its first sample leaves at ``when``.

        The frame queued first goes out in this tick (``now``), the next 20 ms later.
        """
        lead = max(0, round((when - now) * SAMPLE_RATE))
        frames, pad = divmod(lead, FRAME_SAMPLES)
        leg = self.leg
        leg.clear()
        audio = bytes(frames * FRAME_BYTES + pad * 2) + self.app.tone
        leg.send_audio(audio)
