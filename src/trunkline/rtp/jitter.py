"""An adaptive jitter buffer for one inbound RTP stream (sans-IO).

Theory of operation
-------------------
Packets are pushed as they arrive, in any order; the pacer pops exactly one frame per
20 ms. Each packet is one frame (20 ms of G.711, the packetization we offer and what
peers send); a peer sending other packet sizes must be re-framed by the leg first.

Frames live in a ring of ``capacity_frames`` slots indexed by the *extended* sequence
number (RFC 3550 A.1: the 16-bit number plus the count of wraps), so reordering within
the window costs nothing, a duplicate is an occupied slot, and ``pop`` is one list
index. ``_next`` is the frame to play next, ``_highest`` the newest frame received.

Playout starts once the buffer holds ``target`` frames (priming). A frame that is
missing when its turn comes is played as a loss (``None``, the caller conceals it); if
nothing at all is buffered the buffer has run dry (underrun) and primes again, which is
how delay grows when the network gets worse. It shrinks slowly: when the buffer never
fell below ``target`` during a whole second of pops, one frame is dropped.

``target = clamp(ceil(JITTER_FACTOR * jitter / frame) + 1, min, max)`` follows the RFC
3550 A.8 interarrival jitter estimate.

A new SSRC, a sequence number jump beyond the window or a timestamp that disagrees with
the sequence number by more than the window (a restarted sender, or silence suppression
longer than the window) empties the buffer and starts again from the new packet rather
than waiting for frames that will never come.

Accounting (checked by the property tests): every packet pushed ends up exactly once in
``played``, ``late``, ``duplicates``, ``overflows``, ``trimmed``, ``flushed`` or is still
buffered; every pop is exactly one of ``played``, ``lost``, ``underruns`` or ``waiting``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from trunkline.rtp.errors import RtpUsageError
from trunkline.rtp.seq import seq_distance, ts_distance

__all__ = ["JITTER_FACTOR", "SHRINK_WINDOW_POPS", "JitterBuffer", "JitterStats"]

# The A.8 estimate is a mean deviation; three of them cover nearly every packet's delay.
JITTER_FACTOR = 3.0
# Pops (1 s at 20 ms) over which the buffer must have stayed above target to shrink it.
SHRINK_WINDOW_POPS = 50
# RFC 3550 A.1 MAX_MISORDER: a packet this far behind is old, further means a restart.
MAX_MISORDER = 100


@dataclass(slots=True)
class JitterStats:
    """Counters of one jitter buffer (see the accounting note in the module docstring)."""

    received: int = 0  # packets pushed
    played: int = 0  # frames returned by pop
    lost: int = 0  # pops that hit a gap while later frames were buffered
    late: int = 0  # packets that arrived after their frame's turn had passed
    duplicates: int = 0  # packets whose frame was already buffered or played
    reordered: int = 0  # packets that arrived out of order but in time
    ssrc_changes: int = 0  # resets because the SSRC changed
    sequence_jumps: int = 0  # resets because the sequence number jumped
    timestamp_jumps: int = 0  # resets because the timestamp jumped
    overflows: int = 0  # buffered packets discarded to make room (ring full)
    trimmed: int = 0  # buffered packets dropped to shrink the delay
    flushed: int = 0  # buffered packets discarded by a reset
    underruns: int = 0  # pops with nothing buffered after playout had started
    waiting: int = 0  # pops while priming
    target_delay_frames: int = 0  # the current target
    jitter: float = 0.0  # RFC 3550 A.8 interarrival jitter, in timestamp units


class JitterBuffer:
    """Reorders, de-duplicates and paces one SSRC's packets (see the module notes)."""

    __slots__ = (
        "_buffered",
        "_capacity",
        "_clock_rate",
        "_frame_samples",
        "_highest",
        "_highest_ts",
        "_max_delay",
        "_min_delay",
        "_min_depth",
        "_next",
        "_playing",
        "_played",
        "_pops",
        "_primed",
        "_ring",
        "_ssrc",
        "_target_scale",
        "_transit",
        "_ts_window",
        "_x_high",
        "_x_low",
        "stats",
    )

    def __init__(
        self,
        *,
        clock_rate: int = 8000,
        frame_samples: int = 160,
        min_delay_frames: int = 2,
        max_delay_frames: int = 12,
        capacity_frames: int = 50,
    ) -> None:
        if not 1 <= min_delay_frames <= max_delay_frames < capacity_frames:
            raise RtpUsageError("jitter buffer needs 1 <= min <= max < capacity frames")
        if clock_rate <= 0 or frame_samples <= 0:
            raise RtpUsageError("jitter buffer needs a positive clock rate and frame size")
        self._clock_rate = clock_rate
        self._frame_samples = frame_samples
        self._target_scale = JITTER_FACTOR / frame_samples
        self._min_delay = min_delay_frames
        self._max_delay = max_delay_frames
        self._capacity = capacity_frames
        self._ts_window = capacity_frames * frame_samples  # beyond it a timestamp has jumped
        self._ring: list[bytes | None] = [None] * capacity_frames
        # Extended sequence number of the frame last played from each slot, to tell a
        # duplicate of a played frame from a late one.
        self._played: list[int] = [-1] * capacity_frames
        self._ssrc: int | None = None
        self._next = 0  # extended sequence number of the next frame to play
        self._highest = -1  # extended sequence number of the newest frame received
        self._highest_ts = 0
        self._buffered = 0
        self._primed = False
        self._playing = False  # a frame has been consumed since the last reset
        self._transit = 0.0  # A.8: arrival minus timestamp of the last packet (set by _reset)
        # The band of JITTER_FACTOR * jitter / frame that keeps the target (see _retarget).
        self._x_low = -math.inf
        self._x_high = min_delay_frames - 1.0
        self._pops = 0
        self._min_depth = capacity_frames
        self.stats = JitterStats(target_delay_frames=min_delay_frames)

    @property
    def buffered(self) -> int:
        """Packets held and not yet played."""
        return self._buffered

    def push(self, seq: int, timestamp: int, ssrc: int, payload: bytes, now: float) -> None:
        """Add one received packet. ``now`` is the arrival time in seconds (monotonic)."""
        stats = self.stats
        stats.received += 1
        highest = self._highest
        # Fast path, nearly every packet: the next one in order, its timestamp one frame
        # on, with room in the ring. It must end in the same state as the general path,
        # so the A.8 update of ``_update_jitter`` is spelled out here (this runs for every
        # packet of every call; a call and its attribute reads were a fifth of the push).
        if (
            ssrc == self._ssrc
            and seq == (highest + 1) & 0xFFFF
            and timestamp == (self._highest_ts + self._frame_samples) & 0xFFFFFFFF
            and highest + 1 - self._next < self._capacity
        ):
            ext = highest + 1
            slot = ext % self._capacity
            ring = self._ring
            if ring[slot] is None:
                ring[slot] = payload
                self._buffered += 1
                self._highest = ext
                self._highest_ts = timestamp
                transit = now * self._clock_rate - timestamp
                d = transit - self._transit
                self._transit = transit
                if d < 0:
                    d = -d
                if d > 0x80000000:  # the timestamp wrapped between the two packets
                    d = 0x100000000 - d
                jitter = stats.jitter
                jitter += (d - jitter) * 0.0625  # / 16
                stats.jitter = jitter
                x = jitter * self._target_scale
                if x > self._x_high or x <= self._x_low:
                    self._retarget(x)
                return
        if ssrc != self._ssrc:
            if self._ssrc is not None:
                stats.ssrc_changes += 1
            self._reset(seq, timestamp, ssrc, payload, now)
            return
        ext = highest + seq_distance(seq, highest & 0xFFFF)
        delta = ext - highest
        if delta > self._capacity or delta < -MAX_MISORDER:
            stats.sequence_jumps += 1
            self._reset(seq, timestamp, ssrc, payload, now)
            return
        expected = self._highest_ts + delta * self._frame_samples
        if abs(ts_distance(timestamp, expected & 0xFFFFFFFF)) > self._ts_window:
            stats.timestamp_jumps += 1
            self._reset(seq, timestamp, ssrc, payload, now)
            return
        ring = self._ring
        capacity = self._capacity
        if ext < self._next:
            if not self._playing and highest - ext < capacity:
                self._next = ext  # an earlier packet before playout began: start there
            elif self._played[ext % capacity] == ext:
                stats.duplicates += 1
                return
            else:
                stats.late += 1
                self._update_jitter(timestamp, now)  # lateness is what jitter measures
                return
        elif ext - self._next >= capacity:
            self._make_room(ext)
        slot = ext % capacity
        if ring[slot] is not None:
            stats.duplicates += 1
            return
        self._update_jitter(timestamp, now)
        ring[slot] = payload
        self._buffered += 1
        if delta < 0:
            stats.reordered += 1
        else:
            self._highest = ext
            self._highest_ts = timestamp

    def pop(self) -> bytes | None:
        """The next 20 ms frame's payload, or None (priming, a lost frame, or underrun)."""
        stats = self.stats
        if not self._primed:
            if self._highest - self._next + 1 < stats.target_delay_frames or not self._buffered:
                stats.waiting += 1
                return None
            self._primed = True
            self._playing = True
        nxt = self._next
        if nxt > self._highest:
            stats.underruns += 1
            self._primed = False
            return None
        self._pops += 1
        if self._pops >= SHRINK_WINDOW_POPS:
            self._maybe_shrink()
            nxt = self._next
        slot = nxt % self._capacity
        payload = self._ring[slot]
        self._next = nxt + 1
        depth = self._highest - nxt
        if depth < self._min_depth:
            self._min_depth = depth
        if payload is None:
            stats.lost += 1
            return None
        self._ring[slot] = None
        self._played[slot] = nxt
        self._buffered -= 1
        stats.played += 1
        return payload

    def _maybe_shrink(self) -> None:
        """Once per window: drop one frame if the buffer never fell to the target."""
        self._pops = 0
        # In steady state a pop leaves target - 1 frames; never fewer than target means
        # a frame of delay nobody needed during the whole window.
        if self._min_depth >= self.stats.target_delay_frames and self._next < self._highest:
            slot = self._next % self._capacity
            if self._ring[slot] is not None:
                self._ring[slot] = None
                self._buffered -= 1
                self.stats.trimmed += 1
            self._next += 1
        self._min_depth = self._capacity

    def _make_room(self, ext: int) -> None:
        """Discard the oldest frames so that ``ext`` fits in the ring."""
        ring = self._ring
        while ext - self._next >= self._capacity:
            slot = self._next % self._capacity
            if ring[slot] is not None:
                ring[slot] = None
                self._buffered -= 1
                self.stats.overflows += 1
            self._next += 1
        if self._next > self._highest + 1:
            self._next = self._highest + 1

    def _update_jitter(self, timestamp: int, now: float) -> None:
        # RFC 3550 A.8: J += (|D| - J) / 16, D the change in transit time, in RTP units.
        transit = now * self._clock_rate - timestamp
        d = transit - self._transit
        self._transit = transit
        # The timestamp may have wrapped between the two packets.
        if d > 0x80000000:
            d -= 0x100000000
        elif d < -0x80000000:
            d += 0x100000000
        stats = self.stats
        jitter = stats.jitter
        jitter += ((d if d >= 0 else -d) - jitter) * 0.0625  # / 16
        stats.jitter = jitter
        x = jitter * self._target_scale
        if x > self._x_high or x <= self._x_low:
            self._retarget(x)

    def _retarget(self, x: float) -> None:
        """Set the target for ``x`` = JITTER_FACTOR * jitter / frame, and its band.

        target = clamp(ceil(x) + 1, min, max). The band (``_x_low``, ``_x_high``] is the
        range of ``x`` that gives the same target, so a packet whose jitter stays in it
        (nearly all of them) costs two comparisons, not this computation.
        """
        target = math.ceil(x) + 1
        if target <= self._min_delay:
            target = self._min_delay
            low = -math.inf
        else:
            low = target - 2.0
        if target >= self._max_delay:
            target = self._max_delay
            high = math.inf
        else:
            high = target - 1.0
        self._x_low, self._x_high = low, high
        self.stats.target_delay_frames = target

    def _reset(self, seq: int, timestamp: int, ssrc: int, payload: bytes, now: float) -> None:
        """Forget everything buffered and start a new run at this packet."""
        self.stats.flushed += self._buffered
        capacity = self._capacity
        self._ring = [None] * capacity
        self._played = [-1] * capacity
        self._ssrc = ssrc
        self._next = self._highest = seq
        self._highest_ts = timestamp
        self._ring[seq % capacity] = payload
        self._buffered = 1
        self._primed = False
        self._playing = False
        self._transit = now * self._clock_rate - timestamp  # A.8 starts from this packet
        self._pops = 0
        self._min_depth = capacity
