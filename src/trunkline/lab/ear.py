"""The caller's ear: when the agent speaks, taken from G.711 payloads as they are heard (sans-IO).

Theory of operation
-------------------
A lab process hears a thousand agents at once, so a frame must cost next to nothing. The
ear never decodes audio. G.711 codes are monotonic in magnitude, so one 256-byte table
maps every code to 1 ("loud": ``|sample| >= LOUD_LEVEL``) or 0, and ``bytes.translate``
then ``count``/``find``/``rfind`` (all in C) give, per frame, how many samples are loud
and where the first and last loud ones sit. Onsets and ends are therefore exact to the
sample, not to the 20 ms frame.

- A frame with at least ``MIN_LOUD_SAMPLES`` loud samples is speech. The first such
  frame after silence opens a segment at its first loud sample.
- A segment ends at its last loud sample; a pause shorter than ``HANGOVER_S`` (between
  words, between the TTS's sentences) stays inside it. This is decided when the next
  loud frame comes, so a target that sends nothing while silent is still heard to stop.

Times are whatever clock the caller passes (the loop's monotonic clock), for the frame's
first sample. The caller's own voice is never fed here: the ear hears only the agent.

``RtpReceiveStats`` does the RFC 3550 receiver bookkeeping (extended sequence numbers,
expected vs received, interarrival jitter per A.8) and records loss bursts, which the
E-model needs to tell random loss from bursty loss.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from trunkline.media.audio import SAMPLE_RATE
from trunkline.rtp.g711 import alaw_decode, ulaw_decode

#: A sample this loud (of 32,768) is speech energy: -36 dBFS, far above G.711's idle
#: codes (u-law 0xFF/0x7F decode to 0, A-law 0xD5 to 8) and above the noise floor of a
#: quiet line, far below espeak-ng's or any TTS's speech peaks.
LOUD_LEVEL = 512
#: Loud samples a 20 ms frame needs to count as speech: a click or a single spike is not.
MIN_LOUD_SAMPLES = 8
#: Silence that ends a segment. Between words TTS pauses 50-200 ms and between sentences
#: up to about 300 ms; a segment is one stretch of talk, not one word.
HANGOVER_S = 0.35


def _loud_table(decode: Callable[[bytes], bytes]) -> bytes:
    """Code -> 1 if the sample it decodes to is loud (the codec's own decoder, once)."""
    samples = memoryview(decode(bytes(range(256)))).cast("h")
    return bytes(1 if abs(sample) >= LOUD_LEVEL else 0 for sample in samples)


#: Code -> 1 if loud, for u-law (PCMU) and A-law (PCMA) payloads.
ULAW_LOUD = _loud_table(ulaw_decode)
ALAW_LOUD = _loud_table(alaw_decode)


class Ear:
    """Speech segments in the audio a caller hears.

    Segments are decided lazily, from the loud frames alone: a target that sends nothing
    while it is silent (no comfort noise, as our runtime does) must still be heard to
    stop. A loud frame within ``hangover_s`` of the last segment's end extends it, a later
    one opens a new segment (and calls ``on_onset``).

    Args:
        table: ``ULAW_LOUD`` or ``ALAW_LOUD``, for the payload's codec.
        hangover_s: silence that separates two segments.
    """

    __slots__ = ("_hangover", "_table", "frames", "on_onset", "segments")

    def __init__(self, table: bytes = ULAW_LOUD, hangover_s: float = HANGOVER_S) -> None:
        self._table = table
        self._hangover = hangover_s
        self.frames = 0
        #: [start, end] of each stretch of speech; the last one's end moves while it lasts.
        self.segments: list[list[float]] = []
        #: Called with the start time of every new segment (the caller script's wake-up).
        self.on_onset: Callable[[float], None] | None = None

    def set_codec(self, table: bytes) -> None:
        self._table = table

    def hear(self, t: float, payload: bytes) -> None:
        """One payload (any length) whose first sample was heard at ``t``."""
        self.frames += 1
        marks = payload.translate(self._table)
        if marks.count(1) < MIN_LOUD_SAMPLES:
            return
        last = t + (marks.rfind(1) + 1) / SAMPLE_RATE
        segments = self.segments
        if segments and t - segments[-1][1] < self._hangover:
            segments[-1][1] = last
            return
        start = t + marks.find(1) / SAMPLE_RATE
        segments.append([start, last])
        if self.on_onset is not None:
            self.on_onset(start)

    # --- questions the caller script asks ---------------------------------------------------

    def speaking(self, now: float) -> bool:
        """Whether the agent's current segment may still be going on at ``now``."""
        return bool(self.segments) and now - self.segments[-1][1] < self._hangover

    def onset_after(self, t: float) -> float | None:
        """The first segment that starts at or after ``t`` (not one already under way)."""
        found = None
        for start, _ in reversed(self.segments):
            if start < t:
                break
            found = start
        return found

    def end_after(self, t: float, now: float) -> float | None:
        """When the agent's speech going on at ``t`` (or the next to start) stopped.

        Used for barge-in: the caller started talking at ``t``; the agent's audio stops
        at the end of the segment playing then. None while that segment may go on.
        """
        for start, end in self.segments:
            if end >= t:
                if now - end < self._hangover:
                    return None
                return max(end, start)
        return None

    def last_end(self) -> float | None:
        return self.segments[-1][1] if self.segments else None

    def speech_between(self, t0: float, t1: float) -> float:
        """Seconds of agent speech within [t0, t1]."""
        total = 0.0
        for start, end in self.segments:
            lo, hi = max(start, t0), min(end, t1)
            if hi > lo:
                total += hi - lo
        return total

    @property
    def hangover_s(self) -> float:
        return self._hangover


#: A forward jump of this many sequence numbers or more is a restart, not loss (RFC 3550
#: A.1's MAX_DROPOUT).
MAX_DROPOUT = 3000
#: A packet at most this far behind is reordered, not a restart (A.1's MAX_MISORDER).
MAX_MISORDER = 100
#: Transit differences this large (10 s, in samples) are a timestamp jump, not jitter.
_TS_JUMP = SAMPLE_RATE * 10


@dataclass(slots=True)
class RtpReceiveStats:
    """RFC 3550 receiver statistics for one SSRC, plus loss bursts for the E-model.

    ``expected`` spans the lowest to the highest sequence number heard (A.3): unlike
    A.1's base, the lowest moves back for a packet that was overtaken by the first
    one heard, so jitter that reorders the start of a stream is not counted as loss.

    Attributes:
        received: packets that arrived (duplicates included, as RFC 3550 counts them).
        jitter: interarrival jitter in timestamp units (A.8).
        bursts: number of runs of consecutive lost packets.
        lost_in_bursts: packets in those runs.
    """

    received: int = 0
    jitter: float = 0.0
    bursts: int = 0
    lost_in_bursts: int = 0
    _base: int = -1
    _max: int = 0  # highest extended sequence number seen
    _transit: float | None = None
    _ssrc: int = -1

    def packet(self, seq: int, ts: int, ssrc: int, arrival_s: float) -> None:
        """Account for one packet (``arrival_s`` on the caller's monotonic clock)."""
        if ssrc != self._ssrc:  # a new source: count it as a fresh stream (A.1 restart)
            if self._ssrc != -1:
                self._base = -1
            self._ssrc = ssrc
        self.received += 1
        if self._base < 0:
            self._base = self._max = seq
            self._transit = None
        else:
            top = self._max
            # seq_distance inlined: this runs for every packet of every call.
            step = ((seq - top + 0x8000) & 0xFFFF) - 0x8000
            if step == 1:
                self._max = top + 1
            elif 0 < step < MAX_DROPOUT:
                self.bursts += 1
                self.lost_in_bursts += step - 1
                self._max = top + step
            elif -MAX_MISORDER < step < 0 and top + step < self._base:
                # Older than the first packet (reordered at the start): the stream
                # began earlier than we thought, and the packet is not a loss.
                self._base = top + step
            # duplicates, and wildly out-of-range packets, change neither max nor bursts
        transit = arrival_s * SAMPLE_RATE - ts
        previous = self._transit
        if previous is not None:
            d = transit - previous
            if d < 0:
                d = -d
            if d < _TS_JUMP:  # a timestamp jump is not jitter
                self.jitter += (d - self.jitter) * 0.0625  # A.8: gain 1/16
        self._transit = transit

    @property
    def expected(self) -> int:
        return 0 if self._base < 0 else self._max - self._base + 1

    @property
    def loss_pct(self) -> float:
        expected = self.expected
        if expected <= 0:
            return 0.0
        return max(0.0, 100.0 * (expected - self.received) / expected)

    @property
    def jitter_ms(self) -> float:
        return self.jitter / SAMPLE_RATE * 1000

    @property
    def mean_burst(self) -> float:
        """Mean length of a loss run (1.0 when loss is random and rare)."""
        return self.lost_in_bursts / self.bursts if self.bursts else 0.0
