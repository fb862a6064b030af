"""Packet loss models: independent (Bernoulli) loss and the Gilbert-Elliott burst model.

Theory of operation
-------------------
A model is asked once per packet, in send order, whether that packet is lost; it may
keep state between packets. Its randomness comes from a ``Uniforms`` stream, so a seed
replays the same losses.

**Gilbert-Elliott** is a two-state Markov chain (Gilbert 1960, Elliott 1963), with the
parameter names of Linux netem's ``gemodel`` and RFC 3611's burst metrics:

- ``p`` = P(good -> bad) and ``r`` = P(bad -> good), per packet;
- in the good state a packet survives with probability ``k``, in the bad state with
  probability ``h`` (so the loss probabilities are ``1 - k`` and ``1 - h``).

``h = 0, k = 1`` is the simple Gilbert model: the bad state is a loss burst, of mean
length ``1 / r``. Each packet is decided in the current state, then the chain steps; it
starts in the good state. In the long run the chain is in the bad state a fraction
``p / (p + r)`` of the time, so the loss rate is::

    P(loss) = r / (p + r) * (1 - k) + p / (p + r) * (1 - h)

and the mean length of a run of consecutive losses is ``P(loss) / P(loss, then not)``,
both computed exactly from the chain (``mean_burst``). ITU-T G.107's burst ratio
``BurstR`` is that mean run length over the one random loss at the same rate would
give, ``1 / (1 - P(loss))``; it is ``1 / (p + r)`` for the simple Gilbert model and 1
for independent loss.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

__all__ = ["Bernoulli", "GilbertElliott", "LossModel", "Uniforms"]

#: Uniform numbers drawn from numpy at a time: one call per block instead of per packet.
_UNIFORM_BLOCK = 1024


class Uniforms:
    """A seeded stream of uniform floats in [0, 1), drawn from numpy in blocks."""

    __slots__ = ("_block", "_i", "_rng")

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng
        self._block = rng.random(_UNIFORM_BLOCK)
        self._i = 0

    def next(self) -> float:
        """The next uniform number."""
        if self._i == _UNIFORM_BLOCK:
            self._block = self._rng.random(_UNIFORM_BLOCK)
            self._i = 0
        value = float(self._block[self._i])
        self._i += 1
        return value


def _probability(name: str, value: float) -> float:
    if not 0.0 <= value <= 1.0:  # also refuses NaN
        raise ValueError(f"{name} must be a probability within 0..1, got {value}")
    return float(value)


class LossModel(ABC):
    """What every loss model offers: a per-packet verdict and its long-run figures."""

    __slots__ = ()

    @abstractmethod
    def lose(self, uniforms: Uniforms) -> bool:
        """Whether the next packet is lost; draws from ``uniforms``."""

    @property
    @abstractmethod
    def loss_rate(self) -> float:
        """Long-run fraction of packets lost (0..1)."""

    @property
    @abstractmethod
    def mean_burst(self) -> float:
        """Long-run mean length of a run of consecutive losses (0 when nothing is lost)."""

    @property
    def burst_ratio(self) -> float:
        """ITU-T G.107 ``BurstR``: mean burst over that of random loss at the same rate."""
        rate = self.loss_rate
        if rate == 0.0:
            return 1.0
        return self.mean_burst * (1.0 - rate) if rate < 1.0 else math.inf


@dataclass(slots=True)
class Bernoulli(LossModel):
    """Each packet lost independently with probability ``rate``.

    Raises:
        ValueError: ``rate`` outside 0..1.
    """

    rate: float

    def __post_init__(self) -> None:
        self.rate = _probability("rate", self.rate)

    @classmethod
    def percent(cls, percent: float) -> Bernoulli:
        """The model losing ``percent`` of packets (0..100)."""
        if not 0.0 <= percent <= 100.0:
            raise ValueError(f"loss percent must be within 0..100, got {percent}")
        return cls(percent / 100.0)

    def lose(self, uniforms: Uniforms) -> bool:
        return uniforms.next() < self.rate

    @property
    def loss_rate(self) -> float:
        return self.rate

    @property
    def mean_burst(self) -> float:
        if self.rate == 0.0:
            return 0.0
        return 1.0 / (1.0 - self.rate) if self.rate < 1.0 else math.inf


@dataclass(slots=True)
class GilbertElliott(LossModel):
    """The Gilbert-Elliott two-state loss model (see the module docstring).

    Args:
        p: P(good -> bad) per packet.
        r: P(bad -> good) per packet.
        h: P(a packet survives) in the bad state.
        k: P(a packet survives) in the good state.
        bad: the current state (a new chain starts in the good state).

    Raises:
        ValueError: a parameter outside 0..1, or ``r = 0`` with ``p > 0`` (the chain
            would end up in the bad state for good).
    """

    p: float
    r: float
    h: float = 0.0
    k: float = 1.0
    bad: bool = False

    def __post_init__(self) -> None:
        for name in ("p", "r", "h", "k"):
            setattr(self, name, _probability(name, getattr(self, name)))
        if self.p > 0.0 and self.r == 0.0:
            raise ValueError("r = 0 with p > 0 never leaves the bad state; use r > 0")

    def lose(self, uniforms: Uniforms) -> bool:
        survive = self.h if self.bad else self.k
        lost = uniforms.next() >= survive
        step = uniforms.next()
        self.bad = step >= self.r if self.bad else step < self.p
        return lost

    def _stationary_bad(self) -> float:
        """Long-run fraction of packets sent in the bad state."""
        total = self.p + self.r
        return self.p / total if total > 0.0 else 0.0  # p = r = 0: good for ever

    @property
    def loss_rate(self) -> float:
        bad = self._stationary_bad()
        return (1.0 - bad) * (1.0 - self.k) + bad * (1.0 - self.h)

    @property
    def mean_burst(self) -> float:
        bad = self._stationary_bad()
        good = 1.0 - bad
        loss_good, loss_bad = 1.0 - self.k, 1.0 - self.h
        # P(this packet lost and the next one not): lost in a state, then step, then kept.
        keep_after_good = (1.0 - self.p) * self.k + self.p * self.h
        keep_after_bad = self.r * self.k + (1.0 - self.r) * self.h
        ends = good * loss_good * keep_after_good + bad * loss_bad * keep_after_bad
        rate = good * loss_good + bad * loss_bad
        if rate == 0.0:
            return 0.0
        return rate / ends if ends > 0.0 else math.inf
