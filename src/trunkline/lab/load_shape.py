"""Load over time as straight-line pieces, and the call arrivals it implies.

Every load profile (constant, ramp, step, spike, soak) is a level that changes along
straight lines: ``Segment(start_s, end_s, from_level, to_level)``. The level is calls
per second (open model) or calls in progress (closed model).

Arrivals (open model) come from time rescaling: with ``Λ(t)`` the expected number of
calls up to ``t`` (the area under the level), the k-th call starts at ``Λ⁻¹(y_k)``.

- Poisson arrivals: ``y_k`` is a running sum of Exp(1) draws. Rescaled, that is exactly
  a (non-homogeneous) Poisson process with the profile's rate; one draw per call, no
  rejection loop.
- Even arrivals: ``y_k = k + 1/2``. At a constant 5 calls/s that is 0.1 s, 0.3 s, ...,
  and over a whole profile ``round(Λ(end))`` calls, spaced by the rate of the moment.

On a straight piece, ``Λ`` is quadratic, so ``Λ⁻¹`` has a closed form. Everything is
bounded: a generator stops at the end of the last piece or at ``max_calls``, whichever
comes first, and walks the pieces once.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Segment:
    """The level goes linearly from ``from_level`` at ``start_s`` to ``to_level`` at
    ``end_s`` (``start_s < end_s``; both levels >= 0)."""

    start_s: float
    end_s: float
    from_level: float
    to_level: float

    @property
    def mass(self) -> float:
        """Area under the piece: expected calls (open model)."""
        return (self.from_level + self.to_level) / 2.0 * (self.end_s - self.start_s)

    def level_at(self, t: float) -> float:
        span = self.end_s - self.start_s
        return self.from_level + (self.to_level - self.from_level) * (t - self.start_s) / span

    def time_at(self, mass: float) -> float:
        """The ``t`` in this piece where the area from ``start_s`` reaches ``mass``.

        Solves ``v0 τ + a τ² / 2 = m`` as ``τ = 2m / (v0 + sqrt(v0² + 2 a m))``, which has
        no cancellation and holds for ``a = 0`` and ``v0 = 0`` alike.
        """
        span = self.end_s - self.start_s
        slope = (self.to_level - self.from_level) / span
        root = math.sqrt(max(0.0, self.from_level**2 + 2.0 * slope * mass))
        denominator = self.from_level + root
        tau = 2.0 * mass / denominator if denominator > 0 else 0.0
        return self.start_s + min(max(tau, 0.0), span)


def level_at(segments: Sequence[Segment], t: float) -> float:
    """The level at ``t``; 0 before the first piece and from the end of the last."""
    for seg in segments:
        if seg.start_s <= t < seg.end_s:
            return seg.level_at(t)
    return 0.0


def total_mass(segments: Sequence[Segment]) -> float:
    """Expected calls over the whole profile (open model)."""
    return math.fsum(seg.mass for seg in segments)


def arrivals(segments: Sequence[Segment], *, max_calls: int, seed: int | None) -> Iterator[float]:
    """Call start times, ascending, within the pieces, at most ``max_calls`` of them.

    ``seed`` None: even spacing; otherwise Poisson arrivals from ``random.Random(seed)``.
    """
    rng = random.Random(seed) if seed is not None else None
    index, base, last, count = 0, 0.0, 0.0, 0
    target = 0.0
    while count < max_calls:  # at most max_calls + 1 rounds
        target = target + rng.expovariate(1.0) if rng is not None else count + 0.5
        while index < len(segments) and target >= base + segments[index].mass:
            base += segments[index].mass  # each piece is passed once over the whole run
            index += 1
        if index == len(segments):
            return
        seg = segments[index]
        # Float rounding near a piece's edge could step back by an ulp: never go back.
        t = max(seg.time_at(target - base), last)
        if t >= segments[-1].end_s:
            return
        yield t
        last = t
        count += 1
