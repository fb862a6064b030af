"""A network emulator for one media stream: loss, jitter and reordering, sans-IO.

Theory of operation
-------------------
The caller engine pushes each packet with its nominal send time (every 20 ms) and
sends what ``pop_due(now)`` returns; ``next_due()`` says when to ask again. Per packet:

1. the loss model decides whether it is dropped (``lab.loss``);
2. a kept packet gets an extra delay, exponentially distributed with mean ``jitter_ms``.
   An exponential's standard deviation equals its mean, so ``jitter_ms`` is also the
   delay's standard deviation, and, for independent delays, the mean difference between
   consecutive packets' delays (the RFC 3550 interarrival jitter a receiver reports).
   Delays longer than the packet interval make packets overtake each other: reordering
   that follows from the jitter, as on a real network;
3. with probability ``reorder_pct`` a kept packet is also held back until the next kept
   packet is pushed, and goes out right after it: a forced swap. One packet is held at
   a time; the last packet of a stream is only held until ``flush()``.

Packets leave in send-time order (ties in push order). ``reordered`` counts packets sent
after one pushed later than them (RFC 4737's "reordered" packets), whatever the cause.

Randomness: one seed gives three independent streams (loss, delay, reordering), each
drawn once per pushed packet, so turning jitter on or off does not change which packets
are lost, and turning loss on does not change the other packets' delays.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np

from trunkline.lab.loss import LossModel, Uniforms

__all__ = ["MAX_JITTER_MS", "NetemStats", "PacketScheduler", "check_jitter"]

T = TypeVar("T")

#: Beyond 2 s of jitter a jitter buffer has long given up; larger values are typos.
MAX_JITTER_MS = 2000.0


@dataclass(slots=True)
class NetemStats:
    """What the emulator did to the stream so far.

    Attributes:
        pushed: packets pushed.
        dropped: packets the loss model dropped.
        sent: packets handed out by ``pop_due``/``flush``.
        reordered: packets handed out after a packet pushed later than them.
        loss_runs: runs of consecutive dropped packets.
        max_loss_run: the longest such run.
    """

    pushed: int = 0
    dropped: int = 0
    sent: int = 0
    reordered: int = 0
    loss_runs: int = 0
    max_loss_run: int = 0
    _run: int = field(default=0, init=False, repr=False)

    def record(self, lost: bool) -> None:
        """Count one pushed packet, lost or not."""
        self.pushed += 1
        if lost:
            self.dropped += 1
            self._run += 1
            if self._run == 1:
                self.loss_runs += 1
            self.max_loss_run = max(self.max_loss_run, self._run)
        else:
            self._run = 0

    @property
    def loss_rate(self) -> float:
        """Fraction of pushed packets dropped (0 before any packet)."""
        return self.dropped / self.pushed if self.pushed else 0.0

    @property
    def mean_loss_run(self) -> float:
        """Mean length of a run of dropped packets (0 when none was dropped)."""
        return self.dropped / self.loss_runs if self.loss_runs else 0.0


def check_jitter(jitter_ms: float, reorder_pct: float) -> None:
    """Raise ValueError unless ``jitter_ms`` is within 0..``MAX_JITTER_MS`` and
    ``reorder_pct`` within 0..100."""
    if not 0.0 <= jitter_ms <= MAX_JITTER_MS:  # also refuses NaN
        raise ValueError(f"jitter_ms must be within 0..{MAX_JITTER_MS:g}, got {jitter_ms}")
    if not 0.0 <= reorder_pct <= 100.0:
        raise ValueError(f"reorder_pct must be within 0..100, got {reorder_pct}")


class PacketScheduler(Generic[T]):
    """Loss, jitter and reordering for one stream (see the module docstring).

    Args:
        seed: replays the same decisions for the same pushes (an int, or several ints
            as ``numpy.random.SeedSequence`` takes them).
        loss: the loss model (None: no loss). It keeps state; give each stream its own.
        jitter_ms: mean (and standard deviation) of the extra delay, ms.
        reorder_pct: percent of kept packets swapped with the next one.

    Raises:
        ValueError: ``jitter_ms`` outside 0..``MAX_JITTER_MS`` or ``reorder_pct``
            outside 0..100.
    """

    def __init__(
        self,
        seed: int | Sequence[int],
        *,
        loss: LossModel | None = None,
        jitter_ms: float = 0.0,
        reorder_pct: float = 0.0,
    ) -> None:
        check_jitter(jitter_ms, reorder_pct)
        loss_seed, delay_seed, reorder_seed = np.random.SeedSequence(seed).spawn(3)
        self._loss = loss
        self._loss_draws = Uniforms(np.random.default_rng(loss_seed))
        self._delay_draws = Uniforms(np.random.default_rng(delay_seed))
        self._reorder_draws = Uniforms(np.random.default_rng(reorder_seed))
        self._jitter_s = jitter_ms / 1000.0
        self._reorder = reorder_pct / 100.0
        # Entries are (send time, insertion order, push index, packet): the insertion
        # order breaks ties, so packets themselves are never compared.
        self._queue: list[tuple[float, int, int, T]] = []
        self._inserted = 0
        self._held: tuple[float, int, T] | None = None
        self._pushed = 0
        self._latest_sent = -1
        self.stats = NetemStats()

    def push(self, nominal_time: float, packet: T) -> None:
        """Take the next packet of the stream, due at ``nominal_time`` (seconds)."""
        if not math.isfinite(nominal_time):
            raise ValueError(f"nominal_time must be finite, got {nominal_time}")
        index = self._pushed
        self._pushed += 1
        lost = self._loss is not None and self._loss.lose(self._loss_draws)
        # Draw for every packet, lost or not, so each stream stays aligned with the push
        # index: the delays do not change when the loss does.
        delay_draw = self._delay_draws.next() if self._jitter_s > 0.0 else 0.0
        reorder_draw = self._reorder_draws.next() if self._reorder > 0.0 else 1.0
        self.stats.record(lost)
        if lost:
            return
        # Inverse CDF of the exponential distribution with mean jitter_s.
        send_time = nominal_time - self._jitter_s * math.log1p(-delay_draw)
        held, self._held = self._held, None
        if held is None and reorder_draw < self._reorder:
            self._held = (send_time, index, packet)
            return
        self._enqueue(send_time, index, packet)
        if held is not None:  # right after this packet, never before its own time
            self._enqueue(max(held[0], send_time), held[1], held[2])

    def _enqueue(self, send_time: float, index: int, packet: T) -> None:
        heapq.heappush(self._queue, (send_time, self._inserted, index, packet))
        self._inserted += 1

    def next_due(self) -> float | None:
        """Send time of the next queued packet, or None when none is queued."""
        return self._queue[0][0] if self._queue else None

    def pop_due(self, now: float) -> list[tuple[float, T]]:
        """Packets whose send time is ``now`` or earlier, in send order."""
        out: list[tuple[float, T]] = []
        while self._queue and self._queue[0][0] <= now:
            out.append(self._emit(heapq.heappop(self._queue)))
        return out

    def flush(self) -> list[tuple[float, T]]:
        """Everything still queued or held, in send order (the stream has ended)."""
        if self._held is not None:
            self._enqueue(*self._held)
            self._held = None
        return [self._emit(heapq.heappop(self._queue)) for _ in range(len(self._queue))]

    def schedule(self, packets: Iterable[tuple[float, T]]) -> list[tuple[float, T]]:
        """Push every ``(nominal_time, packet)`` and return all of them, in send order."""
        for nominal_time, packet in packets:
            self.push(nominal_time, packet)
        return self.flush()

    def _emit(self, entry: tuple[float, int, int, T]) -> tuple[float, T]:
        send_time, _, index, packet = entry
        self.stats.sent += 1
        if index < self._latest_sent:
            self.stats.reordered += 1
        self._latest_sent = max(self._latest_sent, index)
        return send_time, packet
