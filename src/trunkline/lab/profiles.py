"""Load profiles: how many synthetic calls, when, for how long.

Two models (the load-testing distinction between open and closed workloads):

- **open**: calls *arrive* at a rate (calls per second) whatever happens to earlier
  calls, as real callers do. :meth:`LoadProfile.arrivals` gives the start times.
- **closed**: a number of calls is kept *in progress*; a new one starts when one ends.
  :meth:`LoadProfile.concurrency_at` gives the target, :meth:`LoadProfile.calls_to_start`
  what to start now.

Shapes: ``constant``, ``soak`` (a constant meant to run long, named so in reports),
``ramp`` (linear from -> to), ``step`` (levels held in turn), ``spike`` (a base level,
times ``factor`` for a while), and ``breakpoint`` (raise the load level by level until
the target fails; see :mod:`trunkline.lab.breakpoint`). Written on the command line::

    constant:rate=5,duration=60          closed:concurrency=50,duration=120
    ramp:from=1,to=20,duration=60        step:levels=5/10/20,step=30
    spike:base=2,factor=8,at=20,for=10,duration=60
    soak:rate=2,duration=1h              breakpoint:start=10,step=10,max=1000,hold=20

or as a YAML mapping with the same keys (``{kind: ramp, from: 1, to: 20, duration: 60}``;
see :mod:`trunkline.lab.profile_parse`). Every profile is finite: a duration (or a
number of levels times their hold) and a cap on the number of calls.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

from trunkline.lab import load_shape
from trunkline.lab.load_shape import Segment

# Climbing levels of a breakpoint search; with a 20 s hold, 200 levels is over an hour.
MAX_BREAKPOINT_LEVELS = 200
# A safety net rather than a plan: no sane run starts a million calls, and a typo such
# as rate=5000 for a day stops here instead of running all night.
DEFAULT_MAX_CALLS = 1_000_000


class ProfileError(ValueError):
    """A profile as written is wrong. ``key`` names the offending parameter (None when
    the problem is the kind or the text as a whole)."""

    def __init__(self, message: str, key: str | None = None) -> None:
        self.key = key
        super().__init__(f"{key}: {message}" if key else message)


class ProfileUsageError(RuntimeError):
    """Our code used a profile in a way its model does not allow (a bug here)."""


class LoadModel(enum.StrEnum):
    OPEN = "open"  # level = calls per second arriving
    CLOSED = "closed"  # level = calls in progress


class ArrivalMode(enum.StrEnum):
    POISSON = "poisson"  # independent callers: random gaps, the rate on average
    EVEN = "even"  # one call every 1/rate seconds: repeatable, no bursts


class ProfileKind(enum.StrEnum):
    CONSTANT = "constant"
    SOAK = "soak"
    RAMP = "ramp"
    STEP = "step"
    SPIKE = "spike"
    BREAKPOINT = "breakpoint"


@dataclass(frozen=True, slots=True)
class LoadProfile:
    """A load that follows a fixed shape over ``duration_s``.

    Attributes:
        kind: the shape's name.
        model: open (levels are calls per second) or closed (calls in progress).
        duration_s: the run ends here; no call starts at or after it.
        segments: the level over time, in straight pieces covering 0..duration_s.
        max_calls: no more calls than this are started, whatever the shape says.
        arrival_mode: Poisson or even arrivals (open model).
        text: the canonical one-line form; ``parse_profile(text)`` gives this back.
    """

    kind: ProfileKind
    model: LoadModel
    duration_s: float
    segments: tuple[Segment, ...]
    max_calls: int
    arrival_mode: ArrivalMode
    text: str

    def __str__(self) -> str:
        return self.text

    def level_at(self, t: float) -> float:
        """Calls per second (open) or calls in progress (closed) at ``t``; 0 outside
        ``0 <= t < duration_s``."""
        return load_shape.level_at(self.segments, t)

    @property
    def peak(self) -> float:
        """The highest level the profile reaches."""
        return max(max(s.from_level, s.to_level) for s in self.segments)

    @property
    def expected_calls(self) -> float:
        """Open model: calls the shape asks for on average (before ``max_calls``)."""
        self._require(LoadModel.OPEN, "expected_calls")
        return load_shape.total_mass(self.segments)

    def arrivals(self, seed: int) -> Iterator[float]:
        """Open model: call start times in seconds from the start, ascending, all in
        ``[0, duration_s)``, at most ``max_calls``. Poisson arrivals are drawn from
        ``random.Random(seed)``; even ones ignore the seed.

        Raises:
            ProfileUsageError: the profile is closed (ask :meth:`concurrency_at`).
        """
        self._require(LoadModel.OPEN, "arrivals")
        draw_seed = seed if self.arrival_mode is ArrivalMode.POISSON else None
        return load_shape.arrivals(self.segments, max_calls=self.max_calls, seed=draw_seed)

    def concurrency_at(self, t: float) -> int:
        """Closed model: calls that should be in progress at ``t`` (the level rounded
        half up; 0 outside the run).

        Raises:
            ProfileUsageError: the profile is open (ask :meth:`arrivals`).
        """
        self._require(LoadModel.CLOSED, "concurrency_at")
        return math.floor(self.level_at(t) + 0.5)

    def calls_to_start(self, t: float, active: int, started: int) -> int:
        """Closed model: how many calls to start at ``t`` with ``active`` in progress and
        ``started`` started so far (never past ``max_calls``, never negative)."""
        want = self.concurrency_at(t) - active
        return max(0, min(want, self.max_calls - started))

    def _require(self, model: LoadModel, what: str) -> None:
        if self.model is not model:
            raise ProfileUsageError(
                f"{what}() is for the {model} model; {self.text} is {self.model}"
            )


@dataclass(frozen=True, slots=True)
class BreakpointProfile:
    """Raise the load level by level until the target fails, then (optionally) bisect.

    Levels climb from ``start`` by ``step`` (added) or ``factor`` (multiplied) up to
    ``max_level``, each held ``hold_s``; :class:`trunkline.lab.breakpoint.BreakpointSearch`
    decides the next level from the last one's verdict. In the closed model (the
    default: a breakpoint question is usually "how many calls at once") levels are
    whole numbers of calls.
    """

    kind: ClassVar[ProfileKind] = ProfileKind.BREAKPOINT
    model: LoadModel
    start: float
    step: float | None
    factor: float | None
    max_level: float
    hold_s: float
    refine: int  # bisection steps after the first failure (0: none)
    max_calls: int  # per level
    arrival_mode: ArrivalMode
    text: str

    def __str__(self) -> str:
        return self.text

    def next_up(self, level: float) -> float:
        """The climbing level after ``level`` (capped at ``max_level``)."""
        if self.step is not None:
            up = level + self.step
        else:
            up = level * (self.factor or 2.0)
        if self.model is LoadModel.CLOSED:
            up = max(level + 1, math.floor(up + 0.5))
        return min(up, self.max_level)

    def ladder(self) -> tuple[float, ...]:
        """Every climbing level, ``start`` to ``max_level``; stops after
        :data:`MAX_BREAKPOINT_LEVELS` + 1 levels (which the parser refuses), so a step
        too small to change a float cannot loop."""
        levels = [self.start]
        while levels[-1] < self.max_level and len(levels) <= MAX_BREAKPOINT_LEVELS:
            levels.append(self.next_up(levels[-1]))
        return tuple(levels)

    @property
    def duration_s(self) -> float:
        """The longest a search can run: every level and every bisection step held."""
        return (len(self.ladder()) + self.refine) * self.hold_s

    def hold_profile(self, level: float) -> LoadProfile:
        """A constant profile at ``level`` for ``hold_s``: what the driver runs for one
        step of the search."""
        return constant(self.model, level, self.hold_s, self.max_calls, self.arrival_mode)


Profile = LoadProfile | BreakpointProfile


def constant(
    model: LoadModel,
    level: float,
    duration_s: float,
    max_calls: int,
    arrival_mode: ArrivalMode = ArrivalMode.POISSON,
    *,
    kind: ProfileKind = ProfileKind.CONSTANT,
) -> LoadProfile:
    """A constant (or soak) profile, built directly (no validation: callers pass sane
    values, as :class:`BreakpointProfile` does)."""
    key = "rate" if model is LoadModel.OPEN else "concurrency"
    name = "closed" if kind is ProfileKind.CONSTANT and model is LoadModel.CLOSED else kind.value
    text = f"{name}:{key}={fmt(level)},duration={fmt(duration_s)}"
    return LoadProfile(
        kind=kind,
        model=model,
        duration_s=duration_s,
        segments=(Segment(0.0, duration_s, level, level),),
        max_calls=max_calls,
        arrival_mode=arrival_mode,
        text=text + options_text(model, max_calls, arrival_mode),
    )


def options_text(model: LoadModel, max_calls: int, arrival_mode: ArrivalMode) -> str:
    """The canonical suffix for the options that differ from their defaults."""
    out = ""
    if model is LoadModel.OPEN and arrival_mode is not ArrivalMode.POISSON:
        out += f",arrivals={arrival_mode.value}"
    if max_calls != DEFAULT_MAX_CALLS:
        out += f",max_calls={max_calls}"
    return out


def fmt(value: float) -> str:
    """Shortest text that reads back as the same float: 5, 2.5, 0.1."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))
