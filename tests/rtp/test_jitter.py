"""Jitter buffer: deterministic loss, reorder, duplicate and jump patterns on a manual clock."""

from __future__ import annotations

import math

import pytest

from trunkline.rtp.errors import RtpUsageError
from trunkline.rtp.jitter import SHRINK_WINDOW_POPS, JitterBuffer, JitterStats

SSRC = 0x1234


def label(seq: int) -> bytes:
    return seq.to_bytes(2, "big")


class Stream:
    """Sends packets at a 20 ms cadence by default; ``now`` is the manual clock."""

    def __init__(self, jb: JitterBuffer, first_seq: int = 0, first_ts: int = 0) -> None:
        self.jb = jb
        self.first_seq = first_seq
        self.first_ts = first_ts
        self.now = 0.0

    def push(self, n: int, *, ssrc: int = SSRC, ts_offset: int = 0, delay: float = 0.0) -> None:
        """Push the n-th packet of the stream (sequence and timestamp derived from n)."""
        seq = (self.first_seq + n) & 0xFFFF
        ts = (self.first_ts + n * 160 + ts_offset) & 0xFFFFFFFF
        self.jb.push(seq, ts, ssrc, label(n), self.now + delay)

    def pop(self) -> int | None:
        payload = self.jb.pop()
        return None if payload is None else int.from_bytes(payload, "big")


def accounted(stats: JitterStats, jb: JitterBuffer) -> int:
    return (
        stats.played
        + stats.late
        + stats.duplicates
        + stats.overflows
        + stats.trimmed
        + stats.flushed
        + jb.buffered
    )


def test_in_order_stream_primes_then_plays_in_order() -> None:
    jb = JitterBuffer()
    s = Stream(jb, first_seq=100, first_ts=5000)
    played = []
    for n in range(10):
        s.push(n)
        played.append(s.pop())
        s.now += 0.02
    assert played == [None, *range(9)]
    stats = jb.stats
    assert (stats.received, stats.played, stats.waiting, stats.lost) == (10, 9, 1, 0)
    assert jb.buffered == 1 and accounted(stats, jb) == 10


def test_reordered_packets_play_in_order() -> None:
    jb = JitterBuffer(min_delay_frames=3)
    s = Stream(jb)
    for n in (0, 2, 1, 3, 5, 4):
        s.push(n)
    assert [s.pop() for _ in range(6)] == [0, 1, 2, 3, 4, 5]
    assert jb.stats.reordered == 2
    assert jb.stats.late == 0 and jb.stats.lost == 0


def test_earlier_packet_before_playout_starts_the_stream() -> None:
    jb = JitterBuffer()
    s = Stream(jb, first_seq=10)
    s.push(1)
    s.push(0)  # behind the first packet, but nothing has been played yet
    assert [s.pop(), s.pop()] == [0, 1]
    assert jb.stats.reordered == 1 and jb.stats.late == 0


def test_duplicates_buffered_and_already_played() -> None:
    jb = JitterBuffer()
    s = Stream(jb)
    s.push(0)
    s.push(1)
    s.push(1)  # duplicate of a buffered frame
    assert s.pop() == 0
    s.push(0)  # duplicate of a played frame
    assert s.pop() == 1
    assert jb.stats.duplicates == 2 and jb.stats.late == 0
    assert accounted(jb.stats, jb) == jb.stats.received == 4


def test_loss_is_played_as_a_gap_and_a_late_packet_is_dropped() -> None:
    jb = JitterBuffer()
    s = Stream(jb)
    s.push(0)
    s.push(1)
    s.push(3)
    assert [s.pop(), s.pop(), s.pop(), s.pop()] == [0, 1, None, 3]
    s.push(2)  # frame 2's turn has passed
    stats = jb.stats
    assert (stats.lost, stats.late, stats.played) == (1, 1, 3)
    assert accounted(stats, jb) == stats.received == 4


def test_underrun_then_primes_again_and_nothing_is_skipped() -> None:
    jb = JitterBuffer()
    s = Stream(jb)
    s.push(0)
    s.push(1)
    assert [s.pop(), s.pop()] == [0, 1]
    assert s.pop() is None  # dry
    assert jb.stats.underruns == 1
    s.push(2)
    assert s.pop() is None  # priming again: one frame is below the target of two
    assert jb.stats.waiting == 1
    s.push(3)
    assert [s.pop(), s.pop()] == [2, 3]
    assert jb.stats.lost == 0


def test_ssrc_change_flushes_and_restarts() -> None:
    jb = JitterBuffer()
    s = Stream(jb)
    for n in range(4):
        s.push(n)
    assert s.pop() == 0
    jb.push(9000, 777, 0xBEEF, b"new0", 1.0)
    jb.push(9001, 937, 0xBEEF, b"new1", 1.02)
    assert [jb.pop(), jb.pop()] == [b"new0", b"new1"]
    stats = jb.stats
    assert (stats.ssrc_changes, stats.flushed) == (1, 3)
    assert accounted(stats, jb) == stats.received == 6


def test_timestamp_jump_resets() -> None:
    jb = JitterBuffer()
    s = Stream(jb)
    s.push(0)
    s.push(1)
    s.push(2, ts_offset=8000 * 10)  # ten seconds ahead but the next sequence number
    s.push(3, ts_offset=8000 * 10)
    assert [s.pop(), s.pop()] == [2, 3]
    assert (jb.stats.timestamp_jumps, jb.stats.flushed) == (1, 2)
    # A small timestamp step (silence suppression shorter than the window) is no jump.
    s.push(4, ts_offset=8000 * 10 + 800)
    assert jb.stats.timestamp_jumps == 1


def test_sequence_jump_resets_forward_and_far_backward() -> None:
    jb = JitterBuffer()
    s = Stream(jb)
    s.push(0)
    s.push(1)
    s.push(1000)  # the sender restarted its sequence
    s.push(1001)
    assert [s.pop(), s.pop()] == [1000, 1001]
    s.push(500)  # far behind: another restart, not a late packet
    assert (jb.stats.sequence_jumps, jb.stats.flushed, jb.stats.late) == (2, 2, 0)


def test_overflow_discards_the_oldest() -> None:
    jb = JitterBuffer(capacity_frames=10, max_delay_frames=8)
    s = Stream(jb)
    s.push(0)
    s.push(1)
    s.push(10)  # ten ahead of the next frame to play: the ring holds only ten
    stats = jb.stats
    assert stats.overflows == 1 and stats.sequence_jumps == 0
    assert [s.pop() for _ in range(10)] == [1, *([None] * 8), 10]
    assert stats.lost == 8
    assert accounted(stats, jb) == stats.received == 3


def test_sequence_wraparound() -> None:
    jb = JitterBuffer()
    s = Stream(jb, first_seq=65534, first_ts=0xFFFFFF00)
    for n in (0, 2, 1, 3):
        s.push(n)
    assert [s.pop() for _ in range(4)] == [0, 1, 2, 3]
    assert jb.stats.sequence_jumps == jb.stats.timestamp_jumps == jb.stats.late == 0


def test_jitter_estimate_follows_rfc3550_a8() -> None:
    jb = JitterBuffer()
    delays = [0.0, 0.03, 0.0, 0.03, 0.01]
    expected = 0.0
    for n, delay in enumerate(delays):
        jb.push(n, n * 160, SSRC, label(n), n * 0.02 + delay)
        if n:
            d = abs((delay - delays[n - 1]) * 8000)
            expected += (d - expected) / 16
    assert jb.stats.jitter == pytest.approx(expected)
    target = min(max(math.ceil(3 * expected / 160) + 1, 2), 12)
    assert jb.stats.target_delay_frames == target


def test_target_grows_with_jitter_is_clamped_and_shrinks_slowly() -> None:
    jb = JitterBuffer(min_delay_frames=2, max_delay_frames=6)
    s = Stream(jb)
    n = 0
    # Bursty network: every 100 ms, five packets arrive at once, just after that tick's
    # pop. One pop per 20 ms tick.
    for tick in range(200):
        s.pop()
        if tick % 5 == 4:
            for _ in range(5):
                s.push(n)
                n += 1
        s.now += 0.02
    assert jb.stats.target_delay_frames == 6  # clamped at max
    depth = jb.buffered
    assert depth >= 5
    # Then a clean network: the estimate decays at once, but the delay is trimmed by one
    # frame per window of pops, down to the new target.
    trimmed = [0]
    for _ in range(8):
        for _ in range(SHRINK_WINDOW_POPS):
            s.push(n)
            n += 1
            s.pop()
            s.now += 0.02
        trimmed.append(jb.stats.trimmed)
    assert jb.stats.target_delay_frames == 2
    steps = [b - a for a, b in zip(trimmed, trimmed[1:], strict=False)]
    assert set(steps) == {0, 1}  # never more than one frame per window
    # Down to the target: it holds 2 frames when popped, so 1 is left after each pop.
    assert trimmed[-1] == depth - 1
    assert jb.buffered == 1
    assert jb.stats.lost == jb.stats.late == jb.stats.overflows == 0
    assert accounted(jb.stats, jb) == jb.stats.received


def test_constructor_checks() -> None:
    with pytest.raises(RtpUsageError):
        JitterBuffer(min_delay_frames=0)
    with pytest.raises(RtpUsageError):
        JitterBuffer(min_delay_frames=5, max_delay_frames=4)
    with pytest.raises(RtpUsageError):
        JitterBuffer(max_delay_frames=50, capacity_frames=50)
    with pytest.raises(RtpUsageError):
        JitterBuffer(frame_samples=0)
